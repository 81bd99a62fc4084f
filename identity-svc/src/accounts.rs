//! The account use cases: register, log in, deactivate, reactivate, erase,
//! and support staff's reads (found by email, audit trail), each recorded.
//!
//! Each change of state is one transaction that locks the account row,
//! checks the transition, writes the new state and its audit event, and —
//! before committing — raises the session floor in Redis, so no request
//! can slip in with an old token between the commit and the raise. If
//! Redis refuses, nothing commits. If the commit fails after Redis
//! accepted, the floor is left above the committed state version: the
//! account's current tokens are refused (their owner logs in again), and
//! that login sets the floor back to the committed version, under a share
//! lock that no change of state can hold at the same time. Every login
//! sets the floor this way, which also rebuilds floors Redis lost.

use chrono::{DateTime, Utc};
use platform::{
    auth::{Caller, Role, SessionFloors, TokenSigner},
    clock::Clock,
    limits::{Limiter, Rate},
    mail,
    outbox::Waker,
};
use proto::notify::v1::Template;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    config::{LoginConfig, ReactivationConfig},
    db,
    domain::{
        Account, AccountEvent, DeactivationReason, Email, EmailSearch, EventKind, PageToken, Password, PasswordHasher,
        ReadKind, password,
    },
    effects,
    error::Error,
    tokens::{self, ReactivationTokens},
};

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Why an account is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErasureCause {
    /// The user asked (`actor` none), or an admin did.
    Requested { actor: Option<Uuid> },
    /// It stayed deactivated for the whole retention period.
    Retention,
}

/// A successful login.
#[derive(Debug)]
pub struct Session {
    pub access_token: String,
    pub expires_in: u32,
    pub account: Account,
}

#[derive(Clone, Debug)]
pub struct Accounts {
    pub(crate) pool: PgPool,
    pub(crate) hasher: PasswordHasher,
    pub(crate) signer: TokenSigner,
    pub(crate) floors: SessionFloors,
    pub(crate) clock: Clock,
    pub(crate) tokens: ReactivationTokens,
    pub(crate) limiter: Limiter,
    /// Wakes the outbox relay after a commit that owes an effect.
    pub(crate) waker: Waker,
    pub(crate) reactivation: ReactivationConfig,
    pub(crate) web_sessions: crate::web_sessions::WebSessions,
    pub(crate) login: LoginConfig,
}

impl Accounts {
    pub async fn register(&self, email: &str, password: String) -> Result<Account, Error> {
        let email = Email::parse(email).map_err(|message| Error::invalid("email", message))?;
        let password = Password::parse(password, &email).map_err(|message| Error::invalid("password", message))?;
        self.create(&email, &password, Role::User).await
    }

    async fn create(&self, email: &Email, password: &Password, role: Role) -> Result<Account, Error> {
        let hash = self.hasher.hash(password).await?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let account = match db::users::insert(&mut tx, email, &hash, role, now).await {
            Ok(account) => account,
            Err(err) if is_unique_violation(&err) => return Err(Error::EmailTaken),
            Err(err) => return Err(err.into()),
        };
        let data = json!({ "role": if role == Role::Admin { "admin" } else { "user" } });
        db::events::record(&mut tx, account.id, EventKind::Registered, data, Some(account.id), now).await?;
        tx.commit().await?;
        tracing::info!(user_id = %account.id, "account registered");
        Ok(account)
    }

    /// Creates the first admin of a fresh install, unless the email exists.
    pub async fn ensure_admin(&self, email: &str, password: String) -> anyhow::Result<()> {
        let email = Email::parse(email).map_err(|message| anyhow::anyhow!("bootstrap admin email: {message}"))?;
        let password = Password::parse(password, &email)
            .map_err(|message| anyhow::anyhow!("bootstrap admin password: {message}"))?;
        let existing = db::users::find_by_email(&mut *self.pool.acquire().await?, &email).await?;
        if existing.is_some() {
            tracing::info!("bootstrap admin already exists");
            return Ok(());
        }
        match self.create(&email, &password, Role::Admin).await {
            Ok(account) => tracing::info!(user_id = %account.id, "bootstrap admin created"),
            // Another replica created it at the same moment.
            Err(Error::EmailTaken) => {}
            Err(err) => return Err(anyhow::anyhow!("cannot create the bootstrap admin: {err}")),
        }
        Ok(())
    }

