//! The license use cases: create, edit, extend, close a deal, email,
//! disable, reactivate, history, validate, and access set by billing.
//!
//! Each change is one transaction that locks the key row, checks the
//! transition against the key's status at "now" (from the injectable
//! clock), writes the new state and its history entry — and, for an email,
//! the outbox entry — and commits them together. Once the commit has been
//! attempted, every key it touched is announced on Redis pub/sub
//! ([`platform::invalidation`]), so gateways drop their cached validations
//! of it at once.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use platform::{clock::Clock, invalidation::Publisher, mail, outbox::Waker};
use proto::notify::v1::Template;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use crate::db::{
    history::Entry,
    keys::{CustomerRef, Filter},
};
use crate::{
    db::{self, keys::Cursor},
    domain::{Access, Action, Customer, Email, KeyStatus, KeyType, License, LicenseKey, ReadKind},
    error::Error,
};

/// Keys drawn before giving up on finding a free one: with 2^82 keys a
/// second draw is already vanishingly rare.
const KEY_DRAWS: usize = 5;
const MAX_PAGE_SIZE: u32 = 200;
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_EXTEND_DAYS: u32 = 3650;
const MAX_TRIAL_DAYS: u32 = 365;
/// How many of their own keys a customer is shown.
const OWN_KEYS_SHOWN: i64 = 100;

/// A new key as support staff ask for it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub email: String,
    pub owner_user_id: Option<Uuid>,
    pub key_type: KeyType,
    /// Trial only; `None` means the configured default.
    pub trial_days: Option<u32>,
    pub features: BTreeMap<String, bool>,
    pub customer: Customer,
}

/// The answer to "is this key valid now?".
#[derive(Debug, Clone)]
pub struct Validity {
    pub status: KeyStatus,
    pub key_type: KeyType,
    pub expires_at: Option<DateTime<Utc>>,
    pub features: BTreeMap<String, bool>,
}

/// A page of keys and where the next one starts.
#[derive(Debug)]
pub struct Page {
    pub keys: Vec<License>,
    pub next: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Licenses {
    pub(crate) pool: PgPool,
    pub(crate) clock: Clock,
    /// Wakes the outbox relay after a commit that owes an email.
    pub(crate) waker: Waker,
    /// Announces every key whose row a change touched, for caches of
    /// validations (the gateway's) to drop it.
    pub(crate) changes: Publisher,
    pub(crate) trial_days: u32,
    pub(crate) max_trials_per_customer: u32,
}

pub fn parse_key(raw: &str) -> Result<LicenseKey, Error> {
    LicenseKey::parse(raw).map_err(|message| Error::invalid("key", message))
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "23505")
}

impl Licenses {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn create(&self, new: NewKey, performed_by: &str) -> Result<License, Error> {
        let email = Email::parse(&new.email).map_err(|message| Error::invalid("email", message))?;
        let expires_in = match (new.key_type, new.trial_days) {
            (KeyType::Trial, days) => {
                let days = days.unwrap_or(self.trial_days);
                if !(1..=MAX_TRIAL_DAYS).contains(&days) {
                    return Err(Error::invalid(
                        "trial_days",
                        format!("trial_days must be between 1 and {MAX_TRIAL_DAYS}"),
                    ));
                }
                Some(Duration::days(i64::from(days)))
            }
            (_, Some(_)) => return Err(Error::invalid("trial_days", "only a trial key has trial days")),
            (_, None) => None,
        };
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let fresh_trial = new.key_type == KeyType::Trial;
        if fresh_trial {
            self.check_trial_cap(&mut tx, &email).await?;
        }
        for _ in 0..KEY_DRAWS {
            let license = License {
                key: LicenseKey::generate(),
                email: email.clone(),
                owner_user_id: new.owner_user_id,
                key_type: new.key_type,
                expires_at: expires_in.map(|days| now + days),
                disabled_at: None,
                disabled_reason: None,
                created_at: now,
                features: new.features.clone(),
                customer: new.customer.clone(),
            };
            // A savepoint, so a taken key does not abort the transaction.
            let mut attempt = sqlx::Acquire::begin(&mut *tx).await?;
            match db::keys::insert(&mut attempt, &license).await {
                Ok(()) => attempt.commit().await?,
                Err(err) if is_unique_violation(&err) => continue,
                Err(err) => return Err(err.into()),
            }
            let details = json!({
                "new_expiry": license.expires_at.map(|at| at.to_rfc3339()),
                "key_type": license.key_type.as_str(),
                "was_trial": false,
            });
            db::history::record(
                &mut tx,
                &license.key,
                Action::Created,
                performed_by,
                details,
                fresh_trial,
                now,
            )
            .await?;
            // A cache may hold "not found" for this key (someone tried it
            // before it existed): announced like any other change.
            self.commit_and_announce(tx, &[&license.key]).await?;
            tracing::info!(key = %license.key, key_type = license.key_type.as_str(), "license key created");
            return Ok(license);
        }
        Err(anyhow::anyhow!("no free license key after {KEY_DRAWS} draws").into())
    }

