//! Logs and traces: `tracing` everywhere, exported as OpenTelemetry spans.
//!
//! A tracer provider is always installed, so every request has a W3C trace id
//! (recorded in audit events) even when nothing is exported; spans leave over
//! OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Trace context crosses
//! process boundaries in `traceparent` headers: [`inject_trace_context`] is the
//! gRPC client side, [`server_span`] the server side of both gRPC and HTTP.
//!
//! Logs and spans are filtered apart: `RUST_LOG` sets what is logged, and
//! spans at INFO and above always reach the tracer, whose sampler the
//! standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` set. An
//! operator who quiets the logs keeps every trace. JSON log lines carry the
//! `trace_id` and `span_id` of the span they were logged in, so a log line
//! leads to its trace.

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
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer as _,
    filter::Targets,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

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

/// The installed dispatcher, so a log line being formatted can ask the
/// OpenTelemetry layer for its span's ids (inside an event, the dispatcher
/// is not reachable as the current default).
static DISPATCH: OnceLock<tracing::dispatcher::WeakDispatch> = OnceLock::new();

/// Installs the global subscriber for a service process. Log lines are JSON
/// when `LOG_FORMAT=json`; what is logged comes from `RUST_LOG` (default
/// `info`) and changes nothing about what is traced.
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
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(Targets::new().with_default(Level::INFO));
        let logs = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let json = crate::config::optional("LOG_FORMAT").as_deref() == Some("json");
        let registry = tracing_subscriber::registry().with(spans);
        let result = if json {
            let format = tracing_subscriber::fmt::format().json().flatten_event(true);
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .event_format(WithTraceIds(format))
                        .with_filter(logs),
                )
                .try_init()
        } else {
            let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry
                .with(tracing_subscriber::fmt::layer().with_ansi(colour).with_filter(logs))
                .try_init()
        };
        match result {
            Ok(()) => {
                DISPATCH.get_or_init(|| tracing::dispatcher::get_default(tracing::Dispatch::downgrade));
            }
            Err(err) => eprintln!("a tracing subscriber was already installed: {err}"),
        }
    });
    Telemetry { provider }
}

/// A JSON event format that opens each line with the `trace_id` and
/// `span_id` of the span the event happened in, when there is one.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let ids = ctx.current_span().id().and_then(|id| {
            let dispatch = DISPATCH.get()?.upgrade()?;
            let context = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
            let span = context.span();
            let span_context = span.span_context();
            span_context
                .is_valid()
                .then(|| (span_context.trace_id(), span_context.span_id()))
        });
        match (ids, line.strip_prefix('{')) {
            (Some((trace_id, span_id)), Some(rest)) => {
                write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}")
            }
            _ => writer.write_str(&line),
        }
    }
}

/// Logs a gRPC call that did not end OK at the level its outcome deserves.
/// A refusal the caller can act on — a wrong password, an unknown key, a
/// limit — is normal operation: INFO. A failure of this server or of what
/// it depends on is what an operator must see: ERROR.
pub fn log_grpc_failure(failure: tower_http::classify::GrpcFailureClass, latency: std::time::Duration, span: &Span) {
    use tonic::Code;
    let latency_ms = latency.as_millis() as u64;
    span.in_scope(|| match failure {
        tower_http::classify::GrpcFailureClass::Status(status) => match Code::from_i32(status.code_raw()) {
            code @ (Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss) => tracing::error!(?code, latency_ms, "call failed"),
            code => tracing::info!(?code, latency_ms, "call refused"),
        },
        failure => tracing::error!(%failure, latency_ms, "call failed"),
    });
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
