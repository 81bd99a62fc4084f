//! Effects billing owes other services, delivered through the outbox: a
//! customer's product access follows their money (license-svc), and the
//! emails billing sends them (through identity-svc, which holds their
//! address and hands them to notify-svc).

use chrono::Utc;
use platform::{
    auth::InternalToken,
    client::TracedChannel,
    outbox::{self, Deliver, Entry, Payload, Rejected},
};
use std::collections::HashMap;

use proto::{
    identity::v1::{self as identity, identity_service_client::IdentityServiceClient},
    license::v1::{self as pb, license_service_client::LicenseServiceClient},
    notify::v1::Template,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// Outbox topic: set a customer's key access at license-svc.
pub const ACCESS_TOPIC: &str = "license.customer_access";

/// Outbox topic: an email to a customer, sent by identity-svc. Its payload
/// names the customer as `user_id` at the top level, so erasing the customer
/// drops the emails not delivered yet (see [`crate::billing::Billing::erase_customer`]).
pub const EMAIL_TOPIC: &str = "identity.customer_email";

/// What a customer's keys should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Paid: every key active as subscribed (no expiry; a trial converted),
    /// except one an admin disabled for cause.
    Active,
    /// Keys disabled, and why: license-svc records it, so that billing
    /// later restores only what billing took.
    Suspended(Suspension),
}

/// Why billing suspends a customer's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suspension {
    /// A payment failed, or the subscription ended.
    Payment,
    /// The customer closed their account.
    AccountClosed,
}

/// The outbox payload. `reason` came later: an entry without it is a
/// suspension for payment.
#[derive(Debug, Serialize, Deserialize)]
struct AccessChange {
    user_id: Uuid,
    /// `active` or `suspended`.
    access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<Suspension>,
    /// When the change happened (µs since the epoch): license-svc ignores a
    /// change older than the last it applied.
    version: i64,
}

impl Payload for AccessChange {
    const WHAT: &'static str = "access change";
}

/// Records, in the caller's transaction, that `user_id`'s keys must follow
/// `access`. `cause` names the change, so the entry exists once per change.
pub async fn owe_access(
    connection: &mut PgConnection,
    user_id: Uuid,
    access: Access,
    cause: &str,
) -> Result<(), sqlx::Error> {
    let (access, reason) = match access {
        Access::Active => ("active", None),
        Access::Suspended(reason) => ("suspended", Some(reason)),
    };
    let change = AccessChange {
        user_id,
        access: access.to_owned(),
        reason,
        version: Utc::now().timestamp_micros(),
    };
    outbox::owe(connection, ACCESS_TOPIC, &format!("access:{user_id}:{cause}"), &change).await
}

/// Records that the customer of `tenant_id` pays, so their keys must be
/// active — unless their account is closed: a closed account gets no access
/// back from billing until its owner acts again (see
/// [`crate::db::set_account_closed`]). Whether access is owed.
pub async fn owe_paid_access(connection: &mut PgConnection, tenant_id: Uuid, cause: &str) -> Result<bool, sqlx::Error> {
    let (owner, closed) = crate::db::owner_and_closed(connection, tenant_id).await?;
    if closed {
        tracing::info!(tenant = %tenant_id, "paid, but the account is closed: access stays suspended");
        return Ok(false);
    }
    owe_access(connection, owner, Access::Active, cause).await?;
    Ok(true)
}

/// The outbox payload of an email to a customer.
#[derive(Debug, Serialize, Deserialize)]
struct CustomerEmail {
    user_id: Uuid,
    /// The notify template's name, e.g. `TEMPLATE_SUBSCRIPTION_REACTIVATED`.
    template: String,
    variables: HashMap<String, String>,
}

impl Payload for CustomerEmail {
    const WHAT: &'static str = "customer email";
}

/// Records, in the caller's transaction, that `user_id` must get the email
/// `template` with `variables`; `key` makes it one email however often it
/// is recorded or delivered.
pub async fn owe_email(
    connection: &mut PgConnection,
    user_id: Uuid,
    template: Template,
    variables: &[(&str, String)],
    key: &str,
) -> Result<(), sqlx::Error> {
    let email = CustomerEmail {
        user_id,
        template: template.as_str_name().to_owned(),
        variables: variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
    };
    outbox::owe(connection, EMAIL_TOPIC, key, &email).await
}

/// Delivers billing-svc's outbox entries.
#[derive(Clone, Debug)]
pub struct Effects {
    pub license: LicenseServiceClient<TracedChannel>,
    pub identity: IdentityServiceClient<TracedChannel>,
    pub internal: InternalToken,
}

impl Deliver for Effects {
    async fn deliver(&self, entry: &Entry) -> anyhow::Result<()> {
        match entry.topic.as_str() {
            ACCESS_TOPIC => {
                let change: AccessChange = entry.parse()?;
                let access = match change.access.as_str() {
                    "active" => pb::CustomerAccess::Active,
                    "suspended" => pb::CustomerAccess::Suspended,
                    other => return Err(Rejected(format!("unknown access {other}")).into()),
                };
                let suspension = match change.reason {
                    None => pb::DisabledReason::Unspecified,
                    Some(Suspension::Payment) => pb::DisabledReason::Payment,
                    Some(Suspension::AccountClosed) => pb::DisabledReason::AccountClosed,
                };
                let message = pb::SetCustomerAccessRequest {
                    customer: Some(pb::set_customer_access_request::Customer::UserId(
                        change.user_id.to_string(),
                    )),
                    access: access.into(),
                    version: change.version,
                    suspension: suspension.into(),
                };
                let mut request = tonic::Request::new(message);
                self.internal.attach(&mut request);
                outbox::delivered(self.license.clone().set_customer_access(request).await)
            }
            EMAIL_TOPIC => {
                let email: CustomerEmail = entry.parse()?;
                let mut request = tonic::Request::new(identity::SendCustomerEmailRequest {
                    user_id: email.user_id.to_string(),
                    template: email.template,
                    variables: email.variables,
                    idempotency_key: entry.idempotency_key.clone(),
                });
                self.internal.attach(&mut request);
                // An erased customer is acknowledged (`owed` false): nothing to retry.
                outbox::delivered(self.identity.clone().send_customer_email(request).await)
            }
            other => anyhow::bail!("billing-svc has no delivery for outbox topic {other}"),
        }
    }
}
