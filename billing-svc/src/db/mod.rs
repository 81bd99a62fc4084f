//! Tenants, subscriptions and billing events in Postgres; the reminders
//! owed ([`reminders`]), the figures support reads ([`reports`]) and the
//! Stripe events applied or failed ([`webhooks`]).

pub mod reminders;
pub mod reports;
pub mod webhooks;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::domain::{BillingPeriod, Plan, Product, Status, Subscription};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub owner_user_id: Uuid,
    pub stripe_customer_id: Option<String>,
    pub left_at: Option<DateTime<Utc>>,
    pub welcome_back_used_at: Option<DateTime<Utc>>,
}

impl Tenant {
    /// A customer who left and has not used the welcome-back offer yet. A
    /// first-time customer never is.
    pub fn welcome_back_eligible(&self) -> bool {
        self.left_at.is_some() && self.welcome_back_used_at.is_none()
    }
}

const TENANT_COLUMNS: &str = "id, owner_user_id, stripe_customer_id, left_at, welcome_back_used_at";

pub async fn tenant_of(connection: &mut PgConnection, user_id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE owner_user_id = $1"
    )))
    .bind(user_id)
    .fetch_optional(connection)
    .await
}

pub async fn tenant(connection: &mut PgConnection, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(connection)
    .await
}

/// The user's tenant, created on first use; concurrent first uses get the same one.
pub async fn tenant_for(
    connection: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Tenant, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO tenants (id, owner_user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (owner_user_id) DO UPDATE SET owner_user_id = EXCLUDED.owner_user_id \
         RETURNING {TENANT_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(now)
    .fetch_one(connection)
    .await
}

/// Locks tenant `id` until the transaction ends: what changes which
/// subscription or Checkout session a tenant holds takes turns.
/// Deletes the tenant `id`; its subscriptions and billing events go with it
/// (the foreign keys cascade).
#[tracing::instrument(skip(connection))]
pub async fn delete_tenant(connection: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(id)
        .execute(connection)
        .await?;
    Ok(())
}

/// Deletes the failed webhooks that mention the Stripe customer `customer`.
#[tracing::instrument(skip_all)]
pub async fn delete_failed_webhooks_about(connection: &mut PgConnection, customer: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM failed_webhooks WHERE strpos(payload::text, $1) > 0")
        .bind(format!("\"{customer}\""))
        .execute(connection)
        .await?;
    Ok(())
}

pub async fn lock_tenant(connection: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(connection)
        .await?;
    Ok(())
}

/// The tenant's Checkout session that may still be open (the last one created).
pub async fn open_checkout_session(
    connection: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT open_checkout_session FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(connection)
        .await
}

pub async fn set_open_checkout_session(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    session: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET open_checkout_session = $2 WHERE id = $1")
        .bind(tenant_id)
        .bind(session)
        .execute(connection)
        .await?;
    Ok(())
}

/// The user who owns tenant `id`.
pub async fn owner_of(connection: &mut PgConnection, tenant_id: Uuid) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT owner_user_id FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(connection)
        .await
}

pub async fn set_stripe_customer(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    customer: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET stripe_customer_id = $2 WHERE id = $1")
        .bind(tenant_id)
        .bind(customer)
        .execute(connection)
        .await?;
    Ok(())
}

/// The customer cancelled (`reason` kept as `last_cancellation_reason`).
pub async fn mark_left(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tenants SET left_at = COALESCE(left_at, $2), \
         last_cancellation_reason = COALESCE($3, last_cancellation_reason) WHERE id = $1",
    )
    .bind(tenant_id)
    .bind(now)
    .bind(reason)
    .execute(connection)
    .await?;
    Ok(())
}

/// The customer's account was closed (`Some`) or is open again (`None`).
pub async fn set_account_closed(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    closed_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET account_closed_at = $2 WHERE id = $1")
        .bind(tenant_id)
        .bind(closed_at)
        .execute(connection)
        .await?;
    Ok(())
}

/// The owner of tenant `tenant_id`, and whether their account is closed.
pub async fn owner_and_closed(connection: &mut PgConnection, tenant_id: Uuid) -> Result<(Uuid, bool), sqlx::Error> {
    sqlx::query_as("SELECT owner_user_id, account_closed_at IS NOT NULL FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(connection)
        .await
}

/// The customer undid their cancellation: they never left.
pub async fn clear_left(connection: &mut PgConnection, tenant_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET left_at = NULL WHERE id = $1")
        .bind(tenant_id)
        .execute(connection)
        .await?;
    Ok(())
}

/// A customer who had left subscribed again: when, how many times, and
/// whether the welcome-back offer was used. Returns when they had left.
pub async fn mark_returned(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    offer_used: bool,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH before AS (SELECT left_at FROM tenants WHERE id = $1 FOR UPDATE) \
         UPDATE tenants SET left_at = NULL, reactivated_at = $2, reactivation_count = reactivation_count + 1, \
         welcome_back_used_at = CASE WHEN $3 THEN COALESCE(welcome_back_used_at, $2) ELSE welcome_back_used_at END \
         FROM before WHERE id = $1 AND before.left_at IS NOT NULL RETURNING before.left_at",
    )
    .bind(tenant_id)
    .bind(now)
    .bind(offer_used)
    .fetch_optional(connection)
    .await
}

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: Uuid,
    tenant_id: Uuid,
    stripe_subscription_id: Option<String>,
    plan: String,
    billing_period: String,
    status: String,
    next_billing_date: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    payment_failed_at: Option<DateTime<Utc>>,
    revision: i32,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = anyhow::Error;

    fn try_from(row: SubscriptionRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: row.id,
            tenant_id: row.tenant_id,
            stripe_subscription_id: row.stripe_subscription_id,
            product: Product {
                plan: Plan::parse(&row.plan).context("unknown plan in the database")?,
                period: BillingPeriod::parse(&row.billing_period).context("unknown period in the database")?,
            },
            status: Status::parse(&row.status).context("unknown status in the database")?,
            next_billing_date: row.next_billing_date,
            cancelled_at: row.cancelled_at,
            payment_failed_at: row.payment_failed_at,
            revision: row.revision,
        })
    }
}