    /// Commits `tx`, then announces `keys` as changed — also when the commit
    /// reports an error, since it may have happened all the same (the
    /// connection dropped after the server committed): a needless
    /// announcement costs a cache miss, a missing one a stale answer.
    async fn commit_and_announce(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Postgres>,
        keys: &[&LicenseKey],
    ) -> Result<(), Error> {
        let committed = tx.commit().await;
        for key in keys {
            self.changes.changed(key.as_str()).await;
        }
        Ok(committed?)
    }

    /// Forgets a customer: every key owned by `user_id` or issued to `email`,
    /// its history and the record of admins' reads of it, their access
    /// record and key emails not yet handed to notify-svc. Returns how many
    /// keys.
    #[tracing::instrument(skip_all)]
    pub async fn erase_customer(&self, user_id: Option<Uuid>, email: Option<Email>) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await?;
        let keys = db::keys::lock_keys_of(&mut tx, user_id, email.as_ref()).await?;
        db::history::delete_of_keys(&mut tx, &keys).await?;
        db::admin_reads::forget_reads_of(&mut tx, &keys, user_id).await?;
        db::keys::delete(&mut tx, &keys).await?;
        let customers: Vec<CustomerRef> = user_id
            .map(CustomerRef::UserId)
            .into_iter()
            .chain(email.clone().map(CustomerRef::Email))
            .collect();
        db::keys::forget_access(&mut tx, &customers).await?;
        let email = email.map(|email| email.as_str().to_owned());
        platform::outbox::forget_pending(&mut tx, None, email.as_deref()).await?;
        let parsed: Vec<LicenseKey> = keys.iter().filter_map(|key| LicenseKey::parse(key).ok()).collect();
        let announced: Vec<&LicenseKey> = parsed.iter().collect();
        self.commit_and_announce(tx, &announced).await?;
        tracing::info!(keys = keys.len(), "customer erased");
        Ok(keys.len() as u64)
    }

    /// Refuses a fresh trial period beyond the customer's cap. Holds a lock
    /// on the customer's trials until the transaction ends.
    async fn check_trial_cap(&self, connection: &mut PgConnection, email: &Email) -> Result<(), Error> {
        db::history::lock_trials_of(connection, email).await?;
        let trials = db::history::trials_of(connection, email).await?;
        if trials >= i64::from(self.max_trials_per_customer) {
            return Err(Error::TrialLimitReached {
                limit: self.max_trials_per_customer,
            });
        }
        Ok(())
    }

    /// Admin only (checked at the gRPC edge): one key, recorded as read by
    /// `admin` in the same transaction.
    pub async fn get(&self, key: &str, admin: Uuid) -> Result<License, Error> {
        let key = parse_key(key)?;
        let mut tx = self.pool.begin().await?;
        let license = db::keys::hold(&mut tx, &key).await?.ok_or(Error::KeyNotFound)?;
        db::admin_reads::record(&mut tx, admin, &license, ReadKind::Key, self.now()).await?;
        tx.commit().await?;
        Ok(license)
    }

    pub async fn list(&self, filter: Filter, page_size: Option<u32>, page_token: Option<&str>) -> Result<Page, Error> {
        let size = page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let after = page_token.map(decode_cursor).transpose()?;
        let mut keys = db::keys::list(
            &mut *self.pool.acquire().await?,
            &filter,
            after.as_ref(),
            i64::from(size) + 1,
            self.now(),
        )
        .await?;
        // One more than a page was asked for: its presence says whether a
        // next page exists, without a count.
        let next = if keys.len() > size as usize {
            keys.truncate(size as usize);
            keys.last().map(encode_cursor)
        } else {
            None
        };
        Ok(Page { keys, next })
    }

    /// Locks `key`, applies `change` at "now", writes the key and its
    /// history entry, and commits.
    async fn change(
        &self,
        key: &str,
        action: Action,
        performed_by: &str,
        change: impl FnOnce(&mut License, DateTime<Utc>) -> Result<serde_json::Value, Error>,
    ) -> Result<License, Error> {
        let key = parse_key(key)?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let mut license = db::keys::lock(&mut tx, &key).await?.ok_or(Error::KeyNotFound)?;
        let details = change(&mut license, now)?;
        db::keys::update(&mut tx, &license, now).await?;
        db::history::record(&mut tx, &key, action, performed_by, details, false, now).await?;
        self.commit_and_announce(tx, &[&key]).await?;
        tracing::info!(key = %key, action = action.as_str(), "license key changed");
        Ok(license)
    }

    pub async fn update(
        &self,
        key: &str,
        customer: Option<Customer>,
        features: Option<BTreeMap<String, bool>>,
        performed_by: &str,
    ) -> Result<License, Error> {
        self.change(key, Action::Updated, performed_by, |license, _| {
            let mut details = json!({ "key_type": license.key_type.as_str(), "was_trial": license.is_trial() });
            if let Some(customer) = customer {
                details["customer"] = json!(customer);
                license.customer = customer;
            }
            if let Some(features) = features {
                details["features"] = json!(features);
                license.features = features;
            }
            Ok(details)
        })
        .await
    }

    pub async fn extend(&self, key: &str, days: u32, performed_by: &str) -> Result<License, Error> {
        if !(1..=MAX_EXTEND_DAYS).contains(&days) {
            return Err(Error::invalid(
                "days",
                format!("days must be between 1 and {MAX_EXTEND_DAYS}"),
            ));
        }
        self.change(key, Action::Extended, performed_by, |license, now| {
            license.extend(now, days)
        })
        .await
    }

    pub async fn close_deal(&self, key: &str, performed_by: &str) -> Result<License, Error> {
        self.change(key, Action::DealClosed, performed_by, License::close_deal)
            .await
    }

    pub async fn disable(&self, key: &str, performed_by: &str) -> Result<License, Error> {
        self.change(key, Action::Disabled, performed_by, License::disable).await
    }

    pub async fn reactivate(&self, key: &str, performed_by: &str) -> Result<License, Error> {
        let key = parse_key(key)?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let mut license = db::keys::lock(&mut tx, &key).await?.ok_or(Error::KeyNotFound)?;
        if license.status(now) == KeyStatus::Active {
            return Err(Error::AlreadyActive);
        }
        if license.is_trial() {
            self.check_trial_cap(&mut tx, &license.email).await?;
        }
        let (details, fresh_trial) = license.reactivate(now)?;
        db::keys::update(&mut tx, &license, now).await?;
        db::history::record(
            &mut tx,
            &key,
            Action::Reactivated,
            performed_by,
            details,
            fresh_trial,
            now,
        )
        .await?;
        self.commit_and_announce(tx, &[&key]).await?;
        tracing::info!(key = %key, "license key reactivated");
        Ok(license)
    }

    /// Records the email in the outbox with the history entry; the relay
    /// hands it to notify-svc after the commit.
    pub async fn email(&self, key: &str, performed_by: &str) -> Result<(), Error> {
        let key = parse_key(key)?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let license = db::keys::lock(&mut tx, &key).await?.ok_or(Error::KeyNotFound)?;
        if license.status(now) == KeyStatus::Disabled {
            return Err(Error::KeyDisabled);
        }
        let expires_at = license
            .expires_at
            .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let email = mail::Email::new(
            Template::LicenseKey,
            license.email.as_str(),
            &[
                ("license_key", key.to_string()),
                ("key_type", license.key_type.as_str().to_owned()),
                ("expires_at", expires_at),
            ],
        );
        // Each request is its own email: asked twice, sent twice.
        let idempotency_key = format!("license-key-email:{}", Uuid::now_v7());
        mail::owe(&mut tx, &idempotency_key, &email).await?;
        let details = json!({ "key_type": license.key_type.as_str(), "was_trial": license.is_trial(), "recipient": license.email.as_str() });
        db::history::record(&mut tx, &key, Action::Emailed, performed_by, details, false, now).await?;
        tx.commit().await?;
        self.waker.wake();
        tracing::info!(key = %key, "license key email owed");
        Ok(())
    }

    /// The keys `owner` owns, newest first, at most [`OWN_KEYS_SHOWN`].
    pub async fn keys_of_owner(&self, owner: Uuid) -> Result<Vec<License>, Error> {
        let mut connection = self.pool.acquire().await?;
        Ok(db::keys::of_owner(&mut connection, owner, OWN_KEYS_SHOWN).await?)
    }

    /// Every history entry of every key `owner` owns, oldest first.
    pub async fn history_of_owner(&self, owner: Uuid) -> Result<Vec<Entry>, Error> {
        let mut connection = self.pool.acquire().await?;
        Ok(db::history::list_of_owner(&mut connection, owner).await?)
    }

    /// Admin only (checked at the gRPC edge): one key's history, oldest
    /// first, recorded as read by `admin` in the same transaction.
    pub async fn history(&self, key: &str, admin: Uuid) -> Result<Vec<Entry>, Error> {
        let key = parse_key(key)?;
        let mut tx = self.pool.begin().await?;
        let license = db::keys::hold(&mut tx, &key).await?.ok_or(Error::KeyNotFound)?;
        let entries = db::history::list(&mut tx, &key).await?;
        db::admin_reads::record(&mut tx, admin, &license, ReadKind::KeyHistory, self.now()).await?;
        tx.commit().await?;
        Ok(entries)
    }

    /// The hot path: one primary-key read, no transaction, no lock.
    pub async fn validate(&self, key: &str) -> Result<Validity, Error> {
        let key = parse_key(key)?;
        let row = db::keys::validation(&self.pool, &key)
            .await?
            .ok_or(Error::KeyNotFound)?;
        let key_type =
            KeyType::parse(&row.key_type).ok_or_else(|| anyhow::anyhow!("corrupt key type {}", row.key_type))?;
        Ok(Validity {
            status: KeyStatus::at(row.disabled_at, row.expires_at, self.now()),
            key_type,
            expires_at: row.expires_at,
            features: row.features.0,
        })
    }

    /// Billing's word on a customer, applied to every key of theirs in one
    /// transaction. Idempotent: keys already so are left alone and get no
    /// history entry.
    /// `version` (the sender's time of the change, µs; 0 for none) makes a
    /// change older than the last one applied to this customer a no-op.
    pub async fn set_customer_access(
        &self,
        customer: CustomerRef,
        access: Access,
        version: i64,
        performed_by: &str,
    ) -> Result<Vec<License>, Error> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if version > 0 && !db::keys::record_access(&mut tx, &customer, access, version, now).await? {
            tracing::info!(access = ?access, version, "an older access change arrived late: ignored");
            return Ok(Vec::new());
        }
        let mut changed = Vec::new();
        for mut license in db::keys::lock_of_customer(&mut tx, &customer).await? {
            let (action, details) = match access {
                Access::Suspended(reason) => (Action::Suspended, license.suspend(now, reason)),
                Access::Active => (Action::Restored, license.restore()),
            };
            let Some(details) = details else { continue };
            db::keys::update(&mut tx, &license, now).await?;
            db::history::record(&mut tx, &license.key, action, performed_by, details, false, now).await?;
            changed.push(license);
        }
        let keys: Vec<&LicenseKey> = changed.iter().map(|license| &license.key).collect();
        self.commit_and_announce(tx, &keys).await?;
        tracing::info!(changed = changed.len(), access = ?access, "customer access set");
        Ok(changed)
    }
}

/// A page token: the last key of the page and its creation time, in
/// microseconds. Opaque to clients; malformed ones are refused.
fn encode_cursor(license: &License) -> String {
    format!("{}.{}", license.created_at.timestamp_micros(), license.key)
}

fn decode_cursor(token: &str) -> Result<Cursor, Error> {
    let invalid = || Error::invalid("page_token", "page_token is not one this service issued");
    let (micros, key) = token.split_once('.').ok_or_else(invalid)?;
    let created_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let key = LicenseKey::parse(key).map_err(|_| invalid())?;
    Ok(Cursor {
        created_at,
        key: key.to_string(),
    })
}
