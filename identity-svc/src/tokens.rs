//! One-time reactivation tokens, kept in Redis.
//!
//! A token is 256 bits from the OS's CSPRNG, URL-safe base64 in the link.
//! Redis holds only its SHA-256 (a leaked Redis dump cannot be replayed),
//! with the account and the state version it was issued for, under a TTL.
//! Issuing a new token for an account deletes the previous one in the same
//! atomic script, so only the latest link works. Consuming is a single
//! `GETDEL`: of any number of concurrent attempts exactly one gets the
//! token.

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
        let mut connection = self.kv.connection();
        let _: i32 = redis::Script::new(ISSUE)
            .key(self.current_key(claim.user_id))
            .key(self.token_key(&hash))
            .arg(&hash)
            .arg(format!("{}:{}", claim.user_id, claim.state_version))
            .arg(self.ttl.as_secs().max(1))
            .arg(self.token_key(""))
            .invoke_async(&mut connection)
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
        let mut connection = self.kv.connection();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.token_key(&hash))
            .query_async(&mut connection)
            .await?;
        let Some(claim) = value.as_deref().and_then(parse_claim) else {
            return Ok(None);
        };
        let first: bool = redis::cmd("SET")
            .arg(self.kv.key(&["reactivation", "opened", &hash]))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(self.ttl.as_secs().max(1))
            .query_async::<Option<String>>(&mut connection)
            .await?
            .is_some();
        Ok(Some((claim, first)))
    }

    /// Voids the account's outstanding link, if any.
    pub async fn revoke(&self, user_id: Uuid) -> anyhow::Result<()> {
        let mut connection = self.kv.connection();
        let current: Option<String> = redis::cmd("GETDEL")
            .arg(self.current_key(user_id))
            .query_async(&mut connection)
            .await?;
        if let Some(hash) = current {
            let _: i64 = redis::cmd("DEL")
                .arg(self.token_key(&hash))
                .query_async(&mut connection)
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
        let mut connection = self.kv.connection();
        let value: Option<String> = redis::cmd("GETDEL")
            .arg(self.token_key(&digest(token)))
            .query_async(&mut connection)
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
