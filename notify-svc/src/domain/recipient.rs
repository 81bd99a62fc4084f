//! The address a message goes to, parsed once at the edge with the same
//! parser the SMTP client uses, so a message that was accepted can always be
//! addressed.

use std::fmt;

use lettre::Address;

/// An email address a message can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient(Address);

/// The longest address SMTP can carry (RFC 5321: a 256-octet path minus the
/// angle brackets).
const MAX_LENGTH: usize = 254;

impl Recipient {
    /// Trims `raw` and checks it is a deliverable `local@domain` address.
    /// Display names (`Ada <ada@example.com>`) are refused: the caller sends
    /// an address, the template decides how to greet.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("recipient is required".into());
        }
        if raw.len() > MAX_LENGTH {
            return Err(format!("recipient is longer than {MAX_LENGTH} characters"));
        }
        let address: Address = raw
            .parse()
            .map_err(|_| "recipient must be an email address".to_owned())?;
        // lettre accepts single-label domains (`ada@localhost`), which no
        // customer has; a dot keeps typos such as `ada@examplecom` out.
        if !address.domain().contains('.') {
            return Err("recipient has an invalid domain".into());
        }
        Ok(Self(address))
    }

    pub fn address(&self) -> &Address {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Recipient;

    #[test]
    fn addresses_are_trimmed_and_kept() {
        let recipient = Recipient::parse("  ada.lovelace+news@example.com ").unwrap();
        assert_eq!(recipient.as_str(), "ada.lovelace+news@example.com");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@@example.com",
            "ada lovelace@example.com",
            "Ada <ada@example.com>",
            "ada@example.com\r\nBcc: eve@example.com",
        ] {
            assert!(Recipient::parse(raw).is_err(), "{raw:?} was accepted");
        }
        assert!(Recipient::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
