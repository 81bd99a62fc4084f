//! Applying one Stripe event, exactly once: what Stripe says of the
//! subscription now is fetched first, then synced in one transaction with
//! the event id, so a second delivery finds it and changes nothing.

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;
use stripe_billing::SubscriptionStatus;
use uuid::Uuid;

use super::{
    Event, Outcome,
    event::{invoice_subscription, string_at},
};
use crate::{
    billing::Billing,
    db,
    domain::{BillingPeriod, Plan, Product, Status},
    effects::{self, Access, Suspension},
    error::Error,
    payments::StripeSubscription,
};

/// What Stripe said when billing asked, fetched before the transaction so no
/// row lock waits on the network.
enum Fetched {
    Nothing,
    Subscription(StripeSubscription),
}

/// Our status for Stripe's view of a subscription.
fn local_status(subscription: &StripeSubscription) -> Status {
    match subscription.status {
        SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired => Status::Expired,
        _ if subscription.cancel_at_period_end => Status::Cancelled,
        SubscriptionStatus::Trialing => Status::Trial,
        _ => Status::Active,
    }
}

fn timestamp(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

impl Billing {
    pub(super) async fn apply(&self, event: &Event) -> Result<Outcome, Error> {
        if db::webhooks::already_applied(&self.pool, &event.id).await? {
            return Ok(Outcome::Duplicate);
        }
        let object = &event.data.object;
        let fetched = match event.kind.as_str() {
            "checkout.session.completed" => {
                let id = string_at(object, &["subscription"])
                    .ok_or_else(|| anyhow::anyhow!("checkout session without a subscription"))?;
                Fetched::Subscription(self.payments.subscription(id).await?)
            }
            "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
                let id = string_at(object, &["id"]).ok_or_else(|| anyhow::anyhow!("subscription without an id"))?;
                Fetched::Subscription(self.payments.subscription(id).await?)
            }
            // An invoice of no subscription (a one-off) is not billing's.
            "invoice.paid" | "invoice.payment_failed" => match invoice_subscription(object) {
                Some(id) => Fetched::Subscription(self.payments.subscription(id).await?),
                None => Fetched::Nothing,
            },
            _ => Fetched::Nothing,
        };

        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if !db::webhooks::record_applied(&mut *tx, &event.id, &event.kind, now).await? {
            // A concurrent delivery of the same event won.
            return Ok(Outcome::Duplicate);
        }
        let cause = event.id.as_str();
        let outcome = match (event.kind.as_str(), fetched) {
            ("checkout.session.completed", Fetched::Subscription(subscription)) => {
                self.checkout_completed(&mut tx, object, &subscription, cause, now)
                    .await?
            }
            ("invoice.paid" | "invoice.payment_failed", Fetched::Subscription(subscription)) => {
                self.invoice(&mut tx, object, &subscription, cause, now).await?
            }
            (_, Fetched::Subscription(subscription)) => self.sync(&mut tx, &subscription, cause, now).await?,
            _ => Outcome::Ignored,
        };
        db::webhooks::resolve_failed(&mut *tx, &event.id, now).await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(outcome)
    }

    /// The tenant a Stripe subscription belongs to, from the metadata
    /// checkout put on it; `None` when that tenant is gone — the customer
    /// was erased, and Stripe still tells of the subscription that erasure
    /// ended: nothing to apply, nothing to keep.
    async fn tenant_of_subscription(
        &self,
        connection: &mut PgConnection,
        subscription: &StripeSubscription,
    ) -> Result<Option<db::Tenant>, Error> {
        let tenant_id = subscription
            .metadata
            .get("tenant_id")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| anyhow::anyhow!("subscription {} is not known here", subscription.id))?;
        let tenant = db::tenant(connection, tenant_id).await?;
        if tenant.is_none() {
            tracing::info!(subscription = %subscription.id, "an event about an erased customer: ignored");
        }
        Ok(tenant)
    }

    fn product_of(&self, subscription: &StripeSubscription) -> Result<Product, Error> {
        if let Some(product) = subscription
            .price_id
            .as_deref()
            .and_then(|id| self.stripe.product_of(id))
        {
            return Ok(product);
        }
        let plan = subscription.metadata.get("plan").and_then(|plan| Plan::parse(plan));
        let period = subscription
            .metadata
            .get("billing_period")
            .and_then(|p| BillingPeriod::parse(p));
        match (plan, period) {
            (Some(plan), Some(period)) => Ok(Product { plan, period }),
            _ => Err(anyhow::anyhow!("subscription {} has a price billing does not sell", subscription.id).into()),
        }
    }

    /// The local copy of a Stripe subscription, created on first sight —
    /// unless the tenant already holds a running one: then this one is a
    /// duplicate (two Checkout sessions paid), ended at Stripe at once and
    /// its payment refunded, so the customer is never charged twice, and
    /// `None`. `None` too for one first seen after it ended: there is
    /// nothing to keep.
    ///
    /// The tenant row is locked before the check: two completions at once
    /// (two sessions paid in two tabs) take turns, and the second sees the
    /// first one's subscription.
    async fn local_subscription(
        &self,
        connection: &mut PgConnection,
        subscription: &StripeSubscription,
        now: DateTime<Utc>,
    ) -> Result<Option<(crate::domain::Subscription, bool)>, Error> {
        if let Some(existing) = db::subscription_by_stripe_id(connection, &subscription.id).await? {
            return Ok(Some((existing, false)));
        }
        let Some(tenant) = self.tenant_of_subscription(connection, subscription).await? else {
            return Ok(None);
        };
        if local_status(subscription) == Status::Expired {
            return Ok(None);
        }
        db::lock_tenant(connection, tenant.id).await?;
        // Seen meanwhile by the completion that held the lock.
        if let Some(existing) = db::subscription_by_stripe_id(connection, &subscription.id).await? {
            return Ok(Some((existing, false)));
        }
        if let Some(running) = db::current_subscription(connection, tenant.id, false)
            .await?
            .filter(|current| !current.has_ended(now))
        {
            self.payments.cancel_now(&subscription.id).await?;
            let refunded_cents = self.payments.refund_latest_payment(subscription).await?;
            let details = json!({ "stripe_subscription": subscription.id, "kept": running.stripe_subscription_id,
                                   "refunded_cents": refunded_cents });
            db::record_event(connection, tenant.id, "duplicate_cancelled", details, now).await?;
            tracing::warn!(tenant = %tenant.id, subscription = %subscription.id, refunded_cents,
                           "a second subscription was paid: cancelled and refunded at Stripe");
            return Ok(None);
        }
        let product = self.product_of(subscription)?;
        let created = db::insert_subscription(
            connection,
            tenant.id,
            &subscription.id,
            product,
            local_status(subscription),
            timestamp(subscription.current_period_end),
            now,
        )
        .await?;
        db::expire_others(connection, tenant.id, created.id, now).await?;
        let details = json!({ "plan": product.plan.as_str(), "billing_period": product.period.as_str(),
                               "stripe_subscription": subscription.id });
        db::record_event(connection, tenant.id, "subscribed", details, now).await?;
        Ok(Some((created, true)))
    }

    /// Checkout paid: the subscription exists here, and a customer who had
    /// left is recorded as back (with the offer, if the session had it).
    async fn checkout_completed(
        &self,
        connection: &mut PgConnection,
        session: &Value,
        subscription: &StripeSubscription,
        cause: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        let Some((local, _)) = self.local_subscription(connection, subscription, now).await? else {
            return Ok(Outcome::Ignored);
        };
        effects::owe_paid_access(connection, local.tenant_id, cause).await?;
        let coupon = string_at(session, &["metadata", "coupon"]);
        if let Some(left_at) = db::mark_returned(connection, local.tenant_id, coupon.is_some(), now).await? {
            let away_secs = (now - left_at).num_seconds().max(0);
            let details = json!({ "plan": local.product.plan.as_str(), "billing_period": local.product.period.as_str(),
                                   "away_secs": away_secs, "coupon": coupon });
            db::record_event(connection, local.tenant_id, "returned", details, now).await?;
            if let Some(coupon) = coupon {
                db::record_event(
                    connection,
                    local.tenant_id,
                    "offer_used",
                    json!({ "coupon": coupon }),
                    now,
                )
                .await?;
            }
            tracing::info!(tenant = %local.tenant_id, away_secs, coupon, "customer came back");
        }
        Ok(Outcome::Applied)
    }

    /// Brings the local subscription in line with Stripe's.
    async fn sync(
        &self,
        connection: &mut PgConnection,
        subscription: &StripeSubscription,
        cause: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        let Some((mut local, created)) = self.local_subscription(connection, subscription, now).await? else {
            return Ok(Outcome::Ignored);
        };
        if created {
            return Ok(Outcome::Applied);
        }
        let status = local_status(subscription);
        let before = local.status;
        local.next_billing_date = timestamp(subscription.current_period_end);
        if let Ok(product) = self.product_of(subscription) {
            local.product = product;
        }
        let mut reactivated = false;
        if status != before {
            local.status = status;
            match status {
                Status::Cancelled => {
                    local.cancelled_at = Some(now);
                    db::mark_left(connection, local.tenant_id, None, now).await?;
                    db::record_event(
                        connection,
                        local.tenant_id,
                        "cancelled",
                        json!({ "source": "stripe" }),
                        now,
                    )
                    .await?;
                }
                Status::Expired => {
                    db::mark_left(connection, local.tenant_id, None, now).await?;
                    db::record_event(
                        connection,
                        local.tenant_id,
                        "expired",
                        json!({ "source": "stripe" }),
                        now,
                    )
                    .await?;
                    let owner = db::owner_of(connection, local.tenant_id).await?;
                    effects::owe_access(connection, owner, Access::Suspended(Suspension::Payment), cause).await?;
                }
                Status::Active | Status::Trial if before == Status::Cancelled => {
                    local.cancelled_at = None;
                    db::clear_left(connection, local.tenant_id).await?;
                    // Confirmed by email only when access comes back with it
                    // (not for a closed account): the email says the keys work.
                    reactivated = effects::owe_paid_access(connection, local.tenant_id, cause).await?;
                    db::record_event(
                        connection,
                        local.tenant_id,
                        "reactivated",
                        json!({ "source": "stripe" }),
                        now,
                    )
                    .await?;
                }
                Status::Active | Status::Trial => {}
            }
        }
        if reactivated {
            // Undone at Stripe (the customer portal, support): confirmed as
            // an undo here is. Before saving: the key names this revision.
            let owner = db::owner_of(connection, local.tenant_id).await?;
            self.owe_reactivated_email(connection, owner, &local).await?;
        }
        db::save_subscription(connection, &local, now).await?;
        if status == Status::Expired && before != Status::Expired {
            db::mark_ended(connection, local.id, now).await?;
        }
        Ok(Outcome::Applied)
    }

    /// A payment failed or went through: Stripe's subscription, re-read
    /// just now, says which is true now — a late or replayed invoice event
    /// cannot undo a newer one. The subscription is synced first (created
    /// here if this is the first word of it), then payment state and access
    /// follow Stripe's status: failing (`past_due`, `unpaid`) suspends, a
    /// running subscription paid up makes access follow the money.
    async fn invoice(
        &self,
        connection: &mut PgConnection,
        invoice: &Value,
        subscription: &StripeSubscription,
        cause: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        if self.sync(connection, subscription, cause, now).await? == Outcome::Ignored {
            return Ok(Outcome::Ignored);
        }
        let Some(mut local) = db::subscription_by_stripe_id(connection, &subscription.id).await? else {
            return Ok(Outcome::Ignored);
        };
        let failing = matches!(
            subscription.status,
            SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid
        );
        let details = json!({ "invoice": string_at(invoice, &["id"]) });
        match (failing, local.payment_failed_at) {
            (true, None) => {
                local.payment_failed_at = Some(now);
                db::record_event(connection, local.tenant_id, "payment_failed", details, now).await?;
            }
            (false, Some(_)) => {
                local.payment_failed_at = None;
                db::record_event(connection, local.tenant_id, "payment_recovered", details, now).await?;
            }
            _ => {}
        }
        if failing {
            let owner = db::owner_of(connection, local.tenant_id).await?;
            effects::owe_access(connection, owner, Access::Suspended(Suspension::Payment), cause).await?;
        } else if !local.has_ended(now) {
            effects::owe_paid_access(connection, local.tenant_id, cause).await?;
        }
        db::save_subscription(connection, &local, now).await?;
        Ok(Outcome::Applied)
    }
}
