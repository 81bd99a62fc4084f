//! Logs and traces: `tracing` everywhere, exported as OpenTelemetry spans.
//!
//! A tracer provider is always installed, so every request has a W3C trace id
//! (recorded in audit events) even when nothing is exported; spans leave over
//! OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Trace context crosses
//! process boundaries in `traceparent` headers: [`inject_trace_context`] is the
//! gRPC client side, [`server_span`] the server side of both gRPC and HTTP.

use std::sync::OnceLock;

use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracerProvider, SpanExporter},
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Keeps the tracer provider alive; dropping it flushes pending spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // The SDK's shutdown blocks on the exporter; never do that on a
        // runtime worker thread.
        let provider = self.provider.clone();
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the global subscriber for a service process. Log lines are JSON
/// when `LOG_FORMAT=json`; the level comes from `RUST_LOG` (default `info`).
pub fn init(service_name: &str) -> anyhow::Result<Telemetry> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    if crate::config::optional("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        // The exporter reads the endpoint, headers and timeout from the
        // standard OTEL_EXPORTER_OTLP_* variables itself.
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(install(service_name, builder.build()))
}

/// Installs the global subscriber with spans handed to `exporter` as soon as
/// they end: for tests that assert on spans. Only the first call in a process
/// installs anything.
pub fn init_with_exporter<E: SpanExporter + 'static>(service_name: &str, exporter: E) -> Telemetry {
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(service_name))
        .with_simple_exporter(exporter)
        .build();
    install(service_name, provider)
}

fn resource(service_name: &str) -> Resource {
    Resource::builder().with_service_name(service_name.to_owned()).build()
}

fn install(service_name: &str, provider: SdkTracerProvider) -> Telemetry {
    INSTALLED.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let tracer = provider.tracer(service_name.to_owned());
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let otel = tracing_opentelemetry::layer().with_tracer(tracer);
        let json = crate::config::optional("LOG_FORMAT").as_deref() == Some("json");
        let registry = tracing_subscriber::registry().with(filter).with(otel);
        let result = if json {
            registry
                .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
                .try_init()
        } else {
            let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry
                .with(tracing_subscriber::fmt::layer().with_ansi(colour))
                .try_init()
        };
        if let Err(err) = result {
            eprintln!("a tracing subscriber was already installed: {err}");
        }
    });
    Telemetry { provider }
}

/// The W3C trace id (32 hex digits) of the current span, for audit records.
pub fn current_trace_id() -> Option<String> {
    let context = Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// The current span's context as a W3C `traceparent` value, to be stored
/// with work that another task will do later (the outbox), so that work
/// continues the same trace.
pub fn current_traceparent() -> Option<String> {
    let context = Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// A span continuing the trace of a stored `traceparent`.
pub fn span_continuing(name: &'static str, traceparent: Option<&str>) -> Span {
    let span = tracing::info_span!("work", otel.name = name);
    continue_trace(&span, traceparent);
    span
}

/// Makes `span` part of the trace a stored `traceparent` names, so work done
/// later (a queued email's delivery) shows up in the request that caused it.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
        // Fails only when the span is disabled by the filter: nothing to attach.
        let _ = span.set_parent(parent);
    }
}

/// gRPC client interceptor: writes the current span's context into the
/// request's `traceparent` metadata so the callee continues the same trace.
pub fn inject_trace_context(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let context = Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
    });
    Ok(request)
}

/// The server span of one incoming request (gRPC or HTTP), continuing the
/// caller's trace when the request carries a `traceparent` header.
pub fn server_span<B>(request: &http::Request<B>) -> Span {
    server_span_of(request.method(), request.uri().path(), request.headers())
}

/// [`server_span`] from the parts of a request, for a handler that opens
/// its span itself.
pub fn server_span_of(method: &http::Method, path: &str, headers: &http::HeaderMap) -> Span {
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {path}"),
        otel.kind = "server",
        request_id = %request_id,
    );
    // Fails only when the span is disabled by the filter: nothing to attach.
    let _ = span.set_parent(parent);
    span
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
