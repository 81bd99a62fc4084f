//! What a customer does with their subscription: look at it, cancel it,
//! undo the cancellation, see prices, check out — and the expiry job.
//!
//! Every change that Stripe must also make is made at Stripe first, inside
//! the transaction that holds the subscription's row lock: if Stripe fails,
//! the transaction rolls back and nothing changed here either.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use platform::{clock::Clock, shutdown::Shutdown};
use proto::notify::v1::Template;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::StripeConfig,
    db,
    domain::{Product, Status, Subscription},
    effects::{self, Access, Suspension},
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
    /// The last [`METRICS_WEEKS`] weeks, oldest first.
    pub weeks: Vec<db::reports::Week>,
}

/// How many weeks the metrics look back, week by week.
pub const METRICS_WEEKS: i64 = 12;

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
            db::set_account_closed(&mut tx, tenant.id, Some(self.now())).await?;
            subscription = db::current_subscription(&mut tx, tenant.id, true).await?;
            if let Some(current) = subscription.take_if(|current| current.can_cancel()) {
                subscription = Some(self.cancel_locked(&mut tx, current, reason.as_deref()).await?);
            }
        }
        // Keys the user holds without ever subscribing are suspended too.
        let closed = Access::Suspended(Suspension::AccountClosed);
        effects::owe_access(&mut tx, user_id, closed, &format!("closed:{closure}")).await?;
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
                db::delete_failed_webhooks_about(&mut tx, customer).await?;
            }
            // Subscriptions and billing events go with the tenant.
            db::delete_tenant(&mut tx, tenant.id).await?;
        }
        platform::outbox::forget_pending(&mut tx, Some(user_id), None).await?;
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
        subscription.cancel(now)?;
        if let Some(stripe_id) = &subscription.stripe_subscription_id {
            let key = format!("cancel-{}-{}", subscription.id, subscription.revision);
            self.payments.set_cancel_at_period_end(stripe_id, true, key).await?;
        }
        db::save_subscription(tx, &subscription, now).await?;
        db::mark_left(tx, subscription.tenant_id, reason, now).await?;
        let details = json!({ "reason": reason, "next_billing_date": subscription.next_billing_date });
        db::record_event(tx, subscription.tenant_id, "cancelled", details, now).await?;
        Ok(subscription)
    }

    /// Undoes a cancellation (seed 003): only from `cancelled`, only before
    /// the paid period ends; the billing date does not move. Billing resumes,
    /// so access comes back — also after the account was closed and reopened:
    /// the customer's own token proves it is open again.
    #[tracing::instrument(skip(self))]
    pub async fn reactivate(&self, user_id: Uuid) -> Result<Subscription, Error> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let tenant = db::tenant_of(&mut tx, user_id).await?.ok_or(Error::TenantNotFound)?;
        let mut subscription = db::current_subscription(&mut tx, tenant.id, true)
            .await?
            .ok_or(Error::NotCancelled)?;
        // Ended, whether or not the expiry job has marked it yet: the
        // customer must buy again, and the message says so.
        subscription.undo_cancel(now)?;
        if let Some(stripe_id) = &subscription.stripe_subscription_id {
            let key = format!("reactivate-{}-{}", subscription.id, subscription.revision);
            self.payments.set_cancel_at_period_end(stripe_id, false, key).await?;
        }
        db::save_subscription(&mut tx, &subscription, now).await?;
        db::clear_left(&mut tx, tenant.id).await?;
        db::set_account_closed(&mut tx, tenant.id, None).await?;
        let details = json!({ "next_billing_date": subscription.next_billing_date });
        db::record_event(&mut tx, tenant.id, "reactivated", details, now).await?;
        let cause = format!("undone:{}:{}", subscription.id, subscription.revision);
        effects::owe_paid_access(&mut tx, tenant.id, &cause).await?;
        self.owe_reactivated_email(&mut tx, user_id, &subscription).await?;
        tx.commit().await?;
        self.waker.wake();
        tracing::info!(subscription = %subscription.id, "cancellation undone");
        Ok(subscription)
    }

    /// Confirms to `user_id` that `subscription` (just reactivated, its
    /// revision still the one before the change) runs again; one email per
    /// reactivation.
    pub(crate) async fn owe_reactivated_email(
        &self,
        connection: &mut sqlx::PgConnection,
        user_id: Uuid,
        subscription: &Subscription,
    ) -> Result<(), sqlx::Error> {
        let variables = [
            ("plan", subscription.product.plan.display_name().to_owned()),
            (
                "next_billing_date",
                subscription.next_billing_date.format("%B %-d, %Y").to_string(),
            ),
        ];
        let key = format!("subscription-reactivated:{}:{}", subscription.id, subscription.revision);
        effects::owe_email(connection, user_id, Template::SubscriptionReactivated, &variables, &key).await
    }

    /// Whether the user left and holds no plan (they must choose one), and
    /// whether the welcome-back offer waits for them.
    pub async fn standing(&self, user_id: Uuid) -> Result<(bool, bool), Error> {
        let mut connection = self.pool.acquire().await?;
        let Some(tenant) = db::tenant_of(&mut connection, user_id).await? else {
            return Ok((false, false));
        };
        let current = db::current_subscription(&mut connection, tenant.id, false).await?;
        let now = self.now();
        let holds_no_plan = current.as_ref().is_none_or(|subscription| subscription.has_ended(now));
        Ok((
            tenant.left_at.is_some() && holds_no_plan,
            offer_open(&tenant, current.as_ref(), now),
        ))
    }

    /// Whether the user would get the welcome-back offer at checkout.
    pub async fn welcome_back_eligible(&self, user_id: Uuid) -> Result<bool, Error> {
        let mut connection = self.pool.acquire().await?;
        let Some(tenant) = db::tenant_of(&mut connection, user_id).await? else {
            return Ok(false);
        };
        let current = db::current_subscription(&mut connection, tenant.id, false).await?;
        Ok(offer_open(&tenant, current.as_ref(), self.now()))
    }

    #[tracing::instrument(skip(self))]
    pub async fn checkout(&self, user_id: Uuid, product: Product) -> Result<Checkout, Error> {
        let now = self.now();
        let mut connection = self.pool.acquire().await?;
        let tenant = db::tenant_for(&mut connection, user_id, now).await?;
        // The customer's own token: their account is open.
        db::set_account_closed(&mut connection, tenant.id, None).await?;
        let current = db::current_subscription(&mut connection, tenant.id, false).await?;
        if let Some(current) = &current {
            match current.status {
                Status::Active | Status::Trial => return Err(Error::AlreadySubscribed),
                // One subscription at a time: the customer undoes the
                // cancellation instead (§3, §7 of the design).
                Status::Cancelled if !current.has_ended(now) => {
                    return Err(Error::CancelledStillRunning {
                        until: current.next_billing_date,
                    });
                }
                Status::Cancelled | Status::Expired => {}
            }
        }
        let customer = match &tenant.stripe_customer_id {
            Some(customer) => customer.clone(),
            None => {
                let customer = self.payments.create_customer(tenant.id, user_id).await?;
                db::set_stripe_customer(&mut connection, tenant.id, &customer).await?;
                customer
            }
        };
        let coupon = offer_open(&tenant, current.as_ref(), now).then(|| product.period.welcome_back().coupon);
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
        // One open session per tenant: the previous one is expired before a
        // new one exists, so two tabs cannot both be paid. The tenant stays
        // locked until the new one is recorded, so two checkouts at once
        // take turns. (One paid meanwhile cannot be expired; the completion
        // of a second then finds the first and ends it, refunded.)
        drop(connection);
        let mut tx = self.pool.begin().await?;
        db::lock_tenant(&mut tx, tenant.id).await?;
        if let Some(previous) = db::open_checkout_session(&mut tx, tenant.id).await? {
            let expired = self.payments.expire_checkout_session(&previous).await?;
            tracing::info!(session = %previous, expired, "the previous checkout session is closed");
        }
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
            .await
            .map_err(|err| {
                if coupon.is_some() && err.is_missing_coupon() {
                    Error::OfferNotSetUp
                } else {
                    Error::Payments(err)
                }
            })?;
        let details = json!({ "plan": product.plan.as_str(), "billing_period": product.period.as_str(),
                               "coupon": coupon, "session": id });
        db::set_open_checkout_session(&mut tx, tenant.id, Some(&id)).await?;
        db::record_event(&mut tx, tenant.id, "checkout_started", details, now).await?;
        tx.commit().await?;
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
            let unpaid = Access::Suspended(Suspension::Payment);
            effects::owe_access(&mut tx, subscription.owner_user_id, unpaid, &cause).await?;
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

    /// Runs [`Billing::expire_due`] every `interval` until shutdown; after a
    /// failed pass (Postgres down) sooner, backing off, so subscriptions that
    /// ended during an outage expire within seconds of its end.
    pub async fn run_expiry(self, interval: Duration, shutdown: Shutdown) {
        platform::health::run_periodically("subscription expiry", interval, shutdown, || async {
            self.expire_due().await.map(|_| ())
        })
        .await;
    }

    /// One customer's billing events, oldest first: (event, details, trace id, when).
    pub async fn events_of(&self, user_id: Uuid) -> Result<Vec<db::reports::Event>, Error> {
        Ok(db::reports::events_of(&self.pool, user_id).await?)
    }

    pub async fn metrics(&self) -> Result<Metrics, Error> {
        let (churned, returned, offers_used) = db::reports::churn(&self.pool).await?;
        let (average_days, monthly, annual) = db::reports::returns(&self.pool).await?;
        let weeks = db::reports::weeks(&self.pool, self.now() - chrono::Duration::weeks(METRICS_WEEKS)).await?;
        Ok(Metrics {
            weeks,
            churned,
            returned,
            average_days_to_return: average_days.unwrap_or(0.0),
            returned_monthly: monthly,
            returned_annual: annual,
            offers_used,
        })
    }
}

