//! The notify use cases: enqueue a message, look one up.
//!
//! Enqueue renders the template at once, so a call with bad variables is
//! refused while the caller is still there to hear it, then stores the
//! rendered message and answers; delivery happens later, in the worker
//! ([`crate::delivery`]), which is woken so it does not wait for its next
//! poll.

use std::{collections::BTreeMap, sync::Arc};

use platform::clock::Clock;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    db,
    domain::{Email, IdempotencyKey, Message, Template},
    error::Error,
    templates::Renderer,
};

/// A request to send a message, parsed at the edge. Its `Debug` names the
/// variables but leaves out their values (one-time links, license keys).
#[derive(Clone)]
pub struct Enqueue {
    pub template: Template,
    pub recipient: Email,
    pub variables: BTreeMap<String, String>,
    pub idempotency_key: IdempotencyKey,
}

impl std::fmt::Debug for Enqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueue")
            .field("template", &self.template)
            .field("recipient", &self.recipient.as_str())
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .field("idempotency_key", &self.idempotency_key.as_str())
            .finish()
    }
}

/// The answer to an [`Enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub message_id: Uuid,
    /// The key had been seen: nothing new was stored.
    pub duplicate: bool,
}

#[derive(Clone, Debug)]
pub struct Messages {
    pub(crate) pool: PgPool,
    pub(crate) renderer: Renderer,
    pub(crate) clock: Clock,
    /// Wakes this replica's delivery worker after a new message is stored.
    pub(crate) wake: Arc<Notify>,
}

impl Messages {
    pub async fn enqueue(&self, request: Enqueue) -> Result<Enqueued, Error> {
        let Enqueue {
            template,
            recipient,
            variables,
            idempotency_key,
        } = request;
        let rendered = self.renderer.render(template, &variables)?;
        // Only what the template uses is kept, and only until delivery.
        let kept: serde_json::Map<String, serde_json::Value> = template
            .variables()
            .iter()
            .filter_map(|variable| {
                let value = variables.get(variable.name)?;
                Some((variable.name.to_owned(), value.clone().into()))
            })
            .collect();
        let message = db::messages::NewMessage {
            id: Uuid::now_v7(),
            idempotency_key: &idempotency_key,
            template,
            recipient: &recipient,
            rendered: &rendered,
            variables: kept.into(),
            now: self.clock.now(),
        };
        let mut connection = self.pool.acquire().await?;
        if let Some(message_id) = db::messages::insert(&mut connection, &message).await? {
            tracing::info!(%message_id, template = template.as_str(), "message enqueued");
            self.wake.notify_waiters();
            return Ok(Enqueued {
                message_id,
                duplicate: false,
            });
        }
        let message_id = db::messages::find_id_by_idempotency_key(&mut connection, &idempotency_key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the idempotency key conflicted, yet no message holds it"))?;
        tracing::info!(%message_id, template = template.as_str(), "duplicate enqueue; nothing stored");
        Ok(Enqueued {
            message_id,
            duplicate: true,
        })
    }

    /// Forgets every message to `recipient` but the one whose idempotency key
    /// is `keep`; queued ones are never sent. Returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn erase_recipient(&self, recipient: &str, keep: &str) -> Result<u64, Error> {
        let erased = db::messages::delete_to(&self.pool, recipient, keep).await?;
        tracing::info!(erased, "messages to an erased customer forgotten");
        Ok(erased)
    }

    pub async fn get(&self, id: Uuid) -> Result<Message, Error> {
        db::messages::find(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or(Error::MessageNotFound)
    }
}