const SUBSCRIPTION_COLUMNS: &str = "id, tenant_id, stripe_subscription_id, plan, billing_period, status, \
     next_billing_date, cancelled_at, payment_failed_at, revision";

/// The tenant's current (latest) subscription; `for_update` locks it until
/// the transaction ends, so two changes to it cannot interleave.
pub async fn current_subscription(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    for_update: bool,
) -> anyhow::Result<Option<Subscription>> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    let row: Option<SubscriptionRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant_id = $1 \
         ORDER BY status <> 'expired' DESC, created_at DESC, id DESC LIMIT 1 {lock}"
    )))
    .bind(tenant_id)
    .fetch_optional(connection)
    .await?;
    row.map(Subscription::try_from).transpose()
}

pub async fn subscription_by_stripe_id(
    connection: &mut PgConnection,
    stripe_id: &str,
) -> anyhow::Result<Option<Subscription>> {
    let row: Option<SubscriptionRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE stripe_subscription_id = $1 FOR UPDATE"
    )))
    .bind(stripe_id)
    .fetch_optional(connection)
    .await?;
    row.map(Subscription::try_from).transpose()
}

/// A new subscription from Stripe; an existing one with the same Stripe id
/// is returned unchanged.
pub async fn insert_subscription(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    stripe_id: &str,
    product: Product,
    status: Status,
    next_billing_date: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Subscription> {
    let row: SubscriptionRow = sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO subscriptions (id, tenant_id, stripe_subscription_id, plan, billing_period, status, \
         next_billing_date, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (stripe_subscription_id) DO UPDATE SET updated_at = subscriptions.updated_at \
         RETURNING {SUBSCRIPTION_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(stripe_id)
    .bind(product.plan.as_str())
    .bind(product.period.as_str())
    .bind(status.as_str())
    .bind(next_billing_date)
    .bind(now)
    .fetch_one(connection)
    .await?;
    row.try_into()
}

/// Writes a subscription's state back, bumping its revision.
pub async fn save_subscription(
    connection: &mut PgConnection,
    subscription: &Subscription,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET plan = $2, billing_period = $3, status = $4, next_billing_date = $5, \
         cancelled_at = $6, payment_failed_at = $7, revision = revision + 1, updated_at = $8 WHERE id = $1",
    )
    .bind(subscription.id)
    .bind(subscription.product.plan.as_str())
    .bind(subscription.product.period.as_str())
    .bind(subscription.status.as_str())
    .bind(subscription.next_billing_date)
    .bind(subscription.cancelled_at)
    .bind(subscription.payment_failed_at)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

/// Cancelled subscriptions other than `keep` end now: the customer bought a
/// new one.
pub async fn expire_others(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    keep: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET status = 'expired', ended_at = $3, revision = revision + 1, updated_at = $3 \
         WHERE tenant_id = $1 AND id <> $2 AND status IN ('cancelled', 'trial', 'active')",
    )
    .bind(tenant_id)
    .bind(keep)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

/// Stripe ended subscription `id` (at `at`, or at the end of its paid
/// period if that came first).
pub async fn mark_ended(connection: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE subscriptions SET ended_at = LEAST(next_billing_date, $2) WHERE id = $1 AND ended_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(connection)
        .await?;
    Ok(())
}

/// Appends a billing event, stamped with the current request's trace id.
pub async fn record_event(
    connection: &mut PgConnection,
    tenant_id: Uuid,
    event: &str,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO billing_events (tenant_id, event, details, trace_id, occurred_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant_id)
    .bind(event)
    .bind(details)
    .bind(platform::telemetry::current_trace_id())
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

/// A subscription whose paid period ended, as the expiry job saw it.
#[derive(Debug, sqlx::FromRow)]
pub struct Expired {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub owner_user_id: Uuid,
    pub plan: String,
    pub billing_period: String,
    pub next_billing_date: DateTime<Utc>,
}

/// Cancelled subscriptions whose paid period ended become expired, in one
/// statement: replicas running it at once lock the same rows, and the one
/// that waits finds them no longer cancelled, so each expires once.
pub async fn expire_due(connection: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Expired>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE subscriptions s SET status = 'expired', ended_at = s.next_billing_date, \
         revision = revision + 1, updated_at = $1 \
         FROM tenants t WHERE t.id = s.tenant_id AND s.status = 'cancelled' AND s.next_billing_date <= $1 \
         RETURNING s.id, s.tenant_id, t.owner_user_id, s.plan, s.billing_period, s.next_billing_date",
    )
    .bind(now)
    .fetch_all(connection)
    .await
}
