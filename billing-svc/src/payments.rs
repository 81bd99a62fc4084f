//! Stripe, through the official client: the calls billing makes, in the
//! domain's words. Mutating calls carry an `Idempotency-Key` derived from
//! what they do, so a retry is the same call and never a second one.

use std::collections::HashMap;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest as _};
use stripe_billing::{
    SubscriptionStatus,
    invoice_payment::ListInvoicePayment,
    subscription::{CancelSubscription, RetrieveSubscription, UpdateSubscription},
};
use stripe_checkout::{
    CheckoutSessionMode,
    checkout_session::{
        CreateCheckoutSession, CreateCheckoutSessionDiscounts, CreateCheckoutSessionLineItems,
        CreateCheckoutSessionSubscriptionData, ExpireCheckoutSession,
    },
};
use stripe_core::{
    customer::{CreateCustomer, DeleteCustomer},
    refund::{CreateRefund, CreateRefundReason},
};
use stripe_product::{
    CouponDuration,
    coupon::{CreateCoupon, DeleteCoupon, RetrieveCoupon, UpdateCoupon},
};

use crate::{config::StripeConfig, domain::WelcomeBack};

/// A Stripe call that failed: nothing was changed by it (or it will be
/// replayed under the same idempotency key).
#[derive(Debug, thiserror::Error)]
#[error("Stripe call {call} failed: {source}")]
pub struct PaymentsError {
    call: &'static str,
    #[source]
    source: StripeError,
}

impl PaymentsError {
    /// Stripe knows no such coupon: the welcome-back offer was never set up
    /// (`billing-svc setup-coupons`).
    pub fn is_missing_coupon(&self) -> bool {
        match &self.source {
            StripeError::Stripe(error, 400 | 404) => {
                error.param.as_deref().is_some_and(|param| param.contains("coupon"))
                    || error
                        .message
                        .as_deref()
                        .is_some_and(|message| message.contains("No such coupon"))
            }
            _ => false,
        }
    }
}

fn failed(call: &'static str) -> impl FnOnce(StripeError) -> PaymentsError {
    move |source| PaymentsError { call, source }
}

fn idempotent(key: String) -> RequestStrategy {
    RequestStrategy::Idempotent(IdempotencyKey::new(key).expect("idempotency keys are short and non-empty"))
}

/// A subscription as Stripe holds it.
#[derive(Clone, Debug)]
pub struct StripeSubscription {
    pub id: String,
    pub status: SubscriptionStatus,
    pub cancel_at_period_end: bool,
    /// End of the current paid period (Unix seconds).
    pub current_period_end: i64,
    pub price_id: Option<String>,
    pub metadata: HashMap<String, String>,
    /// The invoice of its last payment: what a refund gives back.
    pub latest_invoice: Option<String>,
}

/// What a Checkout session is created with.
#[derive(Debug)]
pub struct CheckoutRequest<'a> {
    pub customer: &'a str,
    pub price_id: &'a str,
    pub coupon: Option<&'a str>,
    pub success_url: String,
    pub cancel_url: String,
    /// Copied onto the session and the subscription it creates.
    pub metadata: HashMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Payments {
    client: Client,
}

impl Payments {
    pub fn new(config: &StripeConfig) -> anyhow::Result<Self> {
        let client = ClientBuilder::new(config.secret_key.expose().as_str())
            .url(format!("{}/", config.api_base.trim_end_matches('/')))
            .timeout(config.timeout)
            .build()?;
        Ok(Self { client })
    }

    /// The Stripe customer of a tenant, created once per tenant whatever the
    /// retries.
    pub async fn create_customer(&self, tenant_id: uuid::Uuid, user_id: uuid::Uuid) -> Result<String, PaymentsError> {
        let metadata = HashMap::from([
            ("tenant_id".to_owned(), tenant_id.to_string()),
            ("user_id".to_owned(), user_id.to_string()),
        ]);
        let customer = CreateCustomer::new()
            .metadata(metadata)
            .customize()
            .request_strategy(idempotent(format!("customer-{tenant_id}")))
            .send(&self.client)
            .await
            .map_err(failed("create customer"))?;
        Ok(customer.id.to_string())
    }

