//! Web sessions: what keeps a browser signed in longer than one access
//! token, and ends the moment the account changes.
//!
//! The gateway's pages hold an opaque session token (in an `HttpOnly`
//! cookie) and exchange it for a fresh access token when theirs expires.
//! Redis holds only the token's SHA-256, with the account and the state
//! version it was issued for, under an absolute lifetime: a session is good
//! only while the account is active at that very version, so deactivation
//! and erasure end it at once, as they end access tokens (the floor).
//!
//! A *proof* is the same kind of token, issued when an inactive account's
//! right password was given in a browser (the login that showed the
//! reactivation prompt). It signs that browser in only if the very next
//! change of the account is a reactivation, within minutes: the link alone
//! never signs anyone in, and the browser that proved the password does not
//! have to give it again.

use std::time::Duration;

use base64::Engine as _;
use platform::kv::Kv;
use uuid::Uuid;

use crate::{
    accounts::{Accounts, Session},
    db,
    error::Error,
    tokens::digest,
};

/// How long a browser stays signed in without giving its password again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// How long a proof waits for its account to be reactivated.
pub const PROOF_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// What a stored token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Signed in while the account stays at `state_version`.
    Session { user_id: Uuid, state_version: i64 },
    /// Signed in once the account, inactive at `state_version`, is
    /// reactivated (its next version).
    Proof { user_id: Uuid, state_version: i64 },
}

impl Grant {
    fn encode(self) -> String {
        match self {
            Self::Session { user_id, state_version } => format!("session:{user_id}:{state_version}"),
            Self::Proof { user_id, state_version } => format!("proof:{user_id}:{state_version}"),
        }
    }

    fn decode(value: &str) -> Option<Self> {
        let mut parts = value.splitn(3, ':');
        let kind = parts.next()?;
        let user_id = parts.next()?.parse().ok()?;
        let state_version = parts.next()?.parse().ok()?;
        match kind {
            "session" => Some(Self::Session { user_id, state_version }),
            "proof" => Some(Self::Proof { user_id, state_version }),
            _ => None,
        }
    }

    fn lifetime(self) -> Duration {
        match self {
            Self::Session { .. } => SESSION_LIFETIME,
            Self::Proof { .. } => PROOF_LIFETIME,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WebSessions {
    kv: Kv,
}

impl WebSessions {
    pub fn new(kv: Kv) -> Self {
        Self { kv }
    }

    fn key(&self, token: &str) -> String {
        self.kv.key(&["web-session", &digest(token)])
    }

    /// A fresh token standing for `grant`.
    pub async fn issue(&self, grant: Grant) -> anyhow::Result<String> {
        let bytes: [u8; 32] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut connection = self.kv.connection();
        let _: () = redis::cmd("SET")
            .arg(self.key(&token))
            .arg(grant.encode())
            .arg("EX")
            .arg(grant.lifetime().as_secs())
            .query_async(&mut connection)
            .await?;
        Ok(token)
    }

    /// What a live token stands for; `None` for unknown or expired ones.
    pub async fn grant(&self, token: &str) -> anyhow::Result<Option<Grant>> {
        if !well_formed(token) {
            return Ok(None);
        }
        let mut connection = self.kv.connection();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.key(token))
            .query_async(&mut connection)
            .await?;
        Ok(value.as_deref().and_then(Grant::decode))
    }

    /// Uses a proof up (once): its grant the first time, `None` after.
    pub async fn take(&self, token: &str) -> anyhow::Result<Option<Grant>> {
        if !well_formed(token) {
            return Ok(None);
        }
        let mut connection = self.kv.connection();
        let value: Option<String> = redis::cmd("GETDEL")
            .arg(self.key(token))
            .query_async(&mut connection)
            .await?;
        Ok(value.as_deref().and_then(Grant::decode))
    }

    /// Ends a session (logging out); unknown tokens are fine.
    pub async fn end(&self, token: &str) -> anyhow::Result<()> {
        if well_formed(token) {
            let mut connection = self.kv.connection();
            let _: i64 = redis::cmd("DEL")
                .arg(self.key(token))
                .query_async(&mut connection)
                .await?;
        }
        Ok(())
    }
}

/// A browser's login: signed in, or the proof an inactive account's
/// password was given.
#[derive(Debug)]
pub enum WebLogin {
    SignedIn { session: Session, token: String },
    Inactive { self_service: bool, proof: Option<String> },
}

impl Accounts {
    /// Logs a browser in: the same checks and answers as [`Accounts::login`],
    /// plus a session token; for an inactive account that may reactivate
    /// itself, a proof instead.
    pub async fn start_web_session(
        &self,
        email: &str,
        password: &str,
        client_address: &str,
    ) -> Result<WebLogin, Error> {
        match self.login_checked(email, password, client_address).await? {
            Ok(session) => {
                let grant = Grant::Session {
                    user_id: session.account.id,
                    state_version: session.account.state_version,
                };
                let token = self.web_sessions.issue(grant).await?;
                Ok(WebLogin::SignedIn { session, token })
            }
            Err(account) => {
                let self_service = account
                    .deactivation_reason
                    .is_some_and(crate::domain::DeactivationReason::allows_self_reactivation);
                let proof = if self_service {
                    let grant = Grant::Proof {
                        user_id: account.id,
                        state_version: account.state_version,
                    };
                    Some(self.web_sessions.issue(grant).await?)
                } else {
                    None
                };
                Ok(WebLogin::Inactive { self_service, proof })
            }
        }
    }

    /// A fresh access token for a live session, or for a proof whose account
    /// has been reactivated since (the proof then becomes a session: the
    /// token returned replaces it). Anything else is `SessionEnded`.
    pub async fn refresh_web_session(&self, token: &str) -> Result<(Session, String), Error> {
        let grant = self.web_sessions.grant(token).await?.ok_or(Error::SessionEnded)?;
        let (user_id, wanted_version) = match grant {
            Grant::Session { user_id, state_version } => (user_id, state_version),
            Grant::Proof { user_id, state_version } => (user_id, state_version + 1),
        };
        // Under the same lock as a login: no change of state in flight.
        let mut tx = self.pool.begin().await?;
        let account = db::users::lock_shared(&mut tx, user_id)
            .await?
            .filter(|account| account.is_active && account.state_version == wanted_version)
            .ok_or(Error::SessionEnded)?;
        let token = match grant {
            Grant::Session { .. } => token.to_owned(),
            Grant::Proof { .. } => {
                // Once: of two tabs racing, one converts it.
                self.web_sessions.take(token).await?.ok_or(Error::SessionEnded)?;
                let grant = Grant::Session {
                    user_id,
                    state_version: account.state_version,
                };
                self.web_sessions.issue(grant).await?
            }
        };
        Ok((self.session_for(tx, account).await?, token))
    }

    /// Logging out: the session token stops working.
    pub async fn end_web_session(&self, token: &str) -> Result<(), Error> {
        Ok(self.web_sessions.end(token).await?)
    }
}

/// Anything but 43 URL-safe characters was never issued: spare Redis.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_back_as_written() {
        let user_id = Uuid::new_v4();
        for grant in [
            Grant::Session {
                user_id,
                state_version: 3,
            },
            Grant::Proof {
                user_id,
                state_version: 7,
            },
        ] {
            assert_eq!(Grant::decode(&grant.encode()), Some(grant));
        }
        assert_eq!(Grant::decode("other:x:1"), None);
    }
}
