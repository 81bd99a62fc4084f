//! Billing's reminder emails (seeds 003, 004), each sent once:
//!
//! - "Your cancelled subscription expires soon. Reactivate now?"
//!   [`ENDING_SOON_DAYS`] days before a cancelled subscription's paid period
//!   ends, with a link to the subscription page where the cancellation is
//!   undone;
//! - the win-back email with the welcome-back offer [`WIN_BACK_DAYS`] days
//!   after the customer's subscription ended — only while the offer waits
//!   for them (they left, never used it, and hold no plan), so the series
//!   stops as soon as they come back, and an erased customer, whose tenant
//!   is gone, gets nothing.
//!
//! Safe with many replicas: each email is recorded in `billing_reminders`
//! under a primary key (subscription, kind, days, the end it is about) by
//! the same statement that picks it, in the transaction that owes it. Two
//! passes at once both try the insert; the second waits for the first to
//! commit and then inserts nothing, so it owes nothing. Both insert in the
//! same order, so they cannot deadlock.

use std::time::Duration;

use platform::shutdown::Shutdown;
use proto::notify::v1::Template;
use serde_json::json;

use crate::{
    billing::Billing,
    db,
    domain::{Plan, WelcomeBack},
    effects,
    error::Error,
};

/// How many days before a cancelled subscription ends its customer is
/// reminded that they can still undo the cancellation.
pub const ENDING_SOON_DAYS: i32 = 3;

/// How many days after a subscription ended the win-back email goes out.
pub const WIN_BACK_DAYS: [i32; 3] = [30, 60, 80];

/// Each win-back email is due from its day until the next one's, the last
/// until this day: after an outage of the job a customer gets the one email
/// that fits now, not every one missed, and a subscription that ended long
/// before these emails existed gets none.
const WIN_BACK_LAST_DAY: i32 = 90;

/// What one pass of the job sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemindersPass {
    pub ending_soon: usize,
    pub win_back: usize,
}

impl Billing {
    /// Sends the reminder emails that are due now.
    pub async fn send_reminders(&self) -> Result<RemindersPass, Error> {
        let mut pass = RemindersPass {
            ending_soon: self.remind_ending_soon().await?,
            win_back: 0,
        };
        for (step, &days) in WIN_BACK_DAYS.iter().enumerate() {
            let until = WIN_BACK_DAYS.get(step + 1).copied().unwrap_or(WIN_BACK_LAST_DAY);
            pass.win_back += self.remind_win_back(days, until).await?;
        }
        if pass != RemindersPass::default() {
            tracing::info!(
                ending_soon = pass.ending_soon,
                win_back = pass.win_back,
                "billing reminders sent"
            );
        }
        Ok(pass)
    }

    /// Runs [`Billing::send_reminders`] every `interval` until shutdown.
    pub async fn run_reminders(self, interval: Duration, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {
                    if let Err(err) = self.send_reminders().await {
                        tracing::error!(error = %err, "sending billing reminders failed");
                    }
                }
            }
        }
    }

    fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }

    /// Cancelled subscriptions ending within [`ENDING_SOON_DAYS`] days.
    async fn remind_ending_soon(&self) -> Result<usize, Error> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let due = db::reminders::claim_ending_soon(&mut tx, now, ENDING_SOON_DAYS).await?;
        let subscription_url = self.link("/subscription");
        for (subscription, tenant, owner, plan, ends_at) in &due {
            let plan = Plan::parse(plan).map_or_else(|| plan.clone(), |plan| plan.display_name().to_owned());
            let variables = [
                ("plan", plan),
                ("end_date", ends_at.format("%B %-d, %Y").to_string()),
                ("subscription_url", subscription_url.clone()),
            ];
            let key = format!("subscription-ending-soon:{subscription}:{}", ends_at.timestamp());
            effects::owe_email(&mut tx, *owner, Template::SubscriptionEndingSoon, &variables, &key).await?;
            let details = json!({ "kind": "ending_soon", "days": ENDING_SOON_DAYS, "ends_at": ends_at });
            db::record_event(&mut tx, *tenant, "reminder_sent", details, now).await?;
        }
        tx.commit().await?;
        if !due.is_empty() {
            self.waker.wake();
        }
        Ok(due.len())
    }

    /// Customers whose subscription ended between `days` and `until` days
    /// ago and for whom the welcome-back offer waits: they left, have not
    /// used it, and hold no plan (no subscription of theirs is anything but
    /// expired). Counted from their latest subscription's end.
    async fn remind_win_back(&self, days: i32, until: i32) -> Result<usize, Error> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let due = db::reminders::claim_win_back(&mut tx, now, days, until).await?;
        let variables = [
            ("monthly_offer", WelcomeBack::MONTHLY.describe()),
            ("annual_offer", WelcomeBack::ANNUAL.describe()),
            ("pricing_url", self.link("/pricing")),
        ];
        for (subscription, tenant, owner, _, ended_at) in &due {
            let key = format!("win-back:{subscription}:{days}");
            effects::owe_email(&mut tx, *owner, Template::WelcomeBackOffer, &variables, &key).await?;
            let details = json!({ "kind": "win_back", "days": days, "ended_at": ended_at });
            db::record_event(&mut tx, *tenant, "reminder_sent", details, now).await?;
        }
        tx.commit().await?;
        if !due.is_empty() {
            self.waker.wake();
        }
        Ok(due.len())
    }
}