    /// Deletes a customer at Stripe (which cancels their subscriptions
    /// there); one already gone is fine.
    pub async fn delete_customer(&self, customer_id: &str) -> Result<(), PaymentsError> {
        match DeleteCustomer::new(customer_id).send(&self.client).await {
            Ok(_) | Err(StripeError::Stripe(_, 404)) => Ok(()),
            Err(err) => Err(failed("delete customer")(err)),
        }
    }

    /// A Checkout session; returns its id and URL.
    pub async fn create_checkout_session(
        &self,
        request: CheckoutRequest<'_>,
    ) -> Result<(String, String), PaymentsError> {
        let mut line_item = CreateCheckoutSessionLineItems::new();
        line_item.price = Some(request.price_id.to_owned());
        line_item.quantity = Some(1);
        let mut subscription_data = CreateCheckoutSessionSubscriptionData::new();
        subscription_data.metadata = Some(request.metadata.clone());
        let mut create = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .customer(request.customer)
            .line_items(vec![line_item])
            .success_url(request.success_url)
            .cancel_url(request.cancel_url)
            .metadata(request.metadata)
            .subscription_data(subscription_data);
        if let Some(coupon) = request.coupon {
            let mut discount = CreateCheckoutSessionDiscounts::new();
            discount.coupon = Some(coupon.to_owned());
            create = create.discounts(vec![discount]);
        }
        let session = create
            .send(&self.client)
            .await
            .map_err(failed("create checkout session"))?;
        Ok((session.id.to_string(), session.url.unwrap_or_default()))
    }

    pub async fn subscription(&self, id: &str) -> Result<StripeSubscription, PaymentsError> {
        let subscription = RetrieveSubscription::new(id)
            .send(&self.client)
            .await
            .map_err(failed("retrieve subscription"))?;
        let item = subscription.items.data.first();
        Ok(StripeSubscription {
            id: subscription.id.to_string(),
            status: subscription.status,
            cancel_at_period_end: subscription.cancel_at_period_end,
            current_period_end: item
                .map(|item| item.current_period_end)
                .unwrap_or(subscription.billing_cycle_anchor),
            price_id: item.map(|item| item.price.id.to_string()),
            metadata: subscription.metadata,
            latest_invoice: subscription
                .latest_invoice
                .as_ref()
                .and_then(|invoice| invoice.id().as_ref())
                .map(ToString::to_string),
        })
    }

    /// Sets `cancel_at_period_end`; `idempotency_key` names this change.
    pub async fn set_cancel_at_period_end(
        &self,
        id: &str,
        cancel: bool,
        idempotency_key: String,
    ) -> Result<(), PaymentsError> {
        UpdateSubscription::new(id)
            .cancel_at_period_end(cancel)
            .customize()
            .request_strategy(idempotent(idempotency_key))
            .send(&self.client)
            .await
            .map_err(failed("update subscription"))?;
        Ok(())
    }

    /// Ends a subscription at once (a duplicate: the customer already holds
    /// one); one already ended is fine.
    pub async fn cancel_now(&self, id: &str) -> Result<(), PaymentsError> {
        let cancel = CancelSubscription::new(id)
            .customize()
            .request_strategy(idempotent(format!("duplicate-{id}")))
            .send(&self.client)
            .await;
        match cancel {
            Ok(_) | Err(StripeError::Stripe(_, 404)) => Ok(()),
            Err(err) => Err(failed("cancel subscription")(err)),
        }
    }

