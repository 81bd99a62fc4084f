//! Effects identity-svc owes other services, delivered through the outbox: the
//! relay hands each entry here, and its topic says who receives it.

use platform::{
    auth::InternalToken,
    client::TracedChannel,
    mail,
    outbox::{self, Deliver, Entry, Rejected},
};
use proto::{
    billing::v1::{self as billing, billing_service_client::BillingServiceClient},
    notify::v1::notify_service_client::NotifyServiceClient,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// Outbox topic: a closed account's subscription stops renewing and its
/// product access ends (billing-svc, which tells license-svc).
pub const CLOSE_ACCOUNT_TOPIC: &str = "billing.close_account";

#[derive(Debug, Serialize, Deserialize)]
struct AccountClosed {
    user_id: Uuid,
    reason: Option<String>,
}

/// Records, in the caller's transaction, that billing must close the
/// account of `user_id`; `closure` names this deactivation.
pub async fn owe_account_closure(
    connection: &mut PgConnection,
    user_id: Uuid,
    reason: Option<&str>,
    closure: &str,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_value(AccountClosed {
        user_id,
        reason: reason.map(str::to_owned),
    })
    .expect("an account closure serializes");
    outbox::enqueue(connection, CLOSE_ACCOUNT_TOPIC, closure, payload).await
}

/// Delivers identity-svc's outbox entries.
#[derive(Clone, Debug)]
pub struct Effects {
    pub notify: NotifyServiceClient<TracedChannel>,
    pub billing: BillingServiceClient<TracedChannel>,
    pub internal: InternalToken,
}

impl Deliver for Effects {
    async fn deliver(&self, entry: &Entry) -> anyhow::Result<()> {
        match entry.topic.as_str() {
            mail::TOPIC => mail::send(&self.notify, &self.internal, entry).await,
            CLOSE_ACCOUNT_TOPIC => {
                let closed: AccountClosed = serde_json::from_value(entry.payload.clone())
                    .map_err(|err| Rejected(format!("malformed account closure: {err}")))?;
                let mut request = tonic::Request::new(billing::CloseAccountRequest {
                    user_id: closed.user_id.to_string(),
                    reason: closed.reason.unwrap_or_default(),
                    idempotency_key: entry.idempotency_key.clone(),
                });
                self.internal.attach(&mut request);
                match self.billing.clone().close_account(request).await {
                    Ok(_) => Ok(()),
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        Err(Rejected(status.message().to_owned()).into())
                    }
                    Err(status) => Err(status.into()),
                }
            }
            other => anyhow::bail!("identity-svc has no delivery for outbox topic {other}"),
        }
    }
}
