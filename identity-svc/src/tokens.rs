//! One-time reactivation tokens, kept in Redis.
//!
//! A token is 256 bits from the OS's CSPRNG, URL-safe base64 in the link.
//! Redis holds only its SHA-256 (a leaked Redis dump cannot be replayed),
//! with the account and the state version it was issued for, under a TTL.
//! Issuing a new token for an account deletes the previous one in the same
//! atomic script, so only the latest link works. Consuming is a single
//! `GETDEL`: of any number of concurrent attempts exactly one gets the
//! token.
//!
//! Every command runs once more if it met a dropped connection (Redis
//! restarted): each one is safe to repeat, as its method says.

use std::time::Duration;

use base64::Engine as _;
use platform::kv::Kv;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Replaces an account's current token: deletes the previous token (if any),
/// stores the new one and points the account at it.
const ISSUE: &str = r"
local previous = redis.call('GET', KEYS[1])
if previous then redis.call('DEL', ARGV[4] .. previous) end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
";

/// What a token stood for when it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub user_id: Uuid,
    pub state_version: i64,
}

#[derive(Clone, Debug)]
pub struct ReactivationTokens {
    kv: Kv,
    ttl: Duration,
}

/// SHA-256 of `text`, in hex: how tokens (and emails, in rate-limit keys)
/// appear in Redis.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl ReactivationTokens {
    pub fn new(kv: Kv, ttl: Duration) -> Self {
        Self { kv, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn token_key(&self, hash: &str) -> String {
        self.kv.key(&["reactivation", "token", hash])
    }

    fn current_key(&self, user_id: Uuid) -> String {
        self.kv.key(&["reactivation", "current", &user_id.to_string()])
    }

    /// A fresh token for `claim`, superseding the account's previous one.
    /// Returns the token itself (for the link) and its hash.
    pub async fn issue(&self, claim: Claim) -> anyhow::Result<(String, String)> {
        let bytes: [u8; 32] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let hash = digest(&token);
        // Repeated, the script stores the same token again.
        let (current, token_key) = (self.current_key(claim.user_id), self.token_key(&hash));
        let (value, prefix) = (format!("{}:{}", claim.user_id, claim.state_version), self.token_key(""));
        let ttl = self.ttl.as_secs().max(1);
        let script = redis::Script::new(ISSUE);
        let _: i32 = self
            .kv
            .retry_once(|mut connection| {
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(&current)
                    .key(&token_key)
                    .arg(&hash)
                    .arg(&value)
                    .arg(ttl)
                    .arg(&prefix);
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        Ok((token, hash))
    }

    /// The claim of a live token, without using it up; `true` the first time
    /// it is asked about (the link was opened), `false` after.
    pub async fn first_look(&self, token: &str) -> anyhow::Result<Option<(Claim, bool)>> {
        let token = token.trim();
        if token.len() != 43 {
            return Ok(None);
        }
        let hash = digest(token);
        let token_key = self.token_key(&hash);
        // A read: safe to repeat.
        let value: Option<String> = self
            .kv
            .retry_once(|mut connection| {
                let mut command = redis::cmd("GET");
                command.arg(&token_key);
                async move { command.query_async(&mut connection).await }
            })
            .await?;
        let Some(claim) = value.as_deref().and_then(parse_claim) else {
            return Ok(None);
        };
        // Repeated after a first run whose answer was lost, the mark is
        // found and the opening counts as seen before: what the caller's
        // own retry of a failed call would have found anyway.
        let opened = self.kv.key(&["reactivation", "opened", &hash]);
        let ttl = self.ttl.as_secs().max(1);
        let first: bool = self
            .kv
            .retry_once(|mut connection| {
                let mut command = redis::cmd("SET");
                command.arg(&opened).arg(1).arg("NX").arg("EX").arg(ttl);
                async move { command.query_async::<Option<String>>(&mut connection).await }
            })
            .await?
            .is_some();
        Ok(Some((claim, first)))
    }

    /// Voids the account's outstanding link, if any.
    pub async fn revoke(&self, user_id: Uuid) -> anyhow::Result<()> {
        // Both steps delete: repeating them deletes the same.
        let current_key = self.current_key(user_id);
        let current: Option<String> = self
            .kv
            .retry_once(|mut connection| {
                let mut command = redis::cmd("GETDEL");
                command.arg(&current_key);
                async move { command.query_async(&mut connection).await }
            })
            .await?;
        if let Some(hash) = current {
            let token_key = self.token_key(&hash);
            let _: i64 = self
                .kv
                .retry_once(|mut connection| {
                    let mut command = redis::cmd("DEL");
                    command.arg(&token_key);
                    async move { command.query_async(&mut connection).await }
                })
                .await?;
        }
        Ok(())
    }

    /// Uses the token up: its claim the first time, `None` ever after (and
    /// for unknown, expired or superseded tokens).
    pub async fn consume(&self, token: &str) -> anyhow::Result<Option<Claim>> {
        let token = token.trim();
        // Anything but 43 URL-safe characters was never issued: spare Redis.
        if token.len() != 43
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(None);
        }
        // Repeating the GETDEL never hands the token out twice. If a first
        // run took the token and its answer was lost, the repeat finds
        // nothing and the link is refused — as the caller's own retry of a
        // failed call would have been; when the first run never reached
        // Redis (the usual stale connection), the repeat is what makes the
        // first call after a restart work.
        let token_key = self.token_key(&digest(token));
        let value: Option<String> = self
            .kv
            .retry_once(|mut connection| {
                let mut command = redis::cmd("GETDEL");
                command.arg(&token_key);
                async move { command.query_async(&mut connection).await }
            })
            .await?;
        Ok(value.as_deref().and_then(parse_claim))
    }
}

/// A stored `user:version` claim.
fn parse_claim(value: &str) -> Option<Claim> {
    let (user, version) = value.split_once(':')?;
    Some(Claim {
        user_id: user.parse().ok()?,
        state_version: version.parse().ok()?,
    })
}
