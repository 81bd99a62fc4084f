//! Effects identity-svc owes other services, delivered through the outbox: the
//! relay hands each entry here, and its topic says who receives it.

use platform::{
    auth::InternalToken,
    client::TracedChannel,
    mail,
    outbox::{self, Deliver, Entry, Payload},
};
use proto::{
    billing::v1::{self as billing, billing_service_client::BillingServiceClient},
    license::v1::{self as license, license_service_client::LicenseServiceClient},
    notify::v1::{self as notify, notify_service_client::NotifyServiceClient},
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::accounts::Accounts;

/// Outbox topic: a closed account's subscription stops renewing and its
/// product access ends (billing-svc, which tells license-svc).
pub const CLOSE_ACCOUNT_TOPIC: &str = "billing.close_account";

/// Outbox topic delivered inside identity-svc: a reactivation request
/// accepted but not yet answered (the account lookup, the link and its
/// email). Its payload names the email as `recipient`, like an owed email,
/// so an erasure removes a pending request with the rest of the person's
/// undelivered effects.
pub const REACTIVATION_REQUEST_TOPIC: &str = "identity.reactivation_request";

#[derive(Debug, Serialize, Deserialize)]
struct ReactivationRequested {
    request: Uuid,
    recipient: String,
}

impl Payload for ReactivationRequested {
    const WHAT: &'static str = "reactivation request";
}

/// Records, in the caller's transaction, a reactivation request for
/// `email`, answered once the transaction commits.
pub async fn owe_reactivation_request(
    connection: &mut PgConnection,
    request: Uuid,
    email: &str,
) -> Result<(), sqlx::Error> {
    let requested = ReactivationRequested {
        request,
        recipient: email.to_owned(),
    };
    let key = format!("reactivation-request:{request}");
    outbox::owe(connection, REACTIVATION_REQUEST_TOPIC, &key, &requested).await
}

/// Outbox topics of an erasure: each service forgets the customer.
pub const ERASE_BILLING_TOPIC: &str = "billing.erase_customer";
pub const ERASE_LICENSE_TOPIC: &str = "license.erase_customer";
pub const ERASE_NOTIFY_TOPIC: &str = "notify.erase_recipient";

/// Who to forget. Delivered entries lose their payload, so the email does
/// not outlive the erasure in the outbox.
#[derive(Debug, Serialize, Deserialize)]
struct Erased {
    user_id: Uuid,
    email: String,
    /// The confirmation email notify-svc must keep (and send).
    keep: String,
}

impl Payload for Erased {
    const WHAT: &'static str = "erasure";
}

/// Records, in the caller's transaction, that every other service must
/// forget `user_id` / `email`; `erasure` names this erasure, and `keep` is
/// the idempotency key of the confirmation email.
pub async fn owe_erasure(
    connection: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    erasure: Uuid,
    keep: &str,
) -> Result<(), sqlx::Error> {
    let erased = Erased {
        user_id,
        email: email.to_owned(),
        keep: keep.to_owned(),
    };
    for topic in [ERASE_BILLING_TOPIC, ERASE_LICENSE_TOPIC, ERASE_NOTIFY_TOPIC] {
        outbox::owe(connection, topic, &format!("{topic}:{erasure}"), &erased).await?;
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct AccountClosed {
    user_id: Uuid,
    reason: Option<String>,
}

impl Payload for AccountClosed {
    const WHAT: &'static str = "account closure";
}

/// Records, in the caller's transaction, that billing must close the
/// account of `user_id`; `closure` names this deactivation.
pub async fn owe_account_closure(
    connection: &mut PgConnection,
    user_id: Uuid,
    reason: Option<&str>,
    closure: &str,
) -> Result<(), sqlx::Error> {
    let closed = AccountClosed {
        user_id,
        reason: reason.map(str::to_owned),
    };
    outbox::owe(connection, CLOSE_ACCOUNT_TOPIC, closure, &closed).await
}

/// Delivers identity-svc's outbox entries.
#[derive(Clone, Debug)]
pub struct Effects {
    pub notify: NotifyServiceClient<TracedChannel>,
    pub billing: BillingServiceClient<TracedChannel>,
    pub license: LicenseServiceClient<TracedChannel>,
    pub internal: InternalToken,
    /// Answers reactivation requests, which stay inside identity-svc.
    pub accounts: Accounts,
}

impl Effects {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        self.internal.attach(&mut request);
        request
    }
}

impl Deliver for Effects {
    async fn deliver(&self, entry: &Entry) -> anyhow::Result<()> {
        match entry.topic.as_str() {
            mail::TOPIC => mail::send(&self.notify, &self.internal, entry).await,
            REACTIVATION_REQUEST_TOPIC => {
                let requested: ReactivationRequested = entry.parse()?;
                self.accounts
                    .send_reactivation_link(requested.request, &requested.recipient)
                    .await
            }
            CLOSE_ACCOUNT_TOPIC => {
                let closed: AccountClosed = entry.parse()?;
                let request = self.request(billing::CloseAccountRequest {
                    user_id: closed.user_id.to_string(),
                    reason: closed.reason.unwrap_or_default(),
                    idempotency_key: entry.idempotency_key.clone(),
                });
                outbox::delivered(self.billing.clone().close_account(request).await)
            }
            ERASE_BILLING_TOPIC | ERASE_LICENSE_TOPIC | ERASE_NOTIFY_TOPIC => {
                let erased: Erased = entry.parse()?;
                let user_id = erased.user_id.to_string();
                match entry.topic.as_str() {
                    ERASE_BILLING_TOPIC => {
                        let request = self.request(billing::EraseCustomerRequest { user_id });
                        outbox::delivered(self.billing.clone().erase_customer(request).await)
                    }
                    ERASE_LICENSE_TOPIC => {
                        let request = self.request(license::EraseCustomerRequest {
                            user_id,
                            email: erased.email,
                        });
                        outbox::delivered(self.license.clone().erase_customer(request).await)
                    }
                    _ => {
                        let request = self.request(notify::EraseRecipientRequest {
                            recipient: erased.email,
                            keep_idempotency_key: erased.keep,
                        });
                        outbox::delivered(self.notify.clone().erase_recipient(request).await)
                    }
                }
            }
            other => anyhow::bail!("identity-svc has no delivery for outbox topic {other}"),
        }
    }
}
