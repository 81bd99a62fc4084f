//! Rate limits kept in Redis, shared by every replica.
//!
//! [`Limiter::hit`] counts one attempt against a fixed window (a [`Rate`]:
//! `limit` per `window`); [`Limiter::cooldown`] allows one attempt per `period`. Both
//! answer how long the caller must wait when refused, for `Retry-After`.

use std::time::Duration;

use redis::AsyncCommands;

use crate::kv::Kv;

/// Marks a cooldown for `ARGV[1]` (this attempt) unless one is running:
/// -1 when the attempt is allowed (its own mark counts as none), otherwise
/// the milliseconds the running cooldown has left.
const COOLDOWN: &str = r"
local mark = redis.call('GET', KEYS[1])
if not mark then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return -1
end
if mark == ARGV[1] then return -1 end
return redis.call('PTTL', KEYS[1])
";

/// Why an attempt was refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

/// A fixed-window limit: at most `limit` attempts per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window: Duration,
}

impl Rate {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }
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
    /// `rate.limit` attempts fall in the current window.
    pub async fn hit(&self, name: &str, subject: &str, rate: Rate) -> anyhow::Result<Result<(), Limited>> {
        let Rate { limit, window } = rate;
        let (key, refusal) = self.window(name, subject, window);
        let window_secs = window.as_secs().max(1);
        // Repeated on a dropped connection: at worst one attempt is counted
        // twice, which only makes the limit a little stricter.
        let (count, ()): (u32, ()) = self
            .kv
            .retry_once(|mut connection| {
                let key = key.clone();
                async move {
                    redis::pipe()
                        .atomic()
                        .incr(&key, 1)
                        .expire(&key, window_secs as i64)
                        .query_async(&mut connection)
                        .await
                }
            })
            .await?;
        if count > limit {
            return Ok(Err(refusal));
        }
        Ok(Ok(()))
    }

    /// The key counting `subject`'s attempts in the current window, and the
    /// refusal that lasts until the window ends.
    fn window(&self, name: &str, subject: &str, window: Duration) -> (String, Limited) {
        let window_secs = window.as_secs().max(1);
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let current = now / window_secs;
        let key = self.kv.key(&["limit", name, subject, &current.to_string()]);
        let retry_after = Duration::from_secs((current + 1) * window_secs - now);
        (key, Limited { retry_after })
    }

    /// Whether `subject` is already over `rate.limit` in the current window,
    /// without counting an attempt (for limits counted only on failure).
    pub async fn check(&self, name: &str, subject: &str, rate: Rate) -> anyhow::Result<Result<(), Limited>> {
        let Rate { limit, window } = rate;
        let (key, refusal) = self.window(name, subject, window);
        // A read: safe to repeat on a fresh connection.
        let count: Option<u32> = self
            .kv
            .retry_once(|mut connection| {
                let key = key.clone();
                async move { connection.get(&key).await }
            })
            .await?;
        if count.unwrap_or(0) >= limit {
            return Ok(Err(refusal));
        }
        Ok(Ok(()))
    }

    /// Forgets the counts (limit per `window`) and cooldown of `subject`
    /// under `name` (the subject asked to be forgotten). The keys are named,
    /// not searched for: a count lives in the current window's key, or in
    /// the previous one until it expires.
    pub async fn forget(&self, name: &str, subject: &str, window: Duration) -> anyhow::Result<()> {
        let (current, _) = self.window(name, subject, window);
        let window_secs = window.as_secs().max(1);
        let previous_window = (chrono::Utc::now().timestamp().max(0) as u64 / window_secs).saturating_sub(1);
        let previous = self.kv.key(&["limit", name, subject, &previous_window.to_string()]);
        let cooldown = self.kv.key(&["cooldown", name, subject]);
        let keys = [current, previous, cooldown];
        // Deleting twice deletes the same.
        let _: i64 = self
            .kv
            .retry_once(|mut connection| {
                let keys = keys.clone();
                async move { redis::cmd("DEL").arg(&keys).query_async(&mut connection).await }
            })
            .await?;
        Ok(())
    }

    /// Allows one attempt for `subject` under `name` per `period`.
    pub async fn cooldown(&self, name: &str, subject: &str, period: Duration) -> anyhow::Result<Result<(), Limited>> {
        if period.is_zero() {
            return Ok(Ok(()));
        }
        let key = self.kv.key(&["cooldown", name, subject]);
        // The mark names this attempt, so a run repeated after a dropped
        // connection recognises the mark its first run may have left and
        // still allows the attempt.
        let attempt = uuid::Uuid::new_v4().to_string();
        let period_ms = period.as_millis() as u64;
        let script = redis::Script::new(COOLDOWN);
        let remaining_ms: i64 = self
            .kv
            .retry_once(|mut connection| {
                let mut invocation = script.prepare_invoke();
                invocation.key(&key).arg(&attempt).arg(period_ms);
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        if remaining_ms < 0 {
            return Ok(Ok(()));
        }
        let retry_after = Duration::from_millis(remaining_ms.max(1000) as u64);
        Ok(Err(Limited {
            retry_after: Duration::from_secs(retry_after.as_secs_f64().ceil() as u64),
        }))
    }
}