    /// Unknown email, malformed email and wrong password answer the same,
    /// after the same argon2 work. Only the right password of an inactive
    /// account learns that the account is inactive.
    ///
    /// Before any hashing: a password longer than any password can be is
    /// refused, and so is a client address over its limit or one that got
    /// this account's password wrong too often. The owner, from their own
    /// address, is never refused for what others tried.
    pub async fn login(&self, email: &str, password: &str, client_address: &str) -> Result<Session, Error> {
        match self.login_checked(email, password, client_address).await? {
            Ok(session) => Ok(session),
            Err(account) => {
                let self_service = account
                    .deactivation_reason
                    .is_some_and(DeactivationReason::allows_self_reactivation);
                Err(Error::AccountInactive { self_service })
            }
        }
    }

    /// The password check of every login: a session for an active account,
    /// the account itself when it is inactive (its right password was given).
    pub(crate) async fn login_checked(
        &self,
        email: &str,
        password: &str,
        client_address: &str,
    ) -> Result<Result<Session, Account>, Error> {
        if email.trim().is_empty() {
            return Err(Error::invalid("email", "email is required"));
        }
        if password.is_empty() {
            return Err(Error::invalid("password", "password is required"));
        }
        if password::exceeds_max_length(password) {
            return Err(Error::invalid(
                "password",
                format!("password must be at most {} characters long", password::MAX_LENGTH),
            ));
        }
        let client = client_subject(client_address);
        let limits = &self.login;
        let throttled = |limited: platform::limits::Limited| Error::LoginThrottled {
            retry_after: limited.retry_after,
        };
        self.limiter
            .hit(
                "login-client",
                client,
                Rate::new(limits.max_per_client_per_minute, MINUTE),
            )
            .await?
            .map_err(throttled)?;
        let parsed = Email::parse(email);
        // The email only by digest, and as typed if it does not parse.
        let account_at_client = format!(
            "{}:{client}",
            tokens::digest(parsed.as_ref().map_or(email.trim(), Email::as_str))
        );
        let failures = Rate::new(limits.max_failures_per_account_per_client, limits.failure_window);
        self.limiter
            .check("login-failures", &account_at_client, failures)
            .await?
            .map_err(throttled)?;
        let account = match parsed {
            Ok(email) => db::users::find_by_email(&mut *self.pool.acquire().await?, &email).await?,
            Err(_) => None,
        };
        let stored = account.as_ref().map(|account| account.password_hash.as_str());
        if !self.hasher.verify(password, stored).await? {
            self.limiter
                .hit("login-failures", &account_at_client, failures)
                .await?
                .ok();
            return Err(Error::InvalidCredentials);
        }
        let account = account.ok_or(Error::InvalidCredentials)?;
        // The state as committed, with no change in flight while the floor
        // is set to it and the token issued for it.
        let mut tx = self.pool.begin().await?;
        let account = db::users::lock_shared(&mut tx, account.id)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        if !account.is_active {
            return Ok(Err(account));
        }
        Ok(Ok(self.session_for(tx, account).await?))
    }

    /// A fresh access token for an active account read under `tx`'s shared
    /// lock: the floor is set to its committed version before the token is
    /// signed for it.
    pub(crate) async fn session_for(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Postgres>,
        account: Account,
    ) -> Result<Session, Error> {
        self.floors.confirm(account.id, account.state_version).await?;
        let access_token = self.signer.sign(account.id, account.roles(), account.state_version)?;
        tx.commit().await?;
        Ok(Session {
            access_token,
            expires_in: u32::try_from(self.signer.ttl().as_secs()).unwrap_or(u32::MAX),
            account,
        })
    }

    pub async fn me(&self, caller: &Caller) -> Result<Account, Error> {
        db::users::find(&mut *self.pool.acquire().await?, caller.user_id)
            .await?
            .ok_or(Error::UserNotFound)
    }

