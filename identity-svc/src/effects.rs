//! Effects identity-svc owes other services, delivered through the outbox: the
//! relay hands each entry here, and its topic says who receives it.

use platform::{
    auth::InternalToken,
    client::TracedChannel,
    mail,
    outbox::{Deliver, Entry},
};
use proto::notify::v1::notify_service_client::NotifyServiceClient;

/// Delivers identity-svc's outbox entries.
#[derive(Clone, Debug)]
pub struct Effects {
    pub notify: NotifyServiceClient<TracedChannel>,
    pub internal: InternalToken,
}

impl Deliver for Effects {
    async fn deliver(&self, entry: &Entry) -> anyhow::Result<()> {
        match entry.topic.as_str() {
            mail::TOPIC => mail::send(&self.notify, &self.internal, entry).await,
            other => anyhow::bail!("identity-svc has no delivery for outbox topic {other}"),
        }
    }
}
