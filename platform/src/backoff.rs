//! When a failed attempt is tried again: exponential backoff with a cap,
//! and a little jitter so that work which failed together (an SMTP outage,
//! a receiver that was down) does not all come back at the same instant.
//! notify-svc's deliveries and every service's outbox relay wait by it.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failed attempt.
    pub base: Duration,
    /// No wait is longer than this.
    pub max: Duration,
}

impl Backoff {
    /// The wait without jitter after `attempts` failed attempts:
    /// `base × 2^(attempts − 1)`, capped at `max`.
    pub fn nominal(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// The wait after `attempts` failed attempts: the nominal wait shortened
    /// by a random 0–10 %, so it never exceeds the cap.
    pub fn delay(&self, attempts: u32) -> Duration {
        let nominal = self.nominal(attempts);
        nominal.mul_f64(1.0 - rand::random_range(0.0..0.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_wait_doubles_with_each_attempt_up_to_the_cap() {
        let backoff = backoff();
        let waits: Vec<u64> = (1..=13).map(|attempts| backoff.nominal(attempts).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]);
        assert_eq!(backoff.nominal(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn no_wait_exceeds_the_cap_jitter_included() {
        let backoff = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(300),
        };
        for attempts in [1, 2, 5, 10, 40, u32::MAX] {
            for _ in 0..100 {
                assert!(backoff.delay(attempts) <= backoff.max);
            }
        }
        assert!(backoff.delay(1) <= Duration::from_millis(500) && backoff.delay(1) >= Duration::from_millis(450));
        assert!(backoff.delay(2) >= Duration::from_millis(900));
        assert!(backoff.delay(5) >= Duration::from_millis(7200));
    }

    #[test]
    fn jitter_stays_within_ten_percent_below_the_nominal_wait() {
        let backoff = backoff();
        for attempts in [1, 5, 20] {
            let nominal = backoff.nominal(attempts);
            for _ in 0..100 {
                let delay = backoff.delay(attempts);
                assert!(
                    delay <= nominal && delay >= nominal.mul_f64(0.9),
                    "{delay:?} vs {nominal:?}"
                );
            }
        }
    }
}
