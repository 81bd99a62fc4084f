//! An account and its lifecycle: active ⇄ deactivated.
//!
//! Every change of state bumps `state_version`. Access tokens (and, later,
//! reactivation links) record the version they were issued for, so anything
//! issued before a change is void after it.

use chrono::{DateTime, Utc};
use platform::auth::Role;
use uuid::Uuid;

/// Why an account was deactivated; decides who may bring it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeactivationReason {
    /// The customer left on their own.
    SelfService,
    /// Support closed the account.
    Admin,
    /// The customer stopped paying.
    Nonpayment,
    /// The account was used for fraud.
    Fraud,
}

impl DeactivationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfService => "self",
            Self::Admin => "admin",
            Self::Nonpayment => "nonpayment",
            Self::Fraud => "fraud",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "self" => Self::SelfService,
            "admin" => Self::Admin,
            "nonpayment" => Self::Nonpayment,
            "fraud" => Self::Fraud,
            _ => return None,
        })
    }

    /// Whether the customer may reactivate by email link without an admin.
    pub fn allows_self_reactivation(self) -> bool {
        matches!(self, Self::SelfService | Self::Nonpayment)
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub deactivation_reason: Option<DeactivationReason>,
    pub reactivated_at: Option<DateTime<Utc>>,
    pub reactivation_count: i32,
    pub last_cancellation_reason: Option<String>,
    pub state_version: i64,
}

/// Why an account cannot make the change of state asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Only an active account can be deactivated.
    AlreadyInactive,
    /// Only an inactive account can be reactivated.
    AlreadyActive,
}

impl Account {
    /// Whether the account may be deactivated: only while active.
    pub fn may_deactivate(&self) -> Result<(), Refused> {
        if self.is_active {
            Ok(())
        } else {
            Err(Refused::AlreadyInactive)
        }
    }

    /// Whether the account may be reactivated: only while inactive,
    /// whatever the reason it was deactivated for (who may bring it back is
    /// the caller's rule).
    pub fn may_reactivate(&self) -> Result<(), Refused> {
        if self.is_active {
            Err(Refused::AlreadyActive)
        } else {
            Ok(())
        }
    }

    pub fn roles(&self) -> Vec<Role> {
        match self.role {
            Role::Admin => vec![Role::User, Role::Admin],
            Role::User => vec![Role::User],
        }
    }
}

/// The kinds of entries in an account's audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Registered,
    Deactivated,
    /// A reactivation link was asked for (and sent, or not: see its data).
    ReactivationRequested,
    /// A reactivation link's page was opened (once per link).
    LinkOpened,
    Reactivated,
    /// A reminder that the account will be erased was sent.
    RetentionReminderSent,
    /// The account was erased; what remains is this record, without
    /// personal data.
    Erased,
    /// An operator gave the account the admin role (`create-admin --promote`).
    RoleGranted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Deactivated => "deactivated",
            Self::ReactivationRequested => "reactivation_requested",
            Self::LinkOpened => "reactivation_link_opened",
            Self::Reactivated => "reactivated",
            Self::RetentionReminderSent => "retention_reminder_sent",
            Self::Erased => "erased",
            Self::RoleGranted => "role_granted",
        }
    }
}

/// One entry of an account's audit trail.
#[derive(Debug, Clone)]
pub struct AccountEvent {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_type: String,
    pub data: serde_json::Value,
    pub actor_id: Option<Uuid>,
    pub trace_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::DeactivationReason::*;
    use super::{Account, Refused, Role, Utc, Uuid};

    fn account(is_active: bool) -> Account {
        Account {
            id: Uuid::nil(),
            email: "ada@example.com".to_owned(),
            password_hash: String::new(),
            role: Role::User,
            is_active,
            created_at: Utc::now(),
            deactivated_at: None,
            deactivation_reason: (!is_active).then_some(SelfService),
            reactivated_at: None,
            reactivation_count: 0,
            last_cancellation_reason: None,
            state_version: 1,
        }
    }

    #[test]
    fn only_an_active_account_is_deactivated_and_only_an_inactive_one_reactivated() {
        assert_eq!(account(true).may_deactivate(), Ok(()));
        assert_eq!(account(false).may_deactivate(), Err(Refused::AlreadyInactive));
        assert_eq!(account(false).may_reactivate(), Ok(()));
        assert_eq!(account(true).may_reactivate(), Err(Refused::AlreadyActive));
    }

    #[test]
    fn only_self_and_nonpayment_allow_self_service_reactivation() {
        assert!(SelfService.allows_self_reactivation());
        assert!(Nonpayment.allows_self_reactivation());
        assert!(!Admin.allows_self_reactivation());
        assert!(!Fraud.allows_self_reactivation());
    }

    #[test]
    fn reasons_round_trip_through_their_stored_names() {
        for reason in [SelfService, Admin, Nonpayment, Fraud] {
            assert_eq!(super::DeactivationReason::parse(reason.as_str()), Some(reason));
        }
    }
}
