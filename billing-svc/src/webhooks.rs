//! Stripe webhooks: verified by signature, applied exactly once per event
//! id, kept for replay when applying fails.
//!
//! Stripe retries and may deliver events out of order, so an event is a
//! prompt rather than the truth: for subscription events the current
//! subscription is fetched from Stripe and synced, which makes the order of
//! arrival irrelevant. The event id is recorded in the same transaction as
//! its effects; a second delivery finds it and changes nothing.

use chrono::{DateTime, TimeZone as _, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use stripe_billing::SubscriptionStatus;
use uuid::Uuid;

use crate::{
    billing::Billing,
    db,
    domain::{BillingPeriod, Plan, Product, Status},
    effects::{self, Access},
    error::Error,
    payments::StripeSubscription,
};

/// How far a signature's timestamp may be from now (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

/// Checks `Stripe-Signature` (`t=…,v1=…[,v1=…]`) over the raw body.
pub fn verify(header: &str, payload: &[u8], secret: &str, now: DateTime<Utc>) -> Result<(), Error> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Error::SignatureInvalid("no timestamp"))?;
    if signatures.is_empty() {
        return Err(Error::SignatureInvalid("no v1 signature"));
    }
    if (now.timestamp() - timestamp).abs() > TOLERANCE_SECS {
        return Err(Error::SignatureInvalid("timestamp outside the tolerance"));
    }
    let matches = signatures.iter().filter_map(|hex| decode_hex(hex)).any(|signature| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        // Constant-time comparison.
        mac.verify_slice(&signature).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(Error::SignatureInvalid("no signature matches"))
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The parts of a Stripe event billing reads; the rest is kept as sent.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// What became of a delivered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
        }
    }
}

/// A failed webhook as stored for replay.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FailedWebhook {
    pub event_id: String,
    pub event_type: String,
    pub error: String,
    pub attempts: i32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const FAILED_COLUMNS: &str = "event_id, event_type, error, attempts, first_failed_at, last_failed_at, resolved_at";

/// What Stripe said when billing asked, fetched before the transaction so no
/// row lock waits on the network.
enum Fetched {
    Nothing,
    Subscription(StripeSubscription),
}

fn string_at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(object, |value, key| value.get(key))?.as_str()
}

