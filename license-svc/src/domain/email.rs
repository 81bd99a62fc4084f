//! A customer's email address, normalised (trimmed, lower-cased) so one
//! mailbox is one customer: the trial cap and the listing filter count on it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// One `@` between a non-empty local part and a dotted domain, no
    /// whitespace, at most 254 characters. (Deliverability is notify-svc's
    /// concern; this only keeps obvious typos out of the key table.)
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("email is required".into());
        }
        if email.chars().count() > 254 {
            return Err("email is longer than 254 characters".into());
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("email must contain an @".into());
        };
        let domain_ok = domain.split('.').count() >= 2 && domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || domain.contains('@') || !domain_ok || email.chars().any(char::is_whitespace) {
            return Err("email is malformed".into());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn one_mailbox_is_one_customer_whatever_its_case() {
        assert_eq!(Email::parse(" Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@example..com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
