//! A license and its lifecycle.
//!
//! Status is computed from the stored facts at a given moment: disabled
//! (`disabled_at` set) wins, then an expiry in the past means expired,
//! otherwise active. Each action checks the status it starts from and
//! refuses the wrong one with a reason, instead of silently applying.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use platform::license_key::has_expired;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Email, LicenseKey};
use crate::error::Error;

/// A reactivated trial runs this long from the moment of reactivation.
pub const REACTIVATED_TRIAL_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Trial,
    Production,
    Development,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trial => "trial",
            Self::Production => "production",
            Self::Development => "development",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "trial" => Some(Self::Trial),
            "production" => Some(Self::Production),
            "development" => Some(Self::Development),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Disabled,
    Expired,
}

impl KeyStatus {
    /// A key's status at `now` from its stored facts: disabled wins, then
    /// an expiry reached means expired, otherwise active.
    pub fn at(disabled_at: Option<DateTime<Utc>>, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        if disabled_at.is_some() {
            Self::Disabled
        } else if has_expired(expires_at, now) {
            Self::Expired
        } else {
            Self::Active
        }
    }
}

/// What billing says about a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Active,
    /// Suspended, and why (payment or account closed).
    Suspended(DisabledReason),
}

/// Why a key is disabled. Billing restores what billing suspended; what an
/// admin disabled for cause stays disabled until an admin reactivates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// An admin disabled it (abuse, fraud, …).
    Admin,
    /// The customer's payment failed or their subscription ended.
    Payment,
    /// The customer closed their account.
    AccountClosed,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Payment => "payment",
            Self::AccountClosed => "account_closed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Admin, Self::Payment, Self::AccountClosed]
            .into_iter()
            .find(|reason| reason.as_str() == raw)
    }

    /// Billing took the key away, so billing may give it back.
    pub fn restorable_by_billing(self) -> bool {
        matches!(self, Self::Payment | Self::AccountClosed)
    }
}

/// Who the key was sold to, as support staff record it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub notes: String,
}

/// What happened to a key, as its history names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Extended,
    DealClosed,
    Emailed,
    Disabled,
    Reactivated,
    /// Disabled because the customer's access was suspended (billing).
    Suspended,
    /// Made active as subscribed because the customer's access was restored.
    Restored,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Extended => "extended",
            Self::DealClosed => "deal_closed",
            Self::Emailed => "emailed",
            Self::Disabled => "disabled",
            Self::Reactivated => "reactivated",
            Self::Suspended => "suspended",
            Self::Restored => "restored",
        }
    }
}

/// What of a key's details an admin read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// The key itself: its customer, owner, features.
    Key,
    /// Its history.
    KeyHistory,
}

impl ReadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::KeyHistory => "key_history",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct License {
    pub key: LicenseKey,
    pub email: Email,
    pub owner_user_id: Option<Uuid>,
    pub key_type: KeyType,
    /// `None`: no expiry.
    pub expires_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Set with `disabled_at`: why.
    pub disabled_reason: Option<DisabledReason>,
    pub created_at: DateTime<Utc>,
    pub features: BTreeMap<String, bool>,
    pub customer: Customer,
}

fn rfc3339(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| Value::String(at.to_rfc3339()))
}

