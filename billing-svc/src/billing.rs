//! What a customer does with their subscription: look at it, cancel it,
//! undo the cancellation, see prices, check out — and the expiry job.
//!
//! Every change that Stripe must also make is made at Stripe first, inside
//! the transaction that holds the subscription's row lock: if Stripe fails,
//! the transaction rolls back and nothing changed here either.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use platform::{clock::Clock, shutdown::Shutdown};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::StripeConfig,
    db,
    domain::{Product, Status, Subscription},
    effects::{self, Access},
    error::Error,
    payments::{CheckoutRequest, Payments},
};

#[derive(Clone, Debug)]
pub struct Billing {
    pub(crate) pool: PgPool,
    pub(crate) clock: Clock,
    pub(crate) payments: Payments,
    pub(crate) stripe: StripeConfig,
    pub(crate) public_url: String,
    /// Wakes the outbox relay after a commit that owes an effect.
    pub(crate) waker: platform::outbox::Waker,
}

/// A Checkout session to send the customer to.
#[derive(Clone, Debug)]
pub struct Checkout {
    pub id: String,
    pub url: String,
    pub coupon: Option<&'static str>,
}

/// The win-back figures of seed 004.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub churned: i64,
    pub returned: i64,
    pub average_days_to_return: f64,
    pub returned_monthly: i64,
    pub returned_annual: i64,
    pub offers_used: i64,
}

impl Billing {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The user's current subscription, if they ever had one.
    pub async fn subscription(&self, user_id: Uuid) -> Result<Option<Subscription>, Error> {
        let mut connection = self.pool.acquire().await?;
        let Some(tenant) = db::tenant_of(&mut connection, user_id).await? else {
            return Ok(None);
        };
        Ok(db::current_subscription(&mut connection, tenant.id, false).await?)
    }

    #[tracing::instrument(skip(self, reason))]
    pub async fn cancel(&self, user_id: Uuid, reason: Option<String>) -> Result<Subscription, Error> {
        let mut tx = self.pool.begin().await?;
        let tenant = db::tenant_of(&mut tx, user_id).await?.ok_or(Error::TenantNotFound)?;
        let subscription = db::current_subscription(&mut tx, tenant.id, true)
            .await?
            .ok_or(Error::NotCancellable)?;
        if !subscription.can_cancel() {
            return Err(Error::NotCancellable);
        }
        let subscription = self.cancel_locked(&mut tx, subscription, reason.as_deref()).await?;
        tx.commit().await?;
        tracing::info!(subscription = %subscription.id, "subscription cancelled at period end");
        Ok(subscription)
    }

    /// The account of `user_id` was closed: the subscription, if one runs,
    /// is cancelled (no renewal) and product access suspended. Safe to call
    /// again: a closed account's subscription is already cancelled.
    #[tracing::instrument(skip(self, reason))]
    pub async fn close_account(
        &self,
        user_id: Uuid,
        reason: Option<String>,
        closure: &str,
    ) -> Result<Option<Subscription>, Error> {
        let mut tx = self.pool.begin().await?;
        let mut subscription = None;
        if let Some(tenant) = db::tenant_of(&mut tx, user_id).await? {
            subscription = db::current_subscription(&mut tx, tenant.id, true).await?;
            if let Some(current) = subscription.take_if(|current| current.can_cancel()) {
                subscription = Some(self.cancel_locked(&mut tx, current, reason.as_deref()).await?);
            }
        }
        // Keys the user holds without ever subscribing are suspended too.
        effects::owe_access(&mut tx, user_id, Access::Suspended, &format!("closed:{closure}")).await?;
        tx.commit().await?;
        self.waker.wake();
        tracing::info!(user_id = %user_id, "account closed: no renewal, access suspended");
        Ok(subscription)
    }

