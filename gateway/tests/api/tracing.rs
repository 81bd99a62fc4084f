//! One REST request is one trace across the gateway and the services it
//! calls; a key validation answered from the gateway's memory calls none
//! and opens no span.

use opentelemetry::trace::{SpanId, TraceId};
use reqwest::StatusCode;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, eventually, spawn_mesh};

#[tokio::test]
async fn a_request_through_the_gateway_is_one_trace_in_both_processes() {
    let mesh = spawn_mesh().await;
    mesh.register("ada@example.com").await;
    let collector = platform::testing::spans();
    // Continue a trace the web client started.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = mesh
        .http
        .post(mesh.url("/login"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({ "email": "ada@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let expected = TraceId::from_hex(trace_id).unwrap();
    let in_trace: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|span| span.span_context.trace_id() == expected)
        .collect();
    let gateway = in_trace
        .iter()
        .find(|span| span.name == "POST /login")
        .unwrap_or_else(|| {
            panic!(
                "no gateway span in {:?}",
                in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    let identity = in_trace
        .iter()
        .find(|span| span.name == "POST /reactivation.identity.v1.IdentityService/Login")
        .expect("an identity-svc server span in the same trace");
    assert_eq!(gateway.parent_span_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
    assert!(gateway.parent_span_is_remote);
    // identity-svc's span continues from a remote parent (the gateway),
    // learned from the traceparent metadata, not from shared memory.
    assert!(identity.parent_span_is_remote);
    assert_ne!(identity.parent_span_id, SpanId::INVALID);
    let gateway_span_ids: Vec<SpanId> = in_trace.iter().map(|span| span.span_context.span_id()).collect();
    assert!(gateway_span_ids.contains(&identity.parent_span_id));
}

#[tokio::test]
async fn an_emailed_link_is_sent_in_the_trace_of_the_request_that_asked_for_it() {
    let mesh = spawn_mesh().await;
    mesh.register_and_leave("ada@example.com").await;
    let collector = platform::testing::spans();
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let response = mesh
        .http
        .post(mesh.url("/reactivate_user"))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .json(&serde_json::json!({ "email": "ada@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    mesh.wait_for_token(1).await;

    // Gateway → identity-svc → (answer) → outbox relay → notify-svc →
    // its delivery worker: one trace, across a queue and two databases.
    let expected = TraceId::from_hex(trace_id).unwrap();
    let mut names = Vec::new();
    for _ in 0..100 {
        names = collector
            .spans()
            .into_iter()
            .filter(|span| span.span_context.trace_id() == expected)
            .map(|span| span.name.to_string())
            .collect();
        if names.iter().any(|name| name == "deliver") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for expected_name in [
        "POST /reactivate_user",
        "POST /reactivation.identity.v1.IdentityService/RequestReactivation",
        "outbox.deliver notify.enqueue",
        "POST /reactivation.notify.v1.NotifyService/Enqueue",
        "deliver",
    ] {
        assert!(
            names.iter().any(|name| name == expected_name),
            "no {expected_name:?} in {names:?}"
        );
    }
}

#[tokio::test]
async fn a_validation_that_calls_license_svc_is_one_trace_and_a_cached_one_opens_no_span() {
    let mesh = spawn_mesh().await;
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let created = mesh
        .post(
            "/api/keys",
            Some(&admin),
            serde_json::json!({ "email": "customer@example.com", "keyType": "production" }),
        )
        .await;
    let key = created.json::<serde_json::Value>().await.unwrap()["data"]["key"].clone();
    let collector = platform::testing::spans();
    let validate = |trace_id: &'static str| {
        mesh.http
            .post(mesh.url("/api/keys/validate"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .json(&serde_json::json!({ "key": key }))
            .send()
    };
    let cache_status = |response: &reqwest::Response| response.headers()["cache-status"].to_str().unwrap().to_owned();
    let in_trace = |trace_id: &str| {
        let expected = TraceId::from_hex(trace_id).unwrap();
        collector
            .spans()
            .into_iter()
            .filter(move |span| span.span_context.trace_id() == expected)
    };

    let missed = "5bf92f3577b34da6a3ce929d0e0e4736";
    let response = validate(missed).await.unwrap();
    assert!(cache_status(&response).starts_with("gateway; fwd=miss"));
    let license_span = "POST /reactivation.license.v1.LicenseService/ValidateKey";
    eventually("a license-svc span in the trace", || async {
        in_trace(missed).any(|span| span.name == license_span)
    })
    .await;
    let spans: Vec<_> = in_trace(missed).collect();
    let gateway = spans
        .iter()
        .find(|span| span.name == "POST /api/keys/validate")
        .expect("a gateway span in the caller's trace");
    assert_eq!(gateway.parent_span_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
    let license = spans.iter().find(|span| span.name == license_span).unwrap();
    assert_eq!(license.parent_span_id, gateway.span_context.span_id());

    // The answer may not have been kept if the key's creation was announced
    // meanwhile: ask until it is.
    let untraced = || mesh.post("/api/keys/validate", None, serde_json::json!({ "key": key }));
    eventually("an answer from the cache", || async {
        cache_status(&untraced().await) == "gateway; hit"
    })
    .await;
    let hit = "6bf92f3577b34da6a3ce929d0e0e4736";
    let response = validate(hit).await.unwrap();
    assert_eq!(cache_status(&response), "gateway; hit");
    // A span of the hit would have ended before its answer did, so before
    // the spans of a later call that does reach license-svc.
    let later = "7bf92f3577b34da6a3ce929d0e0e4736";
    let response = mesh
        .http
        .post(mesh.url("/api/keys/validate"))
        .header("traceparent", format!("00-{later}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({ "key": "SK-AAAA-BBBB-CCCC-DDDD" }))
        .send()
        .await
        .unwrap();
    assert!(cache_status(&response).starts_with("gateway; fwd=miss"));
    eventually("the later call's spans", || async {
        in_trace(later).any(|span| span.name == "POST /api/keys/validate")
    })
    .await;
    assert_eq!(in_trace(hit).count(), 0, "an answer from memory costs no span");
}

#[tokio::test]
async fn a_span_is_named_by_its_route_never_by_a_key_or_an_email_in_the_path() {
    let mesh = spawn_mesh().await;
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let collector = platform::testing::spans();
    let cases = [
        (
            "5bf92f3577b34da6a3ce929d0e0e4737",
            "/api/keys/SK-ABCD-EFGH-JKLM-NPQR",
            "GET /api/keys/{key}",
            "SK-ABCD",
        ),
        (
            "6cf92f3577b34da6a3ce929d0e0e4738",
            "/admin/keys/SK-ABCD-EFGH-JKLM-NPQR",
            "GET /admin/keys/{key}",
            "SK-ABCD",
        ),
        (
            "7df92f3577b34da6a3ce929d0e0e4739",
            "/admin/users/ada%40example.com",
            "GET /admin/users/{email}",
            "ada",
        ),
    ];
    for (trace_id, path, route, secret) in cases {
        let response = mesh
            .http
            .get(mesh.url(path))
            .bearer_auth(&admin)
            .header("cookie", format!("access={admin}"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let expected = TraceId::from_hex(trace_id).unwrap();
        let names: Vec<String> = collector
            .spans()
            .into_iter()
            .filter(|span| span.span_context.trace_id() == expected)
            .map(|span| span.name.to_string())
            .collect();
        assert!(names.iter().any(|name| name == route), "{path}: {names:?}");
        assert!(!names.iter().any(|name| name.contains(secret)), "{path}: {names:?}");
    }
}
