//! Self-service reactivation by email (seeds 000 and 001).
//!
//! *Request*: whatever the email, the caller gets the same answer in the
//! same time — limits are checked and the request is recorded for every
//! email alike, and the account lookup, the token and the email happen after
//! the answer. The request is recorded in the outbox, in Postgres, before
//! the answer, so an accepted request survives a crash or a shutdown, and
//! with Postgres down the caller is told to retry (UNAVAILABLE) instead of
//! being accepted and forgotten. The outbox relay then hands it back to
//! [`Accounts::send_reactivation_link`]. Only an inactive account
//! deactivated for `self` or `nonpayment` gets a link.
//!
//! *Confirm*: the token is consumed atomically, then the account is
//! reactivated only if it is still in the state the link was issued for.
//! Invalid, expired, used, superseded and stale links get one answer.
//!
//! Reactivation restores the account, not the subscription or product
//! access: the customer buys a plan again.

use platform::{limits::Rate, mail, outbox::Rejected, telemetry};
use serde_json::json;
use uuid::Uuid;

use crate::{
    accounts::{Accounts, client_subject},
    db,
    domain::{Account, DeactivationReason, Email, EventKind},
    effects,
    error::Error,
    tokens::{Claim, digest},
};
use proto::notify::v1::Template;

pub(crate) const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

impl Accounts {
    /// Checks the limits and records the request; a link follows in the
    /// background if the account may have one. The caller learns nothing
    /// about the account.
    pub async fn request_reactivation(&self, email: &str, client_address: &str) -> Result<(), Error> {
        let email = Email::parse(email).map_err(|message| Error::invalid("email", message))?;
        let settings = &self.reactivation;
        let client = client_subject(client_address);
        // Rate-limit keys name the email only by its digest.
        let subject = digest(email.as_str());
        // The request's transaction opens first: with Postgres down the
        // request is refused before it spends any of the caller's limits.
        let mut tx = self.pool.begin().await?;
        // One check at a time, the client's first: a request refused for its
        // client costs the email nothing, so nobody can spend a victim's
        // budget or cooldown from an address that is over its own limit.
        // The cooldown comes before the hourly count for the same reason,
        // and keeps a link just sent from being replaced by the next request.
        let limited = |limited: platform::limits::Limited| Error::RateLimited {
            retry_after: limited.retry_after,
        };
        self.limiter
            .hit(
                "reactivation-client",
                client,
                Rate::new(settings.max_per_client_per_hour, HOUR),
            )
            .await?
            .map_err(limited)?;
        self.limiter
            .cooldown("reactivation-email", &subject, settings.cooldown)
            .await?
            .map_err(limited)?;
        self.limiter
            .hit(
                "reactivation-email",
                &subject,
                Rate::new(settings.max_per_email_per_hour, HOUR),
            )
            .await?
            .map_err(limited)?;
        effects::owe_reactivation_request(&mut tx, Uuid::now_v7(), email.as_str()).await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(())
    }

    /// Answers a recorded request (delivered by the outbox relay): a link
    /// for an account that may have one, nothing otherwise. Delivered again
    /// after a crash, it does not send a second link: the email it owes is
    /// keyed by the request.
    pub(crate) async fn send_reactivation_link(&self, request: Uuid, email: &str) -> anyhow::Result<()> {
        let email = Email::parse(email).map_err(|message| Rejected(format!("malformed email: {message}")))?;
        let mail_key = format!("reactivation-link:{request}");
        if db::outbox::is_owed(&mut *self.pool.acquire().await?, &mail_key).await? {
            tracing::info!(%request, "reactivation request already answered");
            return Ok(());
        }
        let Some(account) = db::users::find_by_email(&mut *self.pool.acquire().await?, &email).await? else {
            tracing::info!("reactivation requested for an unknown email; nothing sent");
            return Ok(());
        };
        if account.is_active {
            tracing::info!(user_id = %account.id, "reactivation requested for an active account; nothing sent");
            return Ok(());
        }
        let now = self.clock.now();
        let eligible = account
            .deactivation_reason
            .is_some_and(DeactivationReason::allows_self_reactivation);
        if !eligible {
            let mut tx = self.pool.begin().await?;
            let data = json!({ "sent": false, "why": "needs an admin" });
            db::events::record(&mut tx, account.id, EventKind::ReactivationRequested, data, None, now).await?;
            tx.commit().await?;
            tracing::info!(user_id = %account.id, "reactivation requested by an account only an admin may reactivate");
            return Ok(());
        }

        let claim = Claim {
            user_id: account.id,
            state_version: account.state_version,
        };
        // A crash before the commit below leaves a token nobody got; the
        // redelivery issues a fresh one, which supersedes it.
        let (token, _hash) = self.tokens.issue(claim).await?;
        let base = self.reactivation.public_url.trim_end_matches('/');
        let link = format!("{base}/reactivate?token={token}");
        let hours = (self.tokens.ttl().as_secs() / 3600).max(1);
        let email = mail::Email::new(
            Template::ReactivationLink,
            &account.email,
            &[("link", link), ("expires_in_hours", hours.to_string())],
        );
        let mut tx = self.pool.begin().await?;
        let data = json!({ "sent": true, "expires_in_hours": hours });
        db::events::record(&mut tx, account.id, EventKind::ReactivationRequested, data, None, now).await?;
        mail::owe(&mut tx, &mail_key, &email).await?;
        tx.commit().await?;
        self.waker.wake();
        tracing::info!(user_id = %account.id, trace_id = ?telemetry::current_trace_id(), "reactivation link issued");
        Ok(())
    }

    /// Consumes the link's token and reactivates the account it was issued
    /// for, if nothing changed since.
    pub async fn confirm_reactivation(&self, token: &str) -> Result<Account, Error> {
        let claim = self.tokens.consume(token).await?.ok_or(Error::LinkInvalid)?;
        let mut tx = self.pool.begin().await?;
        let account = db::users::lock(&mut tx, claim.user_id)
            .await?
            .ok_or(Error::LinkInvalid)?;
        let still_eligible = !account.is_active
            && account.state_version == claim.state_version
            && account
                .deactivation_reason
                .is_some_and(DeactivationReason::allows_self_reactivation);
        if !still_eligible {
            return Err(Error::LinkInvalid);
        }
        let data = json!({ "via": "email_link", "previous_reason": account.deactivation_reason.map(DeactivationReason::as_str) });
        let account = self
            .reactivate_locked(&mut tx, &account, data, Some(account.id))
            .await?;
        let email = mail::Email::new(Template::AccountReactivated, &account.email, &[]);
        let key = format!("account-reactivated:{}:{}", account.id, account.state_version);
        mail::owe(&mut tx, &key, &email).await?;
        tx.commit().await?;
        self.waker.wake();
        tracing::info!(user_id = %account.id, "account reactivated by email link");
        Ok(account)
    }
}