    /// Forgets the customer `user_id`: their Stripe customer is deleted at
    /// Stripe first (if Stripe fails, nothing is deleted here and the call is
    /// retried), then their tenant, subscriptions, billing events, failed
    /// webhooks about them and undelivered effects. Whether there was a tenant.
    #[tracing::instrument(skip(self))]
    pub async fn erase_customer(&self, user_id: Uuid) -> Result<bool, Error> {
        let tenant = {
            let mut connection = self.pool.acquire().await?;
            db::tenant_of(&mut connection, user_id).await?
        };
        if let Some(customer) = tenant.as_ref().and_then(|tenant| tenant.stripe_customer_id.as_deref()) {
            self.payments.delete_customer(customer).await?;
        }
        let mut tx = self.pool.begin().await?;
        if let Some(tenant) = &tenant {
            if let Some(customer) = &tenant.stripe_customer_id {
                sqlx::query("DELETE FROM failed_webhooks WHERE strpos(payload::text, $1) > 0")
                    .bind(format!("\"{customer}\""))
                    .execute(&mut *tx)
                    .await?;
            }
            // Subscriptions and billing events go with the tenant.
            sqlx::query("DELETE FROM tenants WHERE id = $1")
                .bind(tenant.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM outbox WHERE delivered_at IS NULL AND payload->>'user_id' = $1")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user_id, had_tenant = tenant.is_some(), "customer erased");
        Ok(tenant.is_some())
    }

    /// Cancels a locked, cancellable subscription at Stripe, then here. The
    /// caller commits.
    async fn cancel_locked(
        &self,
        tx: &mut sqlx::PgConnection,
        mut subscription: Subscription,
        reason: Option<&str>,
    ) -> Result<Subscription, Error> {
        let now = self.now();
        if let Some(stripe_id) = &subscription.stripe_subscription_id {
            let key = format!("cancel-{}-{}", subscription.id, subscription.revision);
            self.payments.set_cancel_at_period_end(stripe_id, true, key).await?;
        }
        subscription.status = Status::Cancelled;
        subscription.cancelled_at = Some(now);
        db::save_subscription(tx, &subscription, now).await?;
        db::mark_left(tx, subscription.tenant_id, reason, now).await?;
        let details = json!({ "reason": reason, "next_billing_date": subscription.next_billing_date });
        db::record_event(tx, subscription.tenant_id, "cancelled", details, now).await?;
        Ok(subscription)
    }

    /// Undoes a cancellation (seed 003): only from `cancelled`, only before
    /// the paid period ends; the billing date does not move.
    #[tracing::instrument(skip(self))]
    pub async fn reactivate(&self, user_id: Uuid) -> Result<Subscription, Error> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let tenant = db::tenant_of(&mut tx, user_id).await?.ok_or(Error::TenantNotFound)?;
        let mut subscription = db::current_subscription(&mut tx, tenant.id, true)
            .await?
            .ok_or(Error::NotCancelled)?;
        if subscription.status != Status::Cancelled {
            return Err(Error::NotCancelled);
        }
        if !subscription.can_reactivate(now) {
            return Err(Error::Expired);
        }
        if let Some(stripe_id) = &subscription.stripe_subscription_id {
            let key = format!("reactivate-{}-{}", subscription.id, subscription.revision);
            self.payments.set_cancel_at_period_end(stripe_id, false, key).await?;
        }
        subscription.status = Status::Active;
        subscription.cancelled_at = None;
        db::save_subscription(&mut tx, &subscription, now).await?;
        db::clear_left(&mut tx, tenant.id).await?;
        let details = json!({ "next_billing_date": subscription.next_billing_date });
        db::record_event(&mut tx, tenant.id, "reactivated", details, now).await?;
        tx.commit().await?;
        tracing::info!(subscription = %subscription.id, "cancellation undone");
        Ok(subscription)
    }

    /// Whether the user would get the welcome-back offer at checkout.
    pub async fn welcome_back_eligible(&self, user_id: Uuid) -> Result<bool, Error> {
        let mut connection = self.pool.acquire().await?;
        let tenant = db::tenant_of(&mut connection, user_id).await?;
        Ok(tenant.is_some_and(|tenant| tenant.welcome_back_eligible()))
    }

    #[tracing::instrument(skip(self))]
    pub async fn checkout(&self, user_id: Uuid, product: Product) -> Result<Checkout, Error> {
        let now = self.now();
        let mut connection = self.pool.acquire().await?;
        let tenant = db::tenant_for(&mut connection, user_id, now).await?;
        if let Some(current) = db::current_subscription(&mut connection, tenant.id, false).await?
            && matches!(current.status, Status::Active | Status::Trial)
        {
            return Err(Error::AlreadySubscribed);
        }
        let customer = match &tenant.stripe_customer_id {
            Some(customer) => customer.clone(),
            None => {
                let customer = self.payments.create_customer(tenant.id, user_id).await?;
                db::set_stripe_customer(&mut connection, tenant.id, &customer).await?;
                customer
            }
        };
        let coupon = tenant
            .welcome_back_eligible()
            .then(|| product.period.welcome_back().coupon);
        let price_id = self
            .stripe
            .prices
            .get(&product)
            .ok_or_else(|| anyhow::anyhow!("no Stripe price configured for {product}"))?;
        let mut metadata = HashMap::from([
            ("tenant_id".to_owned(), tenant.id.to_string()),
            ("plan".to_owned(), product.plan.as_str().to_owned()),
            ("billing_period".to_owned(), product.period.as_str().to_owned()),
        ]);
        if let Some(coupon) = coupon {
            metadata.insert("coupon".to_owned(), coupon.to_owned());
        }
        let base = self.public_url.trim_end_matches('/');
        let (id, url) = self
            .payments
            .create_checkout_session(CheckoutRequest {
                customer: &customer,
                price_id,
                coupon,
                success_url: format!("{base}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"),
                cancel_url: format!("{base}/billing/cancelled"),
                metadata,
            })
            .await?;
        let details = json!({ "plan": product.plan.as_str(), "billing_period": product.period.as_str(),
                               "coupon": coupon, "session": id });
        db::record_event(&mut connection, tenant.id, "checkout_started", details, now).await?;
        Ok(Checkout { id, url, coupon })
    }

    /// Marks cancelled subscriptions whose paid period ended as expired;
    /// their customers' product access ends. Returns how many.
    pub async fn expire_due(&self) -> Result<u64, Error> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let expired = db::expire_due(&mut tx, now).await?;
        for subscription in &expired {
            let details = json!({ "plan": subscription.plan, "billing_period": subscription.billing_period,
                                   "next_billing_date": subscription.next_billing_date });
            db::record_event(&mut tx, subscription.tenant_id, "expired", details, now).await?;
            let cause = format!("expired:{}", subscription.id);
            effects::owe_access(&mut tx, subscription.owner_user_id, Access::Suspended, &cause).await?;
        }
        tx.commit().await?;
        if !expired.is_empty() {
            self.waker.wake();
            tracing::info!(
                expired = expired.len(),
                "cancelled subscriptions reached the end of their paid period"
            );
        }
        Ok(expired.len() as u64)
    }

