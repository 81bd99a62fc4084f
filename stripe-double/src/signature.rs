//! Stripe's webhook signature scheme: `Stripe-Signature: t=<unix>,v1=<hex>`,
//! where `v1` is HMAC-SHA256 keyed with the endpoint secret over
//! `"<t>.<raw body>"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `Stripe-Signature` header Stripe would send for `payload` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex(&digest(secret, timestamp, payload)))
}

/// HMAC-SHA256 of `"<timestamp>.<payload>"` under `secret`.
pub fn digest(secret: &str, timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // python3: hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            sign("whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
