//! Finding accounts by email for support staff, and the record of what they
//! read: the search as parsed once at the edge, the opaque page token that
//! carries a search across pages, and the kinds of admin reads.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// The longest email an account can have, and so the longest worth
/// searching for.
const MAX_LENGTH: usize = 254;

/// Default number of accounts in one page of a search.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Most accounts in one page of a search.
pub const MAX_PAGE_SIZE: u32 = 200;

/// Accounts whose email is `text` (exact) or starts with it (prefix).
/// Emails are stored trimmed and lower-cased, so the text is too: the
/// comparison is case-insensitive. Any character is taken literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSearch {
    text: String,
    prefix: bool,
}

impl EmailSearch {
    /// Trims and lower-cases `raw`; refuses it empty or longer than 254
    /// characters.
    pub fn parse(raw: &str, prefix: bool) -> Result<Self, String> {
        let text = raw.trim().to_lowercase();
        if text.is_empty() {
            return Err("email is required".into());
        }
        if text.chars().count() > MAX_LENGTH {
            return Err(format!("email is longer than {MAX_LENGTH} characters"));
        }
        Ok(Self { text, prefix })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_prefix(&self) -> bool {
        self.prefix
    }
}

/// The number of accounts in one page: `0` (unset) is the default, more
/// than the maximum is the maximum.
pub fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        size => size.min(MAX_PAGE_SIZE),
    }
}

/// Where the next page of a search starts: after the last email of the
/// previous one. Opaque to callers (URL-safe base64), so they pass it back
/// rather than build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(String);

impl PageToken {
    /// The token of a page whose last account has `email`.
    pub fn after(email: &str) -> Self {
        Self(email.to_owned())
    }

    /// Reads a token this service issued; anything else is refused.
    pub fn decode(token: &str) -> Result<Self, String> {
        let malformed = || "page_token is not one this service issued".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| malformed())?;
        let email = String::from_utf8(bytes).map_err(|_| malformed())?;
        if email.is_empty() || email.chars().count() > MAX_LENGTH {
            return Err(malformed());
        }
        Ok(Self(email))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// The last email of the previous page.
    pub fn last_email(&self) -> &str {
        &self.0
    }
}

/// What of an account's personal data an admin read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// The account itself, found by email.
    Account,
    /// Its lifecycle events.
    Timeline,
}

impl ReadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Timeline => "timeline",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_trimmed_and_lower_cased() {
        let search = EmailSearch::parse("  Ada@Example.COM ", true).unwrap();
        assert_eq!(search.text(), "ada@example.com");
        assert!(search.is_prefix());
    }

    #[test]
    fn an_empty_or_overlong_search_is_refused() {
        assert!(EmailSearch::parse("   ", false).is_err());
        assert!(EmailSearch::parse(&"a".repeat(254), false).is_ok());
        assert!(EmailSearch::parse(&"a".repeat(255), false).is_err());
    }

    #[test]
    fn page_sizes_default_and_are_capped() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(2), 2);
        assert_eq!(page_size(10_000), MAX_PAGE_SIZE);
    }

    #[test]
    fn a_page_token_round_trips_and_a_forged_one_is_refused() {
        let token = PageToken::after("ada%_\\@example.com");
        assert_eq!(PageToken::decode(&token.encode()).unwrap(), token);
        assert!(PageToken::decode("not base64!").is_err());
        assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode([0xff, 0xfe])).is_err());
        assert!(PageToken::decode("").is_err());
    }
}
