//! gRPC clients of other services, all built the same way: lazily connected
//! (a caller starts even if the callee is not up yet, and reconnects by
//! itself), a deadline on every call, and the trace context injected so one
//! request stays one trace across the mesh.

use std::time::Duration;

use tonic::{
    Request, Status,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

/// A channel whose calls carry the current trace context.
pub type TracedChannel = InterceptedService<Channel, fn(Request<()>) -> Result<Request<()>, Status>>;

/// A lazily connected channel to `url`, with `timeout` on every call.
pub fn channel(url: &str, timeout: Duration) -> anyhow::Result<TracedChannel> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(InterceptedService::new(
        channel,
        crate::telemetry::inject_trace_context as fn(Request<()>) -> Result<Request<()>, Status>,
    ))
}
