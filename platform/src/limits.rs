//! Rate limits kept in Redis, shared by every replica.
//!
//! [`Limiter::hit`] counts one attempt against a fixed window (`limit` per
//! `window`); [`Limiter::cooldown`] allows one attempt per `period`. Both
//! answer how long the caller must wait when refused, for `Retry-After`.

use std::time::Duration;

use redis::AsyncCommands;

use crate::kv::Kv;

/// Why an attempt was refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

#[derive(Clone, Debug)]
pub struct Limiter {
    kv: Kv,
}

impl Limiter {
    pub fn new(kv: Kv) -> Self {
        Self { kv }
    }

    /// Counts one attempt for `subject` under `name`; refused once more than
    /// `limit` attempts fall in the current window.
    pub async fn hit(
        &self,
        name: &str,
        subject: &str,
        limit: u32,
        window: Duration,
    ) -> anyhow::Result<Result<(), Limited>> {
        let window_secs = window.as_secs().max(1);
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let current = now / window_secs;
        let key = self.kv.key(&["limit", name, subject, &current.to_string()]);
        let mut connection = self.kv.connection();
        let (count, ()): (u32, ()) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, window_secs as i64)
            .query_async(&mut connection)
            .await?;
        if count > limit {
            let retry_after = Duration::from_secs((current + 1) * window_secs - now);
            return Ok(Err(Limited { retry_after }));
        }
        Ok(Ok(()))
    }

    /// Forgets every count and cooldown of `subject` under `name` (the
    /// subject asked to be forgotten).
    pub async fn forget(&self, name: &str, subject: &str) -> anyhow::Result<()> {
        let mut connection = self.kv.connection();
        let pattern = self.kv.key(&["limit", name, subject, "*"]);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.push(self.kv.key(&["cooldown", name, subject]));
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut connection).await?;
        Ok(())
    }

    /// Allows one attempt for `subject` under `name` per `period`.
    pub async fn cooldown(&self, name: &str, subject: &str, period: Duration) -> anyhow::Result<Result<(), Limited>> {
        if period.is_zero() {
            return Ok(Ok(()));
        }
        let key = self.kv.key(&["cooldown", name, subject]);
        let mut connection = self.kv.connection();
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(period.as_millis() as u64));
        let set: Option<String> = connection.set_options(&key, 1, options).await?;
        if set.is_some() {
            return Ok(Ok(()));
        }
        let remaining_ms: i64 = connection.pttl(&key).await?;
        let retry_after = Duration::from_millis(remaining_ms.max(1000) as u64);
        Ok(Err(Limited {
            retry_after: Duration::from_secs(retry_after.as_secs_f64().ceil() as u64),
        }))
    }
}
