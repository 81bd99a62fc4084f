//! A rate limit kept in this process's memory, for the public hot path.
//!
//! License validation is called by products on every start, far more often
//! than anything else, so its limit must cost next to nothing: a fixed
//! one-second window per client address behind one mutex, no Redis round
//! trip. The price is that each gateway replica counts on its own, so the
//! limit a client sees is the configured one times the number of replicas
//! its requests are spread over. Limits that must hold across replicas
//! (reactivation requests) stay in Redis (`platform::limits`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

/// Windows kept before old ones are swept; bounds memory under a flood of
/// distinct addresses.
const SWEEP_AT: usize = 100_000;

#[derive(Clone, Debug)]
pub struct LocalLimiter {
    per_second: u32,
    started: Instant,
    /// Client address → (window second, requests counted in it).
    windows: Arc<Mutex<HashMap<String, (u64, u32)>>>,
}

impl LocalLimiter {
    pub fn per_second(per_second: u32) -> Self {
        Self {
            per_second,
            started: Instant::now(),
            windows: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts one request of `client`; `false` when it is over the limit.
    pub fn allow(&self, client: &str) -> bool {
        self.allow_at(client, self.started.elapsed().as_secs())
    }

    fn allow_at(&self, client: &str, second: u64) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (window, _)| *window == second);
        }
        match windows.get_mut(client) {
            Some((window, count)) if *window == second => {
                *count = count.saturating_add(1);
                *count <= self.per_second
            }
            Some(entry) => {
                *entry = (second, 1);
                self.per_second >= 1
            }
            None => {
                windows.insert(client.to_owned(), (second, 1));
                self.per_second >= 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LocalLimiter;

    #[test]
    fn a_client_gets_its_allowance_each_second_and_no_more() {
        let limiter = LocalLimiter::per_second(3);
        let allowed = (0..5).filter(|_| limiter.allow_at("203.0.113.7", 10)).count();
        assert_eq!(allowed, 3);
        assert!(limiter.allow_at("198.51.100.1", 10), "another client is counted apart");
        assert!(limiter.allow_at("203.0.113.7", 11), "the next second starts afresh");
    }
}
