//! Serving connections with limits a client cannot talk its way around.
//!
//! `axum::serve` accepts any number of connections and waits forever for a
//! request's headers. The gateway faces the internet, so here each
//! connection must send its headers within `header_read_timeout` (a client
//! trickling a byte a second is cut off), headers are capped at
//! `max_header_bytes` (431 beyond), and at most `max_connections` are open
//! at once — the next ones wait in the kernel's backlog rather than
//! exhausting file descriptors. On shutdown every connection finishes its
//! request in flight and closes.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt as _;

/// Limits on the connections themselves (those on requests are in
/// [`crate::protection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// Connections open at once.
    pub(crate) max_connections: usize,
    /// Longest wait for a request's headers.
    pub(crate) header_read_timeout: Duration,
    /// Largest request head (request line and headers).
    pub(crate) max_header_bytes: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// open connections finish what they are doing.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper refuses less than 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let max_connections = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (closing, closed) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause, not spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = tower::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|never| match never {})) }
        });
        let builder = builder.clone();
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(closing);
    // Every connection holds a slot until it has closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}
