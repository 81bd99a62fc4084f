//! Waiting for an outcome instead of for a time: effects cross services and
//! queues asynchronously, so a test polls until what it expects holds (or
//! until a generous deadline says it never will).

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// How long an outcome may take before the test fails: far above what any
/// effect needs here, so only a real failure reaches it.
const PATIENCE: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` until it holds; panics naming `what` if it never does.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_some(what, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await;
}

/// Polls `check` until it yields a value, and returns it.
pub async fn eventually_some<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(INTERVAL).await;
    }
}