/// The subscription an invoice belongs to, in old and new API shapes.
fn invoice_subscription(invoice: &Value) -> Option<&str> {
    string_at(invoice, &["subscription"])
        .or_else(|| string_at(invoice, &["parent", "subscription_details", "subscription"]))
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
    /// Verifies and applies one delivery from Stripe.
    #[tracing::instrument(skip_all)]
    pub async fn handle_webhook(&self, payload: &[u8], signature: &str) -> Result<(String, Outcome), Error> {
        verify(signature, payload, self.stripe.webhook_secret.expose(), self.now())?;
        let raw: Value =
            serde_json::from_slice(payload).map_err(|_| Error::invalid("payload", "not a Stripe event"))?;
        let event: Event =
            serde_json::from_value(raw.clone()).map_err(|_| Error::invalid("payload", "not a Stripe event"))?;
        tracing::info!(event = %event.id, kind = %event.kind, "stripe event received");
        let outcome = self.apply_or_keep(&event, &raw).await?;
        Ok((event.id, outcome))
    }

    /// Applies `event`; a failure is kept in `failed_webhooks` (and returned,
    /// so Stripe retries too).
    async fn apply_or_keep(&self, event: &Event, raw: &Value) -> Result<Outcome, Error> {
        match self.apply(event).await {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                tracing::warn!(event = %event.id, kind = %event.kind, error = %err, "stripe event failed to apply");
                let now = self.now();
                sqlx::query(
                    "INSERT INTO failed_webhooks (event_id, event_type, payload, error, first_failed_at, last_failed_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (event_id) DO UPDATE SET \
                     error = EXCLUDED.error, attempts = failed_webhooks.attempts + 1, \
                     last_failed_at = EXCLUDED.last_failed_at, resolved_at = NULL",
                )
                .bind(&event.id)
                .bind(&event.kind)
                .bind(raw)
                .bind(err.to_string())
                .bind(now)
                .execute(&self.pool)
                .await?;
                Err(err)
            }
        }
    }

    async fn apply(&self, event: &Event) -> Result<Outcome, Error> {
        if already_applied(&self.pool, &event.id).await? {
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
            _ => Fetched::Nothing,
        };

        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO stripe_events (event_id, event_type, applied_at) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // A concurrent delivery of the same event won.
            return Ok(Outcome::Duplicate);
        }
        let cause = event.id.as_str();
        let outcome = match (event.kind.as_str(), fetched) {
            ("checkout.session.completed", Fetched::Subscription(subscription)) => {
                self.checkout_completed(&mut tx, object, &subscription, cause, now)
                    .await?
            }
            (_, Fetched::Subscription(subscription)) => self.sync(&mut tx, &subscription, cause, now).await?,
            ("invoice.payment_failed", _) => self.payment(&mut tx, object, false, cause, now).await?,
            ("invoice.paid", _) => self.payment(&mut tx, object, true, cause, now).await?,
            _ => Outcome::Ignored,
        };
        sqlx::query("UPDATE failed_webhooks SET resolved_at = $2 WHERE event_id = $1 AND resolved_at IS NULL")
            .bind(&event.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(outcome)
    }

    /// The tenant a Stripe subscription belongs to, from the metadata
    /// checkout put on it.
    async fn tenant_of_subscription(
        &self,
        connection: &mut PgConnection,
        subscription: &StripeSubscription,
    ) -> Result<db::Tenant, Error> {
        let tenant_id = subscription
            .metadata
            .get("tenant_id")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| anyhow::anyhow!("subscription {} is not known here", subscription.id))?;
        Ok(db::tenant(connection, tenant_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("tenant {tenant_id} of subscription {} is gone", subscription.id))?)
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

    /// The local copy of a Stripe subscription, created on first sight.
    async fn local_subscription(
        &self,
        connection: &mut PgConnection,
        subscription: &StripeSubscription,
        now: DateTime<Utc>,
    ) -> Result<(crate::domain::Subscription, bool), Error> {
        if let Some(existing) = db::subscription_by_stripe_id(connection, &subscription.id).await? {
            return Ok((existing, false));
        }
        let tenant = self.tenant_of_subscription(connection, subscription).await?;
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
        Ok((created, true))
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
        let (local, _) = self.local_subscription(connection, subscription, now).await?;
        let owner = db::owner_of(connection, local.tenant_id).await?;
        effects::owe_access(connection, owner, Access::Active, cause).await?;
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
        let (mut local, created) = self.local_subscription(connection, subscription, now).await?;
        if created {
            return Ok(Outcome::Applied);
        }
        let status = local_status(subscription);
        let before = local.status;
        local.next_billing_date = timestamp(subscription.current_period_end);
        if let Ok(product) = self.product_of(subscription) {
            local.product = product;
        }
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
                    effects::owe_access(connection, owner, Access::Suspended, cause).await?;
                }
                Status::Active | Status::Trial if before == Status::Cancelled => {
                    local.cancelled_at = None;
                    db::clear_left(connection, local.tenant_id).await?;
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
        db::save_subscription(connection, &local, now).await?;
        Ok(Outcome::Applied)
    }

    /// A payment failed or went through.
    async fn payment(
        &self,
        connection: &mut PgConnection,
        invoice: &Value,
        paid: bool,
        cause: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        let Some(stripe_id) = invoice_subscription(invoice) else {
            return Ok(Outcome::Ignored);
        };
        let mut local = db::subscription_by_stripe_id(connection, stripe_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("invoice of subscription {stripe_id}, which is not known here"))?;
        let invoice_id = string_at(invoice, &["id"]);
        let access = match (paid, local.payment_failed_at) {
            (false, None) => {
                local.payment_failed_at = Some(now);
                db::record_event(
                    connection,
                    local.tenant_id,
                    "payment_failed",
                    json!({ "invoice": invoice_id }),
                    now,
                )
                .await?;
                Access::Suspended
            }
            (true, Some(_)) => {
                local.payment_failed_at = None;
                db::record_event(
                    connection,
                    local.tenant_id,
                    "payment_recovered",
                    json!({ "invoice": invoice_id }),
                    now,
                )
                .await?;
                Access::Active
            }
            _ => return Ok(Outcome::Applied),
        };
        let owner = db::owner_of(connection, local.tenant_id).await?;
        effects::owe_access(connection, owner, access, cause).await?;
        db::save_subscription(connection, &local, now).await?;
        Ok(Outcome::Applied)
    }

    pub async fn failed_webhooks(&self, include_resolved: bool) -> Result<Vec<FailedWebhook>, Error> {
        let filter = if include_resolved {
            ""
        } else {
            "WHERE resolved_at IS NULL"
        };
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {FAILED_COLUMNS} FROM failed_webhooks {filter} ORDER BY first_failed_at, event_id"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Applies failed webhooks again: `event_id`, or every unresolved one.
    /// Each comes back with its new state (resolved, or failed once more).
    pub async fn replay_failed(&self, event_id: Option<&str>) -> Result<Vec<FailedWebhook>, Error> {
        let pending: Vec<(String, Value)> =
            match event_id {
                Some(id) => {
                    let found: Option<(String, Value)> =
                        sqlx::query_as("SELECT event_id, payload FROM failed_webhooks WHERE event_id = $1")
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await?;
                    vec![found.ok_or(Error::WebhookNotFound)?]
                }
                None => sqlx::query_as(
                    "SELECT event_id, payload FROM failed_webhooks WHERE resolved_at IS NULL ORDER BY first_failed_at",
                )
                .fetch_all(&self.pool)
                .await?,
            };
        let mut replayed = Vec::with_capacity(pending.len());
        for (id, payload) in pending {
            let event: Event = serde_json::from_value(payload.clone()).map_err(anyhow::Error::from)?;
            match self.apply_or_keep(&event, &payload).await {
                Ok(outcome) => tracing::info!(event = %id, outcome = outcome.as_str(), "failed webhook replayed"),
                Err(err) => tracing::warn!(event = %id, error = %err, "failed webhook failed again"),
            }
            let state: FailedWebhook = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {FAILED_COLUMNS} FROM failed_webhooks WHERE event_id = $1"
            )))
            .bind(&id)
            .fetch_one(&self.pool)
            .await?;
            replayed.push(state);
        }
        Ok(replayed)
    }
}

async fn already_applied(pool: &PgPool, event_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM stripe_events WHERE event_id = $1)")
        .bind(event_id)
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("t={t},v1={hex}")
    }

    #[test]
    fn accepts_a_fresh_signature_and_refuses_the_rest() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let body = br#"{"id":"evt_1"}"#;
        let good = sign("whsec_a", now.timestamp() - 10, body);
        assert!(verify(&good, body, "whsec_a", now).is_ok());
        assert!(
            verify(&good, br#"{"id":"evt_2"}"#, "whsec_a", now).is_err(),
            "another body"
        );
        assert!(verify(&good, body, "whsec_b", now).is_err(), "another secret");
        let stale = sign("whsec_a", now.timestamp() - TOLERANCE_SECS - 1, body);
        assert!(
            verify(&stale, body, "whsec_a", now).is_err(),
            "older than the tolerance"
        );
        assert!(verify("t=1700000000", body, "whsec_a", now).is_err(), "no v1");
        assert!(verify("garbage", body, "whsec_a", now).is_err());
        // Stripe sends several v1 signatures while a secret is being rolled.
        let rolled = format!("{good},v1=00ff");
        assert!(verify(&rolled, body, "whsec_a", now).is_ok());
    }
}
