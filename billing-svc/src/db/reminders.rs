//! Which reminder emails are due, recorded in `billing_reminders` as they
//! are claimed so each goes out once, however many replicas look.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A reminder due: (subscription, tenant, owner, plan, the moment it is
/// about: the end coming or the end passed).
pub type Due = (Uuid, Uuid, Uuid, String, DateTime<Utc>);

/// A claim of reminders: `$due` ends with a `due` CTE of (id, tenant_id,
/// owner_user_id, plan, `$ends_at`) rows with `$1` now and `$2` the days;
/// the claim records reminder `$kind` for each of them not recorded yet and
/// returns only those, so each reminder goes out once.
macro_rules! claim {
    ($due:literal, kind = $kind:literal, ends_at = $ends_at:literal $(,)?) => {
        concat!(
            $due,
            "recorded AS ( \
                 INSERT INTO billing_reminders (subscription_id, kind, days, ends_at, sent_at) \
                 SELECT id, ",
            $kind,
            ", $2, ",
            $ends_at,
            ", $1 FROM due ORDER BY id \
                 ON CONFLICT DO NOTHING RETURNING subscription_id) \
             SELECT due.id, due.tenant_id, due.owner_user_id, due.plan, due.",
            $ends_at,
            " FROM due JOIN recorded ON recorded.subscription_id = due.id"
        )
    };
}

/// Claims the "ending soon" reminder of every cancelled subscription ending
/// within `days` days of `now` and not reminded of that end yet.
#[tracing::instrument(skip(connection))]
pub async fn claim_ending_soon(
    connection: &mut PgConnection,
    now: DateTime<Utc>,
    days: i32,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(claim!(
        "WITH due AS ( \
             SELECT s.id, s.tenant_id, t.owner_user_id, s.plan, s.next_billing_date FROM subscriptions s \
             JOIN tenants t ON t.id = s.tenant_id \
             WHERE s.status = 'cancelled' AND s.next_billing_date > $1 \
               AND s.next_billing_date - make_interval(days => $2) <= $1), ",
        kind = "'ending_soon'",
        ends_at = "next_billing_date",
    ))
    .bind(now)
    .bind(days)
    .fetch_all(connection)
    .await
}

/// Claims the win-back reminder `days` of every customer whose latest
/// subscription ended between `days` and `until` days before `now`, who left,
/// has not used the welcome-back offer and holds no plan.
#[tracing::instrument(skip(connection))]
pub async fn claim_win_back(
    connection: &mut PgConnection,
    now: DateTime<Utc>,
    days: i32,
    until: i32,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(claim!(
        "WITH latest AS ( \
             SELECT DISTINCT ON (t.id) s.id, s.tenant_id, t.owner_user_id, s.plan, s.ended_at \
             FROM tenants t JOIN subscriptions s ON s.tenant_id = t.id \
             WHERE t.left_at IS NOT NULL AND t.welcome_back_used_at IS NULL \
               AND s.status = 'expired' AND s.ended_at IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM subscriptions held \
                               WHERE held.tenant_id = t.id AND held.status <> 'expired') \
             ORDER BY t.id, s.ended_at DESC, s.id DESC), \
         due AS ( \
             SELECT * FROM latest \
             WHERE ended_at + make_interval(days => $2) <= $1 AND ended_at + make_interval(days => $3) > $1), ",
        kind = "'win_back'",
        ends_at = "ended_at",
    ))
    .bind(now)
    .bind(days)
    .bind(until)
    .fetch_all(connection)
    .await
}
