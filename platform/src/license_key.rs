//! A license key, `SK-XXXX-XXXX-XXXX-XXXX`: four groups of four uppercase
//! letters and digits, 36^16 ≈ 2^82 possibilities, drawn from the operating
//! system's CSPRNG so keys cannot be guessed from one another.
//!
//! license-svc owns keys; the gateway parses them too, before its
//! validation cache, so both agree on what a key is and on its one spelling
//! (the cache is keyed, and invalidated, by that spelling).

use chrono::{DateTime, Utc};
use rand::{Rng as _, TryRngCore as _, rngs::OsRng};

use crate::redacted::redacted_text;

/// license-svc's expiry rule: a key with an expiry has expired from that
/// moment on. The gateway applies it to the validations it remembers, so a
/// cached answer turns expired exactly when license-svc's would.
pub fn has_expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|expiry| expiry <= now)
}

/// The [`crate::invalidation`] topic on which license-svc announces every
/// key it changed (created, edited, extended, disabled, …), by its spelling
/// [`LicenseKey::as_str`].
pub const CHANGED_TOPIC: &str = "license-key";

const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const GROUPS: usize = 4;
const GROUP_LEN: usize = 4;
/// `SK-` plus four groups of four, separated by dashes.
const LEN: usize = 3 + GROUPS * GROUP_LEN + (GROUPS - 1);

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LicenseKey(String);

impl LicenseKey {
    /// Trims `raw` and upper-cases it (a key read aloud or retyped keeps
    /// working), then checks the shape exactly.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let key = raw.trim().to_ascii_uppercase();
        if key.is_empty() {
            return Err("key is required".into());
        }
        let well_formed = key.len() == LEN
            && key.starts_with("SK-")
            && key[3..].split('-').count() == GROUPS
            && key[3..]
                .split('-')
                .all(|group| group.len() == GROUP_LEN && group.bytes().all(|byte| ALPHABET.contains(&byte)));
        if !well_formed {
            return Err("key must look like SK-XXXX-XXXX-XXXX-XXXX (letters and digits)".into());
        }
        Ok(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        // OsRng reads the kernel's CSPRNG directly; failing to read it is
        // not something a service can carry on from.
        let mut rng = OsRng.unwrap_err();
        let mut key = String::with_capacity(LEN);
        key.push_str("SK");
        for _ in 0..GROUPS {
            key.push('-');
            for _ in 0..GROUP_LEN {
                key.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
            }
        }
        Self(key)
    }
}

redacted_text!(LicenseKey);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::LicenseKey;

    #[test]
    fn debug_output_never_shows_the_value() {
        let value = LicenseKey::parse("SK-ABCD-EFGH-JKLM-NPQR").unwrap();
        assert!(!format!("{value:?}").contains("ABCD"));
    }

    #[test]
    fn generated_keys_have_the_documented_shape_and_differ() {
        let keys: HashSet<String> = (0..1000).map(|_| LicenseKey::generate().as_str().to_owned()).collect();
        assert_eq!(keys.len(), 1000);
        for key in &keys {
            assert_eq!(LicenseKey::parse(key).unwrap().as_str(), key);
        }
    }

    #[test]
    fn a_key_typed_in_lower_case_is_the_same_key() {
        assert_eq!(
            LicenseKey::parse(" sk-abc1-def2-ghi3-jkl4 ").unwrap().as_str(),
            "SK-ABC1-DEF2-GHI3-JKL4"
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for raw in [
            "",
            "SK-ABC1-DEF2-GHI3",
            "SK-ABC1-DEF2-GHI3-JKL45",
            "XK-ABC1-DEF2-GHI3-JKL4",
            "SK-ABC1-DEF2-GHI3_JKL4",
            "SK-ABC!-DEF2-GHI3-JKL4",
            "SK-ABC1-DEF2-GHI3-JKL4-",
            "SK-ÄBC1-DEF2-GHI3-JKL4",
        ] {
            assert!(LicenseKey::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
