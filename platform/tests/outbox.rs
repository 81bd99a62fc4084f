//! The outbox relay against real Postgres: delivered once, retried until the
//! receiver is back, parked when rejected, never delivered twice at once.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use platform::{
    outbox::{self, Deliver, Entry, Rejected, Relay, Waker},
    shutdown::Shutdown,
    testing::{TestDatabase, eventually, eventually_some},
};
use serde_json::json;
use sqlx::PgPool;

/// A receiver that records what it got and can be told to fail.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<Mode>>,
}

#[derive(Clone, Copy, Default, PartialEq)]
enum Mode {
    #[default]
    Up,
    Down,
    Rejecting,
}

impl Deliver for Receiver {
    async fn deliver(&self, entry: &Entry) -> anyhow::Result<()> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Down => anyhow::bail!("receiver unavailable"),
            Mode::Rejecting => Err(Rejected("malformed".into()).into()),
            Mode::Up => {
                // Slow enough that a second relay would overlap if it could.
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.received.lock().unwrap().push(entry.idempotency_key.clone());
                Ok(())
            }
        }
    }
}

impl Receiver {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

async fn enqueue(pool: &PgPool, key: &str) {
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        "test.topic",
        key,
        json!({ "secret": "https://example.com/?token=abc" }),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

fn start(pool: &PgPool, receiver: &Receiver, shutdown: &Shutdown) -> Waker {
    let waker = Waker::default();
    let relay = Relay::new(pool.clone(), receiver.clone(), waker.clone())
        .poll_interval(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(200));
    tokio::spawn(relay.run(shutdown.clone()));
    waker
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    eventually(what, || std::future::ready(done())).await;
}

#[tokio::test]
async fn an_entry_is_delivered_once_and_its_payload_cleared() {
    let database = TestDatabase::create(&outbox::SCHEMA).await;
    let pool = platform::db::connect(&database.url, 4).await.unwrap();
    let receiver = Receiver::default();
    let shutdown = Shutdown::new();
    start(&pool, &receiver, &shutdown).wake();
    enqueue(&pool, "a").await;
    enqueue(&pool, "a").await; // the same effect recorded twice
    wait_until("one delivery", || receiver.received().len() == 1).await;
    // Proving the duplicate is never delivered: nothing to poll for, so a
    // pause of several poll intervals for a second delivery to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received(), ["a"]);
    let (payload, delivered): (Option<serde_json::Value>, bool) =
        sqlx::query_as("SELECT payload, delivered_at IS NOT NULL FROM outbox WHERE idempotency_key = 'a'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(delivered);
    assert_eq!(payload, None, "a delivered payload (it may hold a link) is cleared");
    shutdown.trigger();
}

#[tokio::test]
async fn a_receiver_that_is_down_delays_the_entry_but_does_not_lose_it() {
    let database = TestDatabase::create(&outbox::SCHEMA).await;
    let pool = platform::db::connect(&database.url, 4).await.unwrap();
    let receiver = Receiver::default();
    receiver.set(Mode::Down);
    let shutdown = Shutdown::new();
    start(&pool, &receiver, &shutdown);
    enqueue(&pool, "b").await;
    let (attempts, error) = eventually_some("the entry retried", || async {
        let (attempts, error): (i32, Option<String>) =
            sqlx::query_as("SELECT attempts, last_error FROM outbox WHERE idempotency_key = 'b'")
                .fetch_one(&pool)
                .await
                .unwrap();
        (attempts >= 2).then_some((attempts, error))
    })
    .await;
    assert!(attempts >= 2, "retried, {attempts} attempts");
    assert_eq!(error.as_deref(), Some("receiver unavailable"));

    receiver.set(Mode::Up);
    wait_until("the entry delivered once the receiver is up", || {
        receiver.received() == ["b"]
    })
    .await;
    shutdown.trigger();
}

#[tokio::test]
async fn a_rejected_entry_is_parked_not_retried() {
    let database = TestDatabase::create(&outbox::SCHEMA).await;
    let pool = platform::db::connect(&database.url, 4).await.unwrap();
    let receiver = Receiver::default();
    receiver.set(Mode::Rejecting);
    let shutdown = Shutdown::new();
    start(&pool, &receiver, &shutdown);
    enqueue(&pool, "c").await;
    // Parked is final: a parked entry is never tried again, so its attempts
    // once parked are all it will ever have.
    let (attempts, parked, error) = eventually_some("the entry parked", || async {
        let (attempts, parked, error): (i32, bool, Option<String>) = sqlx::query_as(
            "SELECT attempts, next_attempt_at = 'infinity', last_error FROM outbox WHERE idempotency_key = 'c'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        parked.then_some((attempts, parked, error.unwrap_or_default()))
    })
    .await;
    assert_eq!(attempts, 1);
    assert!(parked);
    assert!(error.contains("malformed"));
    shutdown.trigger();
}

#[tokio::test]
async fn two_relays_never_deliver_the_same_entry_twice() {
    let database = TestDatabase::create(&outbox::SCHEMA).await;
    let pool = platform::db::connect(&database.url, 8).await.unwrap();
    let receiver = Receiver::default();
    let shutdown = Shutdown::new();
    for n in 0..40 {
        enqueue(&pool, &format!("k{n}")).await;
    }
    start(&pool, &receiver, &shutdown).wake();
    start(&pool, &receiver, &shutdown).wake();
    wait_until("forty deliveries", || receiver.received().len() >= 40).await;
    // Proving no entry is delivered twice: nothing to poll for, so a pause
    // of several poll intervals for a second delivery to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut received = receiver.received();
    received.sort();
    received.dedup();
    assert_eq!(received.len(), 40);
    assert_eq!(receiver.received().len(), 40, "no entry delivered twice");
    shutdown.trigger();
}
