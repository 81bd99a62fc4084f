//! Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`,
//! an HMAC-SHA256 of `"<t>.<body>"` under the endpoint secret.
//!
//! The endpoint is public, so checking a signature must cost the same small
//! amount whatever an attacker sends: the header and the body are capped,
//! only well-formed 32-byte `v1` candidates count and at most
//! [`MAX_CANDIDATES`] of them, and the body is hashed once — each candidate
//! is compared against that one MAC, never by hashing the body again.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Error;

/// How far a signature's timestamp may be from now (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

/// The longest `Stripe-Signature` accepted. Stripe sends a timestamp and one
/// `v1` per live secret (two while a secret is rolled), about 150 bytes.
pub const MAX_HEADER_BYTES: usize = 1024;

/// The most `v1` candidates looked at: one per secret Stripe may be signing
/// with at once, with room to spare.
pub const MAX_CANDIDATES: usize = 4;

/// The largest event body accepted. Stripe's events are a few KiB; the
/// gateway's body limit for the webhook route is the same.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Checks `header` over the raw `payload`.
pub fn verify(header: &str, payload: &[u8], secret: &str, now: DateTime<Utc>) -> Result<(), Error> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::SignatureInvalid("body too large"));
    }
    verify_with(header, now, |timestamp| signed_payload(secret, timestamp, payload))
}

/// The MAC of `"<timestamp>.<payload>"`, not yet finalised, so that it can
/// be compared with several candidates.
fn signed_payload(secret: &str, timestamp: i64, payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The checks, with the body's MAC computed by `sign` — an `FnOnce`, so the
/// body is hashed at most once, and only once the header has passed.
fn verify_with(header: &str, now: DateTime<Utc>, sign: impl FnOnce(i64) -> HmacSha256) -> Result<(), Error> {
    let signature = Header::parse(header)?;
    if (now.timestamp() - signature.timestamp).abs() > TOLERANCE_SECS {
        return Err(Error::SignatureInvalid("timestamp outside the tolerance"));
    }
    let mac = sign(signature.timestamp);
    // A clone of the keyed state only finalises it: the body is not read again.
    // `verify_slice` compares in constant time.
    let matches = signature
        .candidates
        .iter()
        .any(|candidate| mac.clone().verify_slice(candidate).is_ok());
    if matches {
        Ok(())
    } else {
        Err(Error::SignatureInvalid("no signature matches"))
    }
}

/// A parsed `Stripe-Signature`.
#[derive(Debug)]
struct Header {
    timestamp: i64,
    candidates: Vec<[u8; 32]>,
}

impl Header {
    fn parse(header: &str) -> Result<Self, Error> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(Error::SignatureInvalid("header too long"));
        }
        let mut timestamp = None;
        let mut candidates = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
                // Other schemes (`v0`) and malformed values are not candidates.
                Some(("v1", value)) => {
                    if let Some(candidate) = decode_hex32(value) {
                        if candidates.len() == MAX_CANDIDATES {
                            return Err(Error::SignatureInvalid("too many signatures"));
                        }
                        candidates.push(candidate);
                    }
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(Error::SignatureInvalid("no timestamp"))?;
        if candidates.is_empty() {
            return Err(Error::SignatureInvalid("no v1 signature"));
        }
        Ok(Self { timestamp, candidates })
    }
}

/// 64 hex digits as 32 bytes; anything else is `None`.
fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use chrono::TimeZone as _;

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
        let mac = signed_payload(secret, t, payload).finalize().into_bytes();
        format!("t={t},v1={}", hex(&mac))
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn accepts_a_fresh_signature_and_refuses_the_rest() {
        let now = now();
        let body = br#"{"id":"evt_1"}"#;
        let good = sign("whsec_a", now.timestamp() - 10, body);
        assert!(verify(&good, body, "whsec_a", now).is_ok());
        assert!(
            verify(&good, br#"{"id":"evt_2"}"#, "whsec_a", now).is_err(),
            "another body"
        );
        assert!(verify(&good, body, "whsec_b", now).is_err(), "another secret");
        let stale = sign("whsec_a", now.timestamp() - TOLERANCE_SECS - 1, body);
        assert!(
            verify(&stale, body, "whsec_a", now).is_err(),
            "older than the tolerance"
        );
        assert!(verify("t=1700000000", body, "whsec_a", now).is_err(), "no v1");
        assert!(verify("garbage", body, "whsec_a", now).is_err());
        // Stripe sends several v1 signatures while a secret is being rolled,
        // and may add schemes of its own.
        let rolled = format!("{good},v1={},v0=00ff,v1=zz", hex(&[7; 32]));
        assert!(verify(&rolled, body, "whsec_a", now).is_ok());
    }

    #[test]
    fn the_body_is_hashed_at_most_once_and_candidates_are_bounded() {
        let now = now();
        let t = now.timestamp();
        let body = br#"{"id":"evt_1"}"#;
        let hashed = Cell::new(0);
        let counting = |timestamp| {
            hashed.set(hashed.get() + 1);
            signed_payload("whsec_a", timestamp, body)
        };

        // As many well-formed wrong candidates as allowed: one MAC, compared
        // with each.
        let wrong = (0..MAX_CANDIDATES)
            .map(|i| format!("v1={}", hex(&[i as u8; 32])))
            .collect::<Vec<_>>()
            .join(",");
        assert!(verify_with(&format!("t={t},{wrong}"), now, counting).is_err());
        assert_eq!(hashed.get(), 1, "the body is hashed once for all candidates");

        // One more is refused before the body is looked at.
        hashed.set(0);
        let too_many = format!("t={t},{wrong},v1={}", hex(&[9; 32]));
        assert!(too_many.len() <= MAX_HEADER_BYTES);
        assert!(verify_with(&too_many, now, counting).is_err());
        assert_eq!(hashed.get(), 0);

        // A flood of empty entries is refused by its length alone.
        let flood = format!("t={t}{}", ",v1=".repeat(100_000));
        assert!(verify_with(&flood, now, counting).is_err());
        // Empty or malformed entries that fit are no candidates at all.
        assert!(verify_with(&format!("t={t},v1=,v1=00ff,v1={}", "g".repeat(64)), now, counting).is_err());
        assert_eq!(hashed.get(), 0, "nothing to compare, nothing hashed");

        // A stale timestamp costs no hashing either.
        let stale = sign("whsec_a", t - TOLERANCE_SECS - 1, body);
        assert!(verify_with(&stale, now, counting).is_err());
        assert_eq!(hashed.get(), 0);
    }

    #[test]
    fn an_oversized_body_is_refused_before_hashing() {
        let now = now();
        let body = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        let header = sign("whsec_a", now.timestamp(), &body);
        assert!(verify(&header, &body, "whsec_a", now).is_err());
    }
}