/// The welcome-back offer waits for a customer who left, has not used it,
/// and whose previous subscription has ended — never for cancelling and
/// buying again at a discount while the paid period runs.
fn offer_open(tenant: &db::Tenant, current: Option<&Subscription>, now: DateTime<Utc>) -> bool {
    tenant.welcome_back_eligible() && current.is_none_or(|subscription| subscription.has_ended(now))
}

impl Billing {
    /// Warns when a welcome-back coupon is missing at Stripe (or has other
    /// terms): returning customers' checkouts would be refused with
    /// `OFFER_NOT_SET_UP` until `billing-svc setup-coupons` runs. Never
    /// stops the service: Stripe may just be unreachable for a moment.
    pub async fn check_coupons(&self) {
        for offer in crate::domain::WelcomeBack::ALL {
            match self.payments.coupon_ready(offer).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    coupon = offer.coupon,
                    "the welcome-back coupon is not set up at Stripe: run `billing-svc setup-coupons`"
                ),
                Err(err) => {
                    tracing::warn!(coupon = offer.coupon, error = %err, "could not check the welcome-back coupon")
                }
            }
        }
    }

    /// Makes the welcome-back coupon `offer` exist at Stripe with its terms.
    pub async fn setup_coupon(&self, offer: crate::domain::WelcomeBack) -> Result<crate::payments::CouponSetup, Error> {
        Ok(self.payments.ensure_coupon(offer).await?)
    }
}
