//! Email a service owes someone, delivered by notify-svc through the outbox.
//!
//! A use case records an [`Email`] with [`owe`] inside its own transaction;
//! the service's outbox relay later hands it to notify-svc with [`send`],
//! whose idempotency key (the outbox entry's) makes a redelivery harmless.
//! Every service that sends email shares this, so the wire shape of an owed
//! email is defined once.

use std::collections::HashMap;

use proto::notify::v1::{self as notify, notify_service_client::NotifyServiceClient};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::{
    auth::InternalToken,
    client::TracedChannel,
    outbox::{self, Entry},
};

/// The outbox topic of owed emails.
pub const TOPIC: &str = "notify.enqueue";

/// An email to send, as stored in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Email {
    /// The notify template's name, e.g. `TEMPLATE_REACTIVATION_LINK`.
    pub template: String,
    pub recipient: String,
    pub variables: HashMap<String, String>,
}

impl outbox::Payload for Email {
    const WHAT: &'static str = "email";
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
pub async fn owe(connection: &mut PgConnection, key: &str, email: &Email) -> anyhow::Result<()> {
    outbox::owe(connection, TOPIC, key, email).await?;
    Ok(())
}

/// Hands an owed email (an outbox entry of [`TOPIC`]) to notify-svc.
pub async fn send(
    notify: &NotifyServiceClient<TracedChannel>,
    internal: &InternalToken,
    entry: &Entry,
) -> anyhow::Result<()> {
    let email: Email = serde_json::from_value(entry.payload.clone())?;
    let template = notify::Template::from_str_name(&email.template)
        .ok_or_else(|| anyhow::anyhow!("unknown template {}", email.template))?;
    let mut request = tonic::Request::new(notify::EnqueueRequest {
        template: template.into(),
        recipient: email.recipient,
        variables: email.variables,
        idempotency_key: entry.idempotency_key.clone(),
    });
    internal.attach(&mut request);
    outbox::delivered(notify.clone().enqueue(request).await)
}
