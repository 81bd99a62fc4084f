//! The gateway protecting itself and the limits behind it: body and header
//! caps, load shedding, a request's deadline, the header-read timeout, the
//! connection cap, and client addresses that a forged `X-Forwarded-For`
//! cannot change.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{problem, spawn_mesh_with};

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused_before_any_work() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let padding = "x".repeat(100 * 1024);
    let response = mesh
        .post(
            "/login",
            None,
            json!({ "email": "ada@example.com", "password": padding }),
        )
        .await;
    let refused = problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(refused["reason"], "MALFORMED_BODY");

    // The webhook takes Stripe-sized events (up to 1 MiB): a 100 KiB body
    // gets as far as the signature check.
    let response = mesh
        .http
        .post(mesh.url("/api/stripe/webhook"))
        .header("content-type", "application/json")
        .header("stripe-signature", "t=1,v1=00")
        .body(format!("{{\"pad\":\"{padding}\"}}"))
        .send()
        .await
        .unwrap();
    let refused = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["reason"], "WEBHOOK_SIGNATURE_INVALID");

    // 100,000 empty signatures do not fit in a request head.
    let response = mesh
        .http
        .post(mesh.url("/api/stripe/webhook"))
        .header("stripe-signature", format!("t=1{}", ",v1=".repeat(100_000)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // And the gateway is still there.
    assert_eq!(mesh.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_shed_with_retry_after() {
    let mesh = spawn_mesh_with(
        |_| {},
        |gateway| {
            gateway.limits.max_in_flight = 1;
            gateway.limits.request_timeout = std::time::Duration::from_secs(30);
        },
    )
    .await;
    // Logins take an argon2 check each: several at once overlap.
    let logins = (0..6).map(|n| {
        mesh.post(
            "/login",
            None,
            json!({ "email": format!("u{n}@example.com"), "password": "correct horse battery" }),
        )
    });
    let responses = futures::future::join_all(logins).await;
    let shed: Vec<_> = responses
        .into_iter()
        .filter(|response| response.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!shed.is_empty(), "six logins at once with room for one");
    for response in shed {
        assert_eq!(response.headers()["retry-after"], "1");
        let refused = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(refused["reason"], "OVERLOADED");
    }
}

#[tokio::test]
async fn a_forged_forwarded_for_neither_dodges_a_limit_nor_makes_new_keys() {
    let mesh = spawn_mesh_with(
        |identity| identity.reactivation.max_per_client_per_hour = 3,
        |gateway| gateway.trusted_proxies = "1".parse().unwrap(),
    )
    .await;
    // The test plays the one trusted proxy, appending the client it saw;
    // the client writes whatever it likes to the left.
    let request = |n: usize| {
        mesh.http
            .post(mesh.url("/reactivate_user"))
            .header("x-forwarded-for", format!("10.{n}.0.1, 2001:db8::{n}, 198.51.100.7"))
            .json(&json!({ "email": format!("u{n}@example.com") }))
            .send()
    };
    for n in 0..3 {
        assert_eq!(request(n).await.unwrap().status(), StatusCode::ACCEPTED);
    }
    let refused = request(3).await.unwrap();
    problem(refused, StatusCode::TOO_MANY_REQUESTS).await;

    let client_keys: Vec<String> = mesh
        .keys
        .entries()
        .await
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.contains(":limit:reactivation-client:"))
        .collect();
    assert_eq!(client_keys.len(), 1, "{client_keys:?}");
    assert!(client_keys[0].contains(":198.51.100.7:"), "{client_keys:?}");

    // Another client of the same proxy has a bucket of its own.
    let other = mesh
        .http
        .post(mesh.url("/reactivate_user"))
        .header("x-forwarded-for", "198.51.100.8")
        .json(&json!({ "email": "u9@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_malformed_query_string_is_problem_json_and_a_link_cut_short_is_a_page() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    // A person's browser: the page offers to send a new link.
    let page = mesh.get("/reactivate", None).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("This link is incomplete"));
    let admin = mesh
        .token(crate::helpers::ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD)
        .await;
    let refused = problem(
        mesh.get("/api/keys?pageSize=many", Some(&admin)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["reason"], "MALFORMED_QUERY");
}

/// The gateway's address, for raw connections.
fn address(mesh: &crate::helpers::TestMesh) -> String {
    mesh.base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_request_past_its_deadline_is_abandoned_with_503_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mesh = spawn_mesh_with(
        |_| {},
        |gateway| gateway.limits.request_timeout = std::time::Duration::from_millis(300),
    )
    .await;
    // A client trickling its body: the handler waits for it past the deadline.
    let mut stream = tokio::net::TcpStream::connect(address(&mesh)).await.unwrap();
    let body = r#"{"email":"slow@example.com","password":"correct horse battery"}"#;
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let writer = tokio::spawn(async move {
        for byte in body.bytes() {
            if stream.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        stream
    });
    let mut stream = writer.await.unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"reason\":\"TIMEOUT\""), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(mesh.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_let_go() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mesh = spawn_mesh_with(
        |_| {},
        |gateway| gateway.limits.header_read_timeout = std::time::Duration::from_millis(300),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(address(&mesh)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was still open after 5 s");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "closed before the header timeout: {:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "no answer to half a request"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    use tokio::io::AsyncWriteExt as _;
    let mesh = spawn_mesh_with(
        |_| {},
        |gateway| {
            gateway.limits.max_connections = 2;
            gateway.limits.header_read_timeout = std::time::Duration::from_secs(30);
        },
    )
    .await;
    // Two connections that started a request and say no more hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(address(&mesh)).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    let waiting = tokio::spawn({
        let url = mesh.url("/healthz");
        async move { reqwest::get(url).await.map(|response| response.status()) }
    });
    // Proving it is NOT served needs a wait: nothing positive to poll for.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two held the cap"
    );
    // One lets go: the waiting request is served.
    drop(held.pop());
    let status = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot was free")
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}
