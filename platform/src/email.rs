//! An email address, parsed once at the edge and normalised so that one
//! mailbox is one account (or customer, or recipient) whatever its
//! capitalisation. Every service applies this one rule to what it is sent;
//! what a service stored under an older, looser rule still reads through
//! [`Email::from_stored`].

use crate::redacted::redacted_text;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// The longest address SMTP can carry (RFC 5321: a 256-octet path minus the
/// angle brackets).
const MAX_LENGTH: usize = 254;
/// The longest local part (RFC 5321).
const MAX_LOCAL_LENGTH: usize = 64;
/// The longest domain label (RFC 1035).
const MAX_LABEL_LENGTH: usize = 63;

impl Email {
    /// Trims and lower-cases `raw`, then checks the shape of an address:
    /// one `@`, a local part of at most 64 characters, a domain with a dot
    /// made of letters, digits and hyphens, at most 254 characters in all.
    /// Whitespace, display names (`Ada <ada@example.com>`) and single-label
    /// domains (`ada@localhost`, which no customer has) are refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("email is required".into());
        }
        if email.chars().count() > MAX_LENGTH {
            return Err(format!("email is longer than {MAX_LENGTH} characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("email must contain an @".into());
        };
        let local_ok = !local.is_empty()
            && local.len() <= MAX_LOCAL_LENGTH
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok {
            return Err("email has an invalid part before the @".into());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= MAX_LABEL_LENGTH
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return Err("email has an invalid domain".into());
        }
        Ok(Self(email))
    }

    /// An address read back from storage, as it was stored. Rows written
    /// before [`Email::parse`] was every service's rule may hold addresses
    /// it would refuse today; they were accepted then and still read.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }
}

redacted_text!(Email);

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn debug_output_never_shows_the_value() {
        let value = Email::parse("Someone@Example.com").unwrap();
        assert!(!format!("{value:?}").contains("someone"));
        assert_eq!(format!("{value:?}"), "Email(redacted)");
        assert_eq!(value.to_string(), "someone@example.com");
    }

    #[test]
    fn addresses_are_normalised_to_one_account_per_mailbox() {
        assert_eq!(
            Email::parse("  Ada.Lovelace@Example.COM ").unwrap().as_str(),
            "ada.lovelace@example.com"
        );
        assert_eq!(Email::parse(" Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        assert_eq!(
            Email::parse("a+tag@sub.example.org").unwrap().as_str(),
            "a+tag@sub.example.org"
        );
        assert_eq!(
            Email::parse("  ada.lovelace+news@example.com ").unwrap().as_str(),
            "ada.lovelace+news@example.com"
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "   ",
            "ada",
            "plainaddress",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@localhost",
            "ada@@example.com",
            "ada lovelace@example.com",
            "a da@example.com",
            "Ada <ada@example.com>",
            "ada@example.com\r\nBcc: eve@example.com",
            ".ada@example.com",
            "ada..l@example.com",
            "ada@-example.com",
            "ada@example..com",
            "ada@exa_mple.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
        let long_domain = format!("ada@{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(Email::parse(&long_domain).is_err());
    }

    #[test]
    fn stored_addresses_read_back_as_they_were_stored() {
        // Accepted by an older, looser rule: it still reads.
        let stored = Email::from_stored("ada@exa_mple.com".into());
        assert_eq!(stored.as_str(), "ada@exa_mple.com");
        assert_eq!(format!("{stored:?}"), "Email(redacted)");
    }
}
