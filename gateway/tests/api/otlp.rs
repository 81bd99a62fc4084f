//! Spans leave over OTLP to the collector the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` names — here a gRPC OTLP receiver inside
//! the test — whatever `RUST_LOG` says, and a JSON log line carries the ids
//! of the span it was logged in.
//!
//! Tracing is installed once per process, from the environment, so the mesh
//! runs in a child process: this test binary again, running only
//! [`a_reactivation_in_a_process_of_its_own`] with the settings under test.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_mesh;

/// The trace the reactivation request starts (its `traceparent`).
const REACTIVATION_TRACE: &str = "3a7bd3e2360a3d29eea436fcfb7e44c7";
/// The trace of a login refused for a wrong password.
const REFUSED_LOGIN_TRACE: &str = "6e0c63257de34c926f9efcd03919fb94";

/// The line the child prints once the flow is over.
const FLOW_DONE: &str = "-- the reactivation is done --";

/// An OTLP/gRPC trace collector: keeps every span it is sent.
#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// What the child process exported and logged.
struct Run {
    spans: Vec<Span>,
    log_lines: Vec<Value>,
}

impl Run {
    fn span_names_in(&self, trace: &str) -> Vec<String> {
        self.spans_in(trace).map(|span| span.name.clone()).collect()
    }

    fn spans_in(&self, trace: &str) -> impl Iterator<Item = &Span> {
        let trace = trace.to_owned();
        self.spans.iter().filter(move |span| hex(&span.trace_id) == trace)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs the reactivation in a child process with `RUST_LOG=rust_log`,
/// JSON logs and OTLP export to a collector started here.
async fn run_with(rust_log: &str) -> Run {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "otlp::a_reactivation_in_a_process_of_its_own",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("RUST_LOG", rust_log)
        .env("LOG_FORMAT", "json")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.abort();
    // What happens while the mesh is torn down (databases dropped under
    // running relays) is no part of the flow.
    let log_lines = stdout
        .lines()
        .take_while(|line| *line != FLOW_DONE)
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("level").is_some())
        .collect();
    let spans = collector.spans.lock().unwrap().clone();
    assert!(
        !spans.is_empty(),
        "the collector received nothing; the child logged:\n{stdout}"
    );
    Run { spans, log_lines }
}

// Several worker threads: the exporter's last flush, when the telemetry is
// dropped, needs a runtime thread that is not the one waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the tests of this module, in a process of its own with the settings they test"]
async fn a_reactivation_in_a_process_of_its_own() {
    let telemetry = platform::telemetry::init("mesh").unwrap();
    let mesh = spawn_mesh().await;
    mesh.register_and_leave("ada@example.com").await;
    let refused = mesh
        .http
        .post(mesh.url("/login"))
        .header("traceparent", format!("00-{REFUSED_LOGIN_TRACE}-00f067aa0ba902b7-01"))
        .json(&json!({ "email": "ada@example.com", "password": "not the password at all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let response = mesh
        .http
        .post(mesh.url("/reactivate_user"))
        .header("traceparent", format!("00-{REACTIVATION_TRACE}-b7ad6b7169203331-01"))
        .json(&json!({ "email": "ada@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    mesh.wait_for_token(1).await;
    // The delivery's span ends just after the mail server has the message;
    // nothing this process can observe marks that end (only the collector,
    // in the parent, sees the span), so a pause before the flush.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    println!("{FLOW_DONE}");
    drop(mesh);
    // Dropping the telemetry flushes the spans still batched.
    drop(telemetry);
}

/// The spans of gateway → identity-svc → outbox → notify-svc, all in the
/// trace the client started.
const REACTIVATION_SPANS: [&str; 5] = [
    "POST /reactivate_user",
    "POST /reactivation.identity.v1.IdentityService/RequestReactivation",
    "outbox.deliver notify.enqueue",
    "POST /reactivation.notify.v1.NotifyService/Enqueue",
    "deliver",
];

#[tokio::test]
async fn quieting_the_logs_keeps_every_span_of_a_reactivation() {
    let run = run_with("warn").await;
    let names = run.span_names_in(REACTIVATION_TRACE);
    for expected in REACTIVATION_SPANS {
        assert!(
            names.iter().any(|name| name == expected),
            "no {expected:?} in {names:?}"
        );
    }
    // The logs are quiet: nothing below WARN, and a wrong password — an
    // expected refusal — is no ERROR.
    for line in &run.log_lines {
        assert!(["WARN", "ERROR"].contains(&line["level"].as_str().unwrap()), "{line}");
        assert_ne!(line["level"], "ERROR", "{line}");
    }
}

#[tokio::test]
async fn a_json_log_line_carries_the_ids_of_the_span_it_was_logged_in() {
    let run = run_with("info").await;
    let names = run.span_names_in(REACTIVATION_TRACE);
    for expected in REACTIVATION_SPANS {
        assert!(
            names.iter().any(|name| name == expected),
            "no {expected:?} in {names:?}"
        );
    }
    let span_of = |line: &Value| {
        run.spans
            .iter()
            .find(|span| line["trace_id"] == hex(&span.trace_id) && line["span_id"] == hex(&span.span_id))
    };

    let enqueued = run
        .log_lines
        .iter()
        .find(|line| line["message"] == "message enqueued")
        .expect("notify-svc logs the enqueued message");
    assert_eq!(enqueued["trace_id"], REACTIVATION_TRACE, "{enqueued}");
    let span = span_of(enqueued).unwrap_or_else(|| panic!("no exported span matches {enqueued}"));
    assert_eq!(hex(&span.trace_id), REACTIVATION_TRACE);

    // The wrong password: logged at INFO by identity-svc, in its span.
    let refusal = run
        .log_lines
        .iter()
        .find(|line| line["trace_id"] == REFUSED_LOGIN_TRACE && line["message"] == "call refused")
        .unwrap_or_else(|| panic!("no refusal logged in {:#?}", run.log_lines));
    assert_eq!(refusal["level"], "INFO", "{refusal}");
    let span = span_of(refusal).unwrap_or_else(|| panic!("no exported span matches {refusal}"));
    assert_eq!(span.name, "POST /reactivation.identity.v1.IdentityService/Login");
    assert!(
        run.log_lines.iter().all(|line| line["level"] != "ERROR"),
        "nothing failed, yet: {:#?}",
        run.log_lines
    );
}