    /// Expires an open Checkout session, so it can no longer be paid.
    /// Whether it was open: one already paid (or expired) cannot be, and
    /// says so with a 400.
    pub async fn expire_checkout_session(&self, id: &str) -> Result<bool, PaymentsError> {
        match ExpireCheckoutSession::new(id).send(&self.client).await {
            Ok(_) => Ok(true),
            Err(StripeError::Stripe(_, 400 | 404)) => Ok(false),
            Err(err) => Err(failed("expire checkout session")(err)),
        }
    }

    /// Refunds in full what the customer paid for `subscription`'s latest
    /// invoice (a duplicate: they never meant to buy it). Each payment is
    /// refunded once, whatever the retries. Returns the cents refunded.
    pub async fn refund_latest_payment(&self, subscription: &StripeSubscription) -> Result<i64, PaymentsError> {
        let Some(invoice) = &subscription.latest_invoice else {
            return Ok(0);
        };
        let payments = ListInvoicePayment::new()
            .invoice(invoice)
            .send(&self.client)
            .await
            .map_err(failed("list invoice payments"))?;
        let mut refunded = 0;
        for payment in payments.data.iter().filter(|payment| payment.status == "paid") {
            let Some(intent) = &payment.payment.payment_intent else {
                continue;
            };
            let intent = intent.id().to_string();
            let refund = CreateRefund::new()
                .payment_intent(intent.as_str())
                .reason(CreateRefundReason::Duplicate)
                .customize()
                .request_strategy(idempotent(format!("refund-{intent}")))
                .send(&self.client)
                .await;
            match refund {
                Ok(refund) => refunded += refund.amount,
                // Refunded already (by support, or an earlier attempt).
                Err(StripeError::Stripe(_, 400)) => {}
                Err(err) => return Err(failed("refund")(err)),
            }
        }
        Ok(refunded)
    }

    /// Whether coupon `offer` exists at Stripe with its terms.
    pub async fn coupon_ready(&self, offer: WelcomeBack) -> Result<bool, PaymentsError> {
        match RetrieveCoupon::new(offer.coupon).send(&self.client).await {
            Ok(coupon) => {
                Ok(coupon.percent_off == Some(offer.percent_off as f64) && coupon.duration == CouponDuration::Once)
            }
            Err(StripeError::Stripe(_, 404)) => Ok(false),
            Err(err) => Err(failed("retrieve coupon")(err)),
        }
    }

    /// Makes coupon `offer` exist with its terms; what it did.
    pub async fn ensure_coupon(&self, offer: WelcomeBack) -> Result<CouponSetup, PaymentsError> {
        let existing = match RetrieveCoupon::new(offer.coupon).send(&self.client).await {
            Ok(coupon) => Some(coupon),
            Err(StripeError::Stripe(_, 404)) => None,
            Err(err) => return Err(failed("retrieve coupon")(err)),
        };
        let create = || async {
            CreateCoupon::new()
                .id(offer.coupon)
                .percent_off(offer.percent_off as f64)
                .duration(CouponDuration::Once)
                .name(offer.name)
                .send(&self.client)
                .await
                .map_err(failed("create coupon"))
        };
        match existing {
            None => {
                create().await?;
                Ok(CouponSetup::Created)
            }
            // A coupon's discount cannot be edited at Stripe: a coupon with
            // other terms is replaced.
            Some(coupon)
                if coupon.percent_off != Some(offer.percent_off as f64) || coupon.duration != CouponDuration::Once =>
            {
                DeleteCoupon::new(offer.coupon)
                    .send(&self.client)
                    .await
                    .map_err(failed("delete coupon"))?;
                create().await?;
                Ok(CouponSetup::Replaced)
            }
            Some(coupon) if coupon.name.as_deref() != Some(offer.name) => {
                UpdateCoupon::new(offer.coupon)
                    .name(offer.name)
                    .send(&self.client)
                    .await
                    .map_err(failed("update coupon"))?;
                Ok(CouponSetup::Renamed)
            }
            Some(_) => Ok(CouponSetup::Unchanged),
        }
    }
}

/// What `ensure_coupon` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CouponSetup {
    Created,
    Replaced,
    Renamed,
    Unchanged,
}
