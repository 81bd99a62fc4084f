//! Effects license-svc owes other services, delivered through the outbox.
//!
//! A use case records an [`Email`] with [`owe_email`] inside its own
//! transaction; the relay later hands it to notify-svc, whose idempotency
//! key (the outbox entry's) makes a redelivery harmless. (The same shape
//! as identity-svc's: a candidate for `platform::outbox`.)

use std::collections::HashMap;

use platform::{
    auth::InternalToken,
    client::TracedChannel,
    outbox::{self, Deliver, Entry, Rejected},
};
use proto::notify::v1::{self as notify, notify_service_client::NotifyServiceClient};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

const SEND_EMAIL: &str = "notify.enqueue";

/// An email to send, as stored in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Email {
    /// The notify template's name, e.g. `TEMPLATE_LICENSE_KEY`.
    pub template: String,
    pub recipient: String,
    pub variables: HashMap<String, String>,
}

impl Email {
    pub fn new(template: notify::Template, recipient: &str, variables: &[(&str, String)]) -> Self {
        Self {
            template: template.as_str_name().to_owned(),
            recipient: recipient.to_owned(),
            variables: variables
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
        }
    }
}

/// Records `email` to be sent once the transaction commits; `key` makes it
/// happen at most once however often it is recorded or delivered.
pub async fn owe_email(connection: &mut PgConnection, key: &str, email: &Email) -> anyhow::Result<()> {
    outbox::enqueue(connection, SEND_EMAIL, key, serde_json::to_value(email)?).await?;
    Ok(())
}

/// Delivers license-svc's outbox entries.
#[derive(Clone, Debug)]
pub struct Effects {
    pub notify: NotifyServiceClient<TracedChannel>,
    pub internal: InternalToken,
}

impl Deliver for Effects {
    async fn deliver(&self, entry: &Entry) -> anyhow::Result<()> {
        match entry.topic.as_str() {
            SEND_EMAIL => {
                let email: Email = serde_json::from_value(entry.payload.clone())?;
                let template = notify::Template::from_str_name(&email.template)
                    .ok_or_else(|| anyhow::anyhow!("unknown template {}", email.template))?;
                let mut request = tonic::Request::new(notify::EnqueueRequest {
                    template: template.into(),
                    recipient: email.recipient,
                    variables: email.variables,
                    idempotency_key: entry.idempotency_key.clone(),
                });
                self.internal.attach(&mut request);
                match self.notify.clone().enqueue(request).await {
                    Ok(_) => Ok(()),
                    // The message itself is wrong: sending it again cannot help.
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        Err(Rejected(status.message().to_owned()).into())
                    }
                    Err(status) => Err(status.into()),
                }
            }
            other => anyhow::bail!("license-svc has no delivery for outbox topic {other}"),
        }
    }
}
