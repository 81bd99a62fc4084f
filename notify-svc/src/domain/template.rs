//! The kinds of message the mesh sends, and what each needs from its caller.
//!
//! The variables a template needs are part of the contract (listed in
//! `notify.proto`); they are declared here once, so an `Enqueue` missing one
//! is refused with the variable's name before anything is stored, and the
//! template files are tested against exactly this list.

/// One kind of outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// The one-time link that reactivates a deactivated account.
    ReactivationLink,
    /// Confirmation that an account is active again.
    AccountReactivated,
    /// A deactivated account is about to be purged.
    RetentionReminder,
    /// A license key, sent when it is issued.
    LicenseKey,
    /// A subscription is active again.
    SubscriptionReactivated,
    /// The win-back offer for a returning customer.
    WelcomeBackOffer,
    /// The last message: the account and its data were erased.
    AccountErased,
    /// A cancelled subscription ends in a few days: reactivate now?
    SubscriptionEndingSoon,
}

/// What a variable's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableKind {
    /// Any non-blank text.
    Text,
    /// Text that may be empty, e.g. the expiry of a key that never expires;
    /// the key must still be present, so a forgotten variable is caught.
    OptionalText,
    /// An absolute `http://` or `https://` URL. It ends up in an `href`,
    /// where HTML escaping alone would not stop a `javascript:` URL.
    Url,
}

/// A variable a template needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub kind: VariableKind,
}

const fn text(name: &'static str) -> Variable {
    Variable {
        name,
        kind: VariableKind::Text,
    }
}

const fn optional_text(name: &'static str) -> Variable {
    Variable {
        name,
        kind: VariableKind::OptionalText,
    }
}

const fn url(name: &'static str) -> Variable {
    Variable {
        name,
        kind: VariableKind::Url,
    }
}

/// The longest value a variable may have; anything longer is a bug or abuse,
/// never a reasonable part of an email.
pub const MAX_VARIABLE_LENGTH: usize = 2000;

impl Template {
    pub const ALL: [Self; 8] = [
        Self::ReactivationLink,
        Self::AccountReactivated,
        Self::RetentionReminder,
        Self::LicenseKey,
        Self::SubscriptionReactivated,
        Self::WelcomeBackOffer,
        Self::AccountErased,
        Self::SubscriptionEndingSoon,
    ];

    /// The name stored in the database and used for the template files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReactivationLink => "reactivation_link",
            Self::AccountReactivated => "account_reactivated",
            Self::RetentionReminder => "retention_reminder",
            Self::LicenseKey => "license_key",
            Self::SubscriptionReactivated => "subscription_reactivated",
            Self::WelcomeBackOffer => "welcome_back_offer",
            Self::AccountErased => "account_erased",
            Self::SubscriptionEndingSoon => "subscription_ending_soon",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|template| template.as_str() == name)
    }

    /// The variables the caller must supply, as listed in `notify.proto`.
    pub fn variables(self) -> &'static [Variable] {
        // Inline consts: the lists are built at compile time and live forever.
        match self {
            Self::ReactivationLink => const { &[url("link"), text("expires_in_hours")] },
            Self::AccountReactivated | Self::AccountErased => &[],
            Self::RetentionReminder => const { &[text("purge_date"), text("days_left"), url("reactivate_url")] },
            Self::LicenseKey => const { &[text("license_key"), text("key_type"), optional_text("expires_at")] },
            Self::SubscriptionReactivated => const { &[text("plan"), text("next_billing_date")] },
            Self::WelcomeBackOffer => const { &[text("monthly_offer"), text("annual_offer"), url("pricing_url")] },
            Self::SubscriptionEndingSoon => const { &[text("plan"), text("end_date"), url("subscription_url")] },
        }
    }
}

impl Variable {
    /// Why `value` is not acceptable for this variable, if it is not.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let name = self.name;
        if value.chars().count() > MAX_VARIABLE_LENGTH {
            return Err(format!("{name} must be at most {MAX_VARIABLE_LENGTH} characters"));
        }
        match self.kind {
            VariableKind::OptionalText => Ok(()),
            VariableKind::Text if value.trim().is_empty() => Err(format!("{name} must not be empty")),
            VariableKind::Text => Ok(()),
            VariableKind::Url => {
                let rest = value
                    .strip_prefix("https://")
                    .or_else(|| value.strip_prefix("http://"))
                    .unwrap_or_default();
                let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if host.is_empty() || value.chars().any(char::is_whitespace) {
                    Err(format!("{name} must be an absolute http:// or https:// URL"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_round_trip_through_their_stored_names() {
        for template in Template::ALL {
            assert_eq!(Template::parse(template.as_str()), Some(template));
        }
        assert_eq!(Template::parse("unknown"), None);
    }

    #[test]
    fn url_variables_accept_only_absolute_web_urls() {
        let link = url("link");
        assert!(link.check("https://app.example.com/reactivate?token=abc").is_ok());
        assert!(link.check("http://127.0.0.1:8080/r#t").is_ok());
        for bad in [
            "",
            "javascript:alert(1)",
            "https://",
            "/relative",
            "https://a b.com",
            "ftp://x.org",
        ] {
            assert!(link.check(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn text_variables_refuse_blank_and_oversized_values() {
        assert!(text("plan").check("Pro").is_ok());
        assert!(text("plan").check("  ").is_err());
        assert!(optional_text("expires_at").check("").is_ok());
        assert!(text("plan").check(&"x".repeat(MAX_VARIABLE_LENGTH + 1)).is_err());
    }
}
