//! Effects billing owes other services, delivered through the outbox: a
//! customer's product access follows their money (license-svc).

use chrono::Utc;
use platform::{
    auth::InternalToken,
    client::TracedChannel,
    outbox::{self, Deliver, Entry, Rejected},
};
use proto::license::v1::{self as pb, license_service_client::LicenseServiceClient};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// Outbox topic: set a customer's key access at license-svc.
pub const ACCESS_TOPIC: &str = "license.customer_access";

/// What a customer's keys should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Paid: every key active as subscribed (no expiry; a trial converted).
    Active,
    /// Not paid (payment failed, subscription expired, account closed): keys disabled.
    Suspended,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessChange {
    user_id: Uuid,
    access: Access,
    /// When the change happened (µs since the epoch): license-svc ignores a
    /// change older than the last it applied.
    version: i64,
}

/// Records, in the caller's transaction, that `user_id`'s keys must follow
/// `access`. `cause` names the change, so the entry exists once per change.
pub async fn owe_access(
    connection: &mut PgConnection,
    user_id: Uuid,
    access: Access,
    cause: &str,
) -> Result<(), sqlx::Error> {
    let change = AccessChange {
        user_id,
        access,
        version: Utc::now().timestamp_micros(),
    };
    let payload = serde_json::to_value(&change).expect("an access change serializes");
    outbox::enqueue(connection, ACCESS_TOPIC, &format!("access:{user_id}:{cause}"), payload).await
}

/// Delivers billing-svc's outbox entries.
#[derive(Clone, Debug)]
pub struct Effects {
    pub license: LicenseServiceClient<TracedChannel>,
    pub internal: InternalToken,
}

impl Deliver for Effects {
    async fn deliver(&self, entry: &Entry) -> anyhow::Result<()> {
        match entry.topic.as_str() {
            ACCESS_TOPIC => {
                let change: AccessChange = serde_json::from_value(entry.payload.clone())
                    .map_err(|err| Rejected(format!("malformed access change: {err}")))?;
                let access = match change.access {
                    Access::Active => pb::CustomerAccess::Active,
                    Access::Suspended => pb::CustomerAccess::Suspended,
                };
                let message = pb::SetCustomerAccessRequest {
                    customer: Some(pb::set_customer_access_request::Customer::UserId(
                        change.user_id.to_string(),
                    )),
                    access: access.into(),
                    version: change.version,
                };
                let mut request = tonic::Request::new(message);
                self.internal.attach(&mut request);
                outbox::delivered(self.license.clone().set_customer_access(request).await)
            }
            other => anyhow::bail!("billing-svc has no delivery for outbox topic {other}"),
        }
    }
}