    /// Deactivates `target` for `reason`, on `caller`'s word. The gRPC
    /// edge has checked that the caller may: another account, or a reason
    /// other than `self`, needs the admin role.
    pub async fn deactivate(
        &self,
        caller: &Caller,
        target: Uuid,
        reason: DeactivationReason,
        comment: Option<String>,
    ) -> Result<Account, Error> {
        let comment = comment
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        if comment.as_ref().is_some_and(|text| text.chars().count() > 1000) {
            return Err(Error::invalid("comment", "comment must be at most 1000 characters"));
        }

        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let account = db::users::lock(&mut tx, target).await?.ok_or(Error::UserNotFound)?;
        account.may_deactivate()?;
        let account = db::users::deactivate(&mut tx, target, reason, comment.as_deref(), now).await?;
        let data = json!({ "reason": reason.as_str(), "comment": comment });
        db::events::record(&mut tx, target, EventKind::Deactivated, data, Some(caller.user_id), now).await?;
        // No renewal and no product access for a closed account.
        let closure = format!("close-account:{target}:{}", account.state_version);
        effects::owe_account_closure(&mut tx, target, comment.as_deref(), &closure).await?;
        self.floors.raise(target, account.state_version).await?;
        tx.commit().await?;
        self.waker.wake();
        tracing::info!(user_id = %target, reason = reason.as_str(), "account deactivated");
        Ok(account)
    }

    /// Erases an account (your own, or any as admin) at once and for good:
    /// here in one transaction — the user row, the personal data of its
    /// audit trail, the record of admins' reads of it, links and emails not
    /// yet sent — and, through the outbox, in billing (and at Stripe),
    /// license and notify. An `erased` event
    /// without personal data remains, and a last email confirms it. Returns
    /// the erasure's id and time.
    /// `target` defaults to the caller's own account; the gRPC edge has
    /// checked that the caller may (their own, or any as admin).
    pub async fn erase(&self, caller: &Caller, target: Option<Uuid>) -> Result<(Uuid, DateTime<Utc>), Error> {
        let target = target.unwrap_or(caller.user_id);
        let actor = (caller.user_id != target).then_some(caller.user_id);
        self.erase_account(target, ErasureCause::Requested { actor }).await
    }

    /// Erases the account `target`.
    pub(crate) async fn erase_account(
        &self,
        target: Uuid,
        cause: ErasureCause,
    ) -> Result<(Uuid, DateTime<Utc>), Error> {
        let now = self.clock.now();
        let erasure = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        let account = db::users::lock(&mut tx, target).await?.ok_or(Error::UserNotFound)?;
        let (actor, cause) = match cause {
            ErasureCause::Requested { actor } => (actor, "request"),
            // The account came back since the job looked: nothing to purge.
            ErasureCause::Retention if account.is_active => return Err(Error::AlreadyActive),
            ErasureCause::Retention => (None, "retention"),
        };
        let email = account.email.as_str().to_owned();
        // Effects owed to this person but not delivered yet go with them.
        platform::outbox::forget_pending(&mut tx, Some(target), Some(&email)).await?;
        db::events::forget_data_of(&mut tx, target).await?;
        db::admin_reads::forget_reads_of(&mut tx, target).await?;
        db::users::delete(&mut tx, target).await?;
        let data = json!({ "erasure_id": erasure, "cause": cause,
                           "services": ["identity", "billing", "license", "notify"] });
        db::events::record(&mut tx, target, EventKind::Erased, data, actor, now).await?;
        let confirmation = format!("account-erased:{erasure}");
        effects::owe_erasure(&mut tx, target, &email, erasure, &confirmation).await?;
        let goodbye = mail::Email::new(Template::AccountErased, &email, &[]);
        mail::owe(&mut tx, &confirmation, &goodbye).await?;
        // Every session ends now; if Redis refuses, nothing is erased.
        self.floors.raise(target, account.state_version + 1).await?;
        tx.commit().await?;
        self.waker.wake();
        // The rest of what Redis holds about them; it expires on its own
        // within the hour if this fails.
        if let Err(err) = self.forget_in_redis(target, &email).await {
            tracing::warn!(user_id = %target, error = %err, "erased account: Redis cleanup failed");
        }
        tracing::info!(user_id = %target, erasure = %erasure, cause, "account erased");
        Ok((erasure, now))
    }

    async fn forget_in_redis(&self, user_id: Uuid, email: &str) -> anyhow::Result<()> {
        self.tokens.revoke(user_id).await?;
        self.limiter
            .forget("reactivation-email", &tokens::digest(email), crate::reactivation::HOUR)
            .await
    }

