//! A stored message and the life it goes through: pending until an attempt
//! succeeds (sent) or the last attempt fails (failed).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Template;

/// Where a message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Waiting for its first or next attempt.
    Pending,
    /// Accepted by the mail server.
    Sent,
    /// Given up after the last attempt.
    Failed,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Sent, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// What is known about a message once stored. The rendered bodies are not
/// part of it: they are the worker's business and are erased after delivery.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Uuid,
    pub idempotency_key: String,
    pub template: Template,
    pub recipient: String,
    pub state: MessageState,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due; `None` once sent or failed.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The caller's name for one message: the same key never produces a second
/// one, so a caller may retry an `Enqueue` whose answer it did not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LENGTH: usize = 200;

    /// Keys are opaque and compared exactly; only blank and oversized keys
    /// are refused.
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("idempotency_key is required".into());
        }
        if raw.chars().count() > Self::MAX_LENGTH {
            return Err(format!(
                "idempotency_key must be at most {} characters",
                Self::MAX_LENGTH
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for state in [MessageState::Pending, MessageState::Sent, MessageState::Failed] {
            assert_eq!(MessageState::parse(state.as_str()), Some(state));
        }
    }

    #[test]
    fn idempotency_keys_are_required_and_bounded() {
        assert!(IdempotencyKey::parse(String::new()).is_err());
        assert!(IdempotencyKey::parse("  ".into()).is_err());
        assert!(IdempotencyKey::parse("k".repeat(201)).is_err());
        let key = IdempotencyKey::parse("reactivation:42:7".into()).unwrap();
        assert_eq!(key.as_str(), "reactivation:42:7");
        assert!(
            IdempotencyKey::parse("é".repeat(200)).is_ok(),
            "the limit counts characters"
        );
    }
}