impl License {
    pub fn is_trial(&self) -> bool {
        self.key_type == KeyType::Trial
    }

    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        KeyStatus::at(self.disabled_at, self.expires_at, now)
    }

    /// The details every history entry carries, after the change.
    fn details(&self, was_trial: bool) -> Value {
        json!({
            "new_expiry": rfc3339(self.expires_at),
            "key_type": self.key_type.as_str(),
            "was_trial": was_trial,
        })
    }

    pub fn disable(&mut self, now: DateTime<Utc>) -> Result<Value, Error> {
        if self.status(now) == KeyStatus::Disabled {
            return Err(Error::AlreadyDisabled);
        }
        self.disabled_at = Some(now);
        self.disabled_reason = Some(DisabledReason::Admin);
        Ok(self.disabled_details())
    }

    /// The details of a disabling, with its reason.
    fn disabled_details(&self) -> Value {
        let mut details = self.details(self.is_trial());
        details["reason"] = json!(self.disabled_reason.map(DisabledReason::as_str));
        details
    }

    /// A disabled or expired key becomes active: a trial for
    /// [`REACTIVATED_TRIAL_DAYS`] from `now` (the caller checks the trial
    /// cap first), any other key with no expiry. Returns the details and
    /// whether this was a fresh trial period.
    pub fn reactivate(&mut self, now: DateTime<Utc>) -> Result<(Value, bool), Error> {
        if self.status(now) == KeyStatus::Active {
            return Err(Error::AlreadyActive);
        }
        let was_disabled = self.disabled_at.is_some();
        self.disabled_at = None;
        self.disabled_reason = None;
        self.expires_at = self.is_trial().then(|| now + Duration::days(REACTIVATED_TRIAL_DAYS));
        let mut details = self.details(self.is_trial());
        details["was_disabled"] = Value::Bool(was_disabled);
        Ok((details, self.is_trial()))
    }

    pub fn extend(&mut self, now: DateTime<Utc>, days: u32) -> Result<Value, Error> {
        match self.status(now) {
            KeyStatus::Disabled => return Err(Error::KeyDisabled),
            KeyStatus::Expired => return Err(Error::KeyExpired),
            KeyStatus::Active => {}
        }
        let expiry = self.expires_at.ok_or(Error::NotExpiring)?;
        let old = rfc3339(Some(expiry));
        self.expires_at = Some(expiry + Duration::days(i64::from(days)));
        let mut details = self.details(self.is_trial());
        details["days"] = json!(days);
        details["old_expiry"] = old;
        Ok(details)
    }

    /// The trial becomes a production key, same key, no expiry. An expired
    /// trial can close too (the customer paid); a disabled one is
    /// reactivated first, so the decision to disable is undone explicitly.
    pub fn close_deal(&mut self, now: DateTime<Utc>) -> Result<Value, Error> {
        if !self.is_trial() {
            return Err(Error::NotTrial);
        }
        if self.status(now) == KeyStatus::Disabled {
            return Err(Error::KeyDisabled);
        }
        self.key_type = KeyType::Production;
        self.expires_at = None;
        Ok(self.details(true))
    }

    /// Access suspended by billing for `reason`: an active key is disabled;
    /// a disabled or expired one is left as it is (idempotent, and an
    /// admin's reason is never overwritten). `None` when unchanged.
    pub fn suspend(&mut self, now: DateTime<Utc>, reason: DisabledReason) -> Option<Value> {
        (self.status(now) == KeyStatus::Active).then(|| {
            self.disabled_at = Some(now);
            self.disabled_reason = Some(reason);
            self.disabled_details()
        })
    }

    /// Access restored by billing: the key becomes active as subscribed — no
    /// expiry, a trial converted to production. `None` when already so, or
    /// when an admin disabled it: billing's money does not undo a decision
    /// taken for cause.
    pub fn restore(&mut self) -> Option<Value> {
        let subscribed = self.disabled_at.is_none() && self.expires_at.is_none() && !self.is_trial();
        let held_for_cause =
            self.disabled_at.is_some() && !self.disabled_reason.is_some_and(DisabledReason::restorable_by_billing);
        if subscribed || held_for_cause {
            return None;
        }
        let was_trial = self.is_trial();
        self.disabled_at = None;
        self.disabled_reason = None;
        self.expires_at = None;
        if was_trial {
            self.key_type = KeyType::Production;
        }
        Some(self.details(was_trial))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn trial(now: DateTime<Utc>) -> License {
        License {
            key: LicenseKey::generate(),
            email: Email::parse("ada@example.com").unwrap(),
            owner_user_id: None,
            key_type: KeyType::Trial,
            expires_at: Some(now + Duration::days(14)),
            disabled_at: None,
            disabled_reason: None,
            created_at: now,
            features: BTreeMap::new(),
            customer: Customer::default(),
        }
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 3, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_disabled_key_stays_disabled_when_time_passes() {
        let mut license = trial(noon());
        license.disable(noon()).unwrap();
        assert_eq!(license.status(noon() + Duration::days(1)), KeyStatus::Disabled);
        assert_eq!(license.status(noon() + Duration::days(30)), KeyStatus::Disabled);
    }

    #[test]
    fn a_trial_expires_at_its_expiry() {
        let license = trial(noon());
        assert_eq!(
            license.status(noon() + Duration::days(14) - Duration::seconds(1)),
            KeyStatus::Active
        );
        assert_eq!(license.status(noon() + Duration::days(14)), KeyStatus::Expired);
    }

    #[test]
    fn an_expired_trial_reactivates_directly_for_seven_days() {
        let mut license = trial(noon() - Duration::days(30));
        assert_eq!(license.status(noon()), KeyStatus::Expired);
        let (details, fresh_trial) = license.reactivate(noon()).unwrap();
        assert!(fresh_trial);
        assert_eq!(license.expires_at, Some(noon() + Duration::days(7)));
        assert_eq!(license.status(noon()), KeyStatus::Active);
        assert_eq!(details["was_trial"], true);
    }

    #[test]
    fn wrong_state_actions_are_refused() {
        let mut license = trial(noon());
        assert!(matches!(license.reactivate(noon()), Err(Error::AlreadyActive)));
        license.disable(noon()).unwrap();
        assert!(matches!(license.disable(noon()), Err(Error::AlreadyDisabled)));
        assert!(matches!(license.extend(noon(), 3), Err(Error::KeyDisabled)));
        assert!(matches!(license.close_deal(noon()), Err(Error::KeyDisabled)));
        license.reactivate(noon()).unwrap();
        license.close_deal(noon()).unwrap();
        assert!(matches!(license.close_deal(noon()), Err(Error::NotTrial)));
        assert!(matches!(license.extend(noon(), 3), Err(Error::NotExpiring)));
    }

    #[test]
    fn restoring_access_converts_a_trial_and_is_idempotent() {
        let mut license = trial(noon());
        assert!(license.suspend(noon(), DisabledReason::Payment).is_some());
        assert!(license.suspend(noon(), DisabledReason::AccountClosed).is_none());
        assert_eq!(license.disabled_reason, Some(DisabledReason::Payment));
        let details = license.restore().unwrap();
        assert_eq!(details["was_trial"], true);
        assert_eq!(license.key_type, KeyType::Production);
        assert_eq!(license.expires_at, None);
        assert_eq!(license.status(noon()), KeyStatus::Active);
        assert!(license.restore().is_none());
    }

    #[test]
    fn billing_never_restores_a_key_an_admin_disabled() {
        let mut license = trial(noon());
        let details = license.disable(noon()).unwrap();
        assert_eq!(details["reason"], "admin");
        assert!(license.suspend(noon(), DisabledReason::Payment).is_none());
        assert!(license.restore().is_none());
        assert_eq!(license.status(noon()), KeyStatus::Disabled);
        assert_eq!(license.disabled_reason, Some(DisabledReason::Admin));
        license.reactivate(noon()).unwrap();
        assert_eq!(license.disabled_reason, None);
    }
}