    /// Admin only (checked at the gRPC edge): brings a deactivated account
    /// back, whatever the reason.
    pub async fn admin_reactivate(
        &self,
        caller: &Caller,
        target: Uuid,
        note: Option<String>,
    ) -> Result<Account, Error> {
        let note = note.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
        let mut tx = self.pool.begin().await?;
        let account = db::users::lock(&mut tx, target).await?.ok_or(Error::UserNotFound)?;
        account.may_reactivate()?;
        let previous_reason = account.deactivation_reason.map(DeactivationReason::as_str);
        let data = json!({ "via": "admin", "note": note, "previous_reason": previous_reason });
        let account = self
            .reactivate_locked(&mut tx, &account, data, Some(caller.user_id))
            .await?;
        tx.commit().await?;
        tracing::info!(user_id = %target, admin_id = %caller.user_id, "account reactivated by admin");
        Ok(account)
    }

    /// Reactivates a locked, inactive account and audits it; every way back
    /// (admin, email link) goes through here. The caller commits.
    pub(crate) async fn reactivate_locked(
        &self,
        connection: &mut PgConnection,
        account: &Account,
        data: serde_json::Value,
        actor: Option<Uuid>,
    ) -> Result<Account, Error> {
        let now = self.clock.now();
        let account = db::users::reactivate(connection, account.id, now).await?;
        db::events::record(connection, account.id, EventKind::Reactivated, data, actor, now).await?;
        self.floors.raise(account.id, account.state_version).await?;
        Ok(account)
    }

    /// Admin only (checked at the gRPC edge): the audit trail of one account,
    /// recorded as read by `admin` in the same transaction. The trail of an
    /// erased account holds no personal data: reading it is not recorded.
    pub async fn events(&self, admin: &Caller, target: Uuid) -> Result<Vec<AccountEvent>, Error> {
        let mut tx = self.pool.begin().await?;
        let exists = db::users::hold(&mut tx, target).await?;
        let events = db::events::list(&mut tx, target).await?;
        if exists {
            db::admin_reads::record(&mut tx, admin.user_id, &[target], ReadKind::Timeline, self.clock.now()).await?;
        }
        tx.commit().await?;
        Ok(events)
    }

    /// Admin only (checked at the gRPC edge): one page of the accounts
    /// matching `search`, in email order, after `after`'s email; and the
    /// token of the next page, if there is one. Every account returned is
    /// recorded as read by `admin` in the same transaction.
    pub async fn find(
        &self,
        admin: &Caller,
        search: &EmailSearch,
        page_size: u32,
        after: Option<&PageToken>,
    ) -> Result<(Vec<Account>, Option<PageToken>), Error> {
        let mut tx = self.pool.begin().await?;
        // One more than a page: its presence says whether a next page exists.
        let mut accounts = db::users::find_by_email_start(
            &mut tx,
            search,
            after.map(PageToken::last_email),
            i64::from(page_size) + 1,
        )
        .await?;
        let next = if accounts.len() > page_size as usize {
            accounts.truncate(page_size as usize);
            accounts.last().map(|account| PageToken::after(&account.email))
        } else {
            None
        };
        let read: Vec<Uuid> = accounts.iter().map(|account| account.id).collect();
        db::admin_reads::record(&mut tx, admin.user_id, &read, ReadKind::Account, self.clock.now()).await?;
        tx.commit().await?;
        Ok((accounts, next))
    }

    /// A reactivation link's page was opened: recorded the first time, for
    /// the funnel. Says nothing to the caller about the token.
    pub async fn link_opened(&self, token: &str) -> Result<(), Error> {
        if let Some((claim, true)) = self.tokens.first_look(token).await? {
            let mut connection = self.pool.acquire().await?;
            let now = self.clock.now();
            db::events::record(
                &mut connection,
                claim.user_id,
                EventKind::LinkOpened,
                json!({}),
                None,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Admin only (checked at the gRPC edge): (requested, email sent, link
    /// opened, confirmed) so far.
    pub async fn funnel(&self) -> Result<(i64, i64, i64, i64), Error> {
        Ok(db::events::funnel(&self.pool).await?)
    }

    /// Admin only: the funnel of each of the last `weeks` weeks.
    pub async fn funnel_weeks(&self, weeks: i64) -> Result<Vec<db::events::FunnelWeek>, Error> {
        let since = self.clock.now() - chrono::Duration::weeks(weeks);
        Ok(db::events::funnel_weeks(&self.pool, since).await?)
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db| db.is_unique_violation())
}

/// The bucket of a client address as the gateway reported it.
pub(crate) fn client_subject(client_address: &str) -> &str {
    match client_address.trim() {
        "" => "unknown",
        address => address,
    }
}