    /// Runs [`Billing::expire_due`] every `interval` until shutdown.
    pub async fn run_expiry(self, interval: Duration, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {
                    if let Err(err) = self.expire_due().await {
                        tracing::error!(error = %err, "expiring subscriptions failed");
                    }
                }
            }
        }
    }

    /// One customer's billing events, oldest first: (event, details, trace id, when).
    pub async fn events_of(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<(String, serde_json::Value, Option<String>, DateTime<Utc>)>, Error> {
        Ok(sqlx::query_as(
            "SELECT e.event, e.details, e.trace_id, e.occurred_at FROM billing_events e \
             JOIN tenants t ON t.id = e.tenant_id WHERE t.owner_user_id = $1 ORDER BY e.occurred_at, e.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn metrics(&self) -> Result<Metrics, Error> {
        let (churned, returned, offers_used): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE left_at IS NOT NULL OR reactivated_at IS NOT NULL), \
                    count(*) FILTER (WHERE reactivated_at IS NOT NULL), \
                    count(*) FILTER (WHERE welcome_back_used_at IS NOT NULL) FROM tenants",
        )
        .fetch_one(&self.pool)
        .await?;
        let (average_days, monthly, annual): (Option<f64>, i64, i64) = sqlx::query_as(
            "SELECT avg((details->>'away_secs')::float8) / 86400, \
                    count(*) FILTER (WHERE details->>'billing_period' = 'monthly'), \
                    count(*) FILTER (WHERE details->>'billing_period' = 'annual') \
             FROM billing_events WHERE event = 'returned'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Metrics {
            churned,
            returned,
            average_days_to_return: average_days.unwrap_or(0.0),
            returned_monthly: monthly,
            returned_annual: annual,
            offers_used,
        })
    }
}

impl Billing {
    /// Makes the welcome-back coupon `offer` exist at Stripe with its terms.
    pub async fn setup_coupon(&self, offer: crate::domain::WelcomeBack) -> Result<crate::payments::CouponSetup, Error> {
        Ok(self.payments.ensure_coupon(offer).await?)
    }
}
