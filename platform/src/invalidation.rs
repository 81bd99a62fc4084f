//! Telling every replica at once that something it may hold in memory has
//! changed, over Redis pub/sub.
//!
//! The service that owns some data publishes the id of each item it changed,
//! after the change has committed, on a channel under the Redis key prefix
//! ([`Publisher`]); a process that caches that data listens and drops the
//! item ([`listen`]). Pub/sub delivers only to the listeners connected at
//! that moment and keeps nothing for the others, so a [`Listener`] is told
//! whenever its subscription is lost — from then on its cache must not be
//! trusted — and whenever it is live again, when the cache must be emptied
//! before it is trusted again, since whatever was published in between is
//! gone. A subscription that stops answering pings counts as lost, so a
//! silently dead connection is noticed within about two ping intervals.

use std::{sync::Arc, time::Duration};

use redis::aio::PubSub;
use tokio_stream::StreamExt as _;

use crate::{config::Secret, kv::Kv, shutdown::Shutdown};

/// How often a live subscription is pinged, and how long a ping may take.
const PING_EVERY: Duration = Duration::from_secs(1);
/// How long connecting and subscribing may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an announcement may take: the change it follows has committed
/// and its caller is waiting, so an unreachable Redis must not hold it up.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The channel on which changes to `topic` are announced, under `prefix`.
pub fn channel(prefix: &str, topic: &str) -> String {
    format!("{prefix}changed:{topic}")
}

/// Announces changes of one kind of item to every listener.
#[derive(Clone)]
pub struct Publisher {
    kv: Kv,
    channel: Arc<str>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(kv: &Kv, topic: &str) -> Self {
        Self {
            kv: kv.clone(),
            channel: Arc::from(channel(kv.prefix(), topic)),
        }
    }

    /// Announces that `item` changed. Call it after the change commits. A
    /// failure is logged, not returned: the change itself has happened, and
    /// listeners bound how long they trust what they hold.
    pub async fn changed(&self, item: &str) {
        // A repeated announcement only makes listeners drop the item twice.
        let publish = self.kv.retry_once(|mut connection| {
            let mut command = redis::cmd("PUBLISH");
            command.arg(&*self.channel).arg(item);
            async move { command.query_async::<i64>(&mut connection).await }
        });
        let error = match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(Ok(_)) => return,
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer in {PUBLISH_TIMEOUT:?}"),
        };
        tracing::warn!(
            error,
            channel = %self.channel,
            item,
            "could not announce a change; caches elsewhere may answer from before it until their entries age out"
        );
    }
}

/// What a cache does as its subscription comes and goes.
pub trait Listener: Send + Sync + 'static {
    /// The subscription is live: every change announced from now on will
    /// arrive. Anything held from before must be dropped first.
    fn subscribed(&self);
    /// The subscription is lost: changes may be missed until [`Listener::subscribed`].
    fn unsubscribed(&self);
    /// `item` changed.
    fn changed(&self, item: &str);
}

/// A live subscription to one channel.
pub struct Subscription {
    client: redis::Client,
    channel: String,
    pubsub: PubSub,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

async fn subscribe_with(client: &redis::Client, channel: &str) -> anyhow::Result<PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        anyhow::Ok(pubsub)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow::anyhow!("subscribing took longer than {CONNECT_TIMEOUT:?}"))?
}

/// Connects to Redis at `url` and subscribes to the changes of `topic`.
/// Fails when Redis cannot be reached now; [`listen`] then keeps it alive.
pub async fn subscribe(url: &Secret<String>, prefix: &str, topic: &str) -> anyhow::Result<Subscription> {
    let client = redis::Client::open(url.expose().as_str())?;
    let channel = channel(prefix, topic);
    let pubsub = subscribe_with(&client, &channel).await?;
    Ok(Subscription {
        client,
        channel,
        pubsub,
    })
}

/// Why a live subscription ended.
enum End {
    Lost(String),
    Shutdown,
}

/// Hands every change announced on `subscription` to `listener` until
/// `shutdown`, reconnecting (with backoff) whenever the subscription is
/// lost. `listener` is told `subscribed` at once, for the live subscription
/// it is given.
pub async fn listen(subscription: Subscription, listener: impl Listener, shutdown: Shutdown) {
    let Subscription {
        client,
        channel,
        pubsub,
    } = subscription;
    let mut live = Some(pubsub);
    let mut retry = RETRY_MIN;
    loop {
        if let Some(pubsub) = live.take() {
            retry = RETRY_MIN;
            listener.subscribed();
            let end = relay(pubsub, &listener, &shutdown).await;
            listener.unsubscribed();
            match end {
                End::Shutdown => return,
                End::Lost(why) => tracing::warn!(%channel, why, "change subscription lost; reconnecting"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = shutdown.wait() => return,
        }
        match subscribe_with(&client, &channel).await {
            Ok(pubsub) => {
                tracing::info!(%channel, "change subscription restored");
                live = Some(pubsub);
            }
            Err(err) => {
                tracing::warn!(%channel, error = %err, "cannot subscribe to changes; retrying");
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

async fn relay(pubsub: PubSub, listener: &impl Listener, shutdown: &Shutdown) -> End {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => match message.get_payload::<String>() {
                    Ok(item) => listener.changed(&item),
                    // Not something a publisher of ours sends: whatever it
                    // meant, it cannot be applied, so nothing held is safe.
                    Err(err) => return End::Lost(format!("unreadable message: {err}")),
                },
                None => return End::Lost("connection closed".into()),
            },
            _ = ping.tick() => {
                match tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return End::Lost(format!("ping failed: {err}")),
                    Err(_) => return End::Lost("no answer to ping".into()),
                }
            }
            () = shutdown.wait() => return End::Shutdown,
        }
    }
}
