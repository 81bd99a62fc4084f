//! Retention: a deactivated account is erased `RETENTION_DAYS` after its
//! deactivation, with reminder emails before (default 30 and 7 days).
//! Coming back in the meantime cancels it: the job only ever looks at
//! inactive accounts, and dates everything from the current absence.
//!
//! Safe with many replicas: a reminder is recorded under a primary key
//! (account, absence, days before) in the transaction that owes its email,
//! so only one replica's insert wins; a purge locks the account row, and a
//! replica that comes second finds the account gone.

use std::time::Duration;

use platform::{mail, shutdown::Shutdown};
use proto::notify::v1::Template;
use serde_json::json;

use crate::{
    accounts::{Accounts, ErasureCause},
    config::RetentionConfig,
    db,
    domain::EventKind,
    error::Error,
};

/// What one pass of the job did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPass {
    pub reminded: usize,
    pub purged: usize,
}

/// Accounts erased per pass at most, so one pass stays short.
const PURGE_BATCH: i64 = 100;

impl Accounts {
    /// Sends the reminders that are due, then erases the accounts whose
    /// retention ended.
    pub async fn run_retention_once(&self, retention: &RetentionConfig) -> Result<RetentionPass, Error> {
        let mut pass = RetentionPass::default();
        for &days_before in &retention.reminder_days {
            pass.reminded += self.send_reminders(retention.days, days_before).await?;
        }
        pass.purged = self.purge(retention.days).await?;
        if pass != RetentionPass::default() {
            tracing::info!(reminded = pass.reminded, purged = pass.purged, "retention pass");
        }
        Ok(pass)
    }

    /// Runs [`Accounts::run_retention_once`] every `retention.interval` until
    /// shutdown; after a failed pass (a store down) sooner, backing off, so
    /// reminders and purges that came due during an outage follow its end
    /// within seconds.
    pub async fn run_retention(self, retention: RetentionConfig, shutdown: Shutdown) {
        let interval = retention.interval.max(Duration::from_secs(1));
        platform::health::run_periodically("retention", interval, shutdown, || async {
            self.run_retention_once(&retention).await.map(|_| ())
        })
        .await;
    }

    /// Reminds accounts whose erasure is `days_before` days away or less.
    /// Only customers who may reactivate themselves are invited to.
    async fn send_reminders(&self, retention_days: u32, days_before: u32) -> Result<usize, Error> {
        if days_before >= retention_days {
            return Ok(0);
        }
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let due = db::retention::claim_reminders(&mut tx, now, retention_days as i32, days_before as i32).await?;
        let reactivate_url = format!("{}/login", self.reactivation.public_url.trim_end_matches('/'));
        for (user_id, email, deactivated_at) in &due {
            let purge_at = *deactivated_at + chrono::Duration::days(i64::from(retention_days));
            let days_left = (purge_at - now).num_days().max(0) + 1;
            let reminder = mail::Email::new(
                Template::RetentionReminder,
                email,
                &[
                    ("purge_date", purge_at.format("%B %-d, %Y").to_string()),
                    ("days_left", days_left.min(i64::from(days_before)).to_string()),
                    ("reactivate_url", reactivate_url.clone()),
                ],
            );
            let key = format!(
                "retention-reminder:{user_id}:{}:{days_before}",
                deactivated_at.timestamp_micros()
            );
            mail::owe(&mut tx, &key, &reminder).await?;
            let data = json!({ "days_before": days_before, "purge_at": purge_at });
            db::events::record(&mut tx, *user_id, EventKind::RetentionReminderSent, data, None, now).await?;
        }
        tx.commit().await?;
        if !due.is_empty() {
            self.waker.wake();
        }
        Ok(due.len())
    }

    /// Erases the accounts whose retention period ended.
    async fn purge(&self, retention_days: u32) -> Result<usize, Error> {
        let now = self.clock.now();
        let expired = db::retention::past_retention(&self.pool, now, retention_days as i32, PURGE_BATCH).await?;
        let mut purged = 0;
        for user_id in expired {
            match self.erase_account(user_id, ErasureCause::Retention).await {
                Ok(_) => purged += 1,
                // Another replica erased it first, or it came back meanwhile.
                Err(Error::UserNotFound | Error::AlreadyActive) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(purged)
    }
}
