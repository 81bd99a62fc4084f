//! Running a gRPC server the way every service of the mesh runs it.
//!
//! Each server answers `grpc.health.v1` (its stores' reachability too, see
//! [`crate::health`]) and server reflection (v1 and v1alpha) beside its own
//! services, opens one span per call that continues
//! the caller's trace, and shuts down in order: on the shutdown signal it
//! reports NOT_SERVING, waits `drain_delay` so load balancers stop routing to
//! it, stops accepting, and lets in-flight calls finish before returning.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tower_http::trace::TraceLayer;

use crate::{health::Stores, shutdown::Shutdown, telemetry};

/// Serves `routes` on `listener` until `shutdown` triggers and in-flight
/// calls have drained. `service_names` are the fully-qualified names of the
/// services in `routes`, reported SERVING by the health service, which also
/// reports whether `stores` are reachable.
pub async fn serve_grpc(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    stores: Stores,
    shutdown: Shutdown,
    drain_delay: Duration,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health.set_service_status(*name, ServingStatus::Serving).await;
    }
    tokio::spawn(stores.watch(health.clone(), shutdown.clone()));
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let names: Vec<String> = service_names.iter().map(|name| (*name).to_owned()).collect();
    let signal = async move {
        shutdown.wait().await;
        health.set_service_status("", ServingStatus::NotServing).await;
        for name in names {
            health.set_service_status(name, ServingStatus::NotServing).await;
        }
        tokio::time::sleep(drain_delay).await;
        tracing::info!("no longer accepting calls; draining in-flight calls");
    };

    let address = listener.local_addr()?;
    tracing::info!(%address, "gRPC server listening");
    tonic::transport::Server::builder()
        .layer(crate::metrics::RpcMetricsLayer)
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(telemetry::server_span)
                .on_failure(telemetry::log_grpc_failure),
        )
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
        .await?;
    tracing::info!(%address, "gRPC server stopped");
    Ok(())
}
