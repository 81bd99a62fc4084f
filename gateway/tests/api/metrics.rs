//! Prometheus metrics on the admin port: request counters move with
//! traffic, and the outbox backlog rises while a receiver is down and falls
//! once it is back.

use platform::shutdown::Shutdown;
use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestMesh, eventually, spawn_mesh};

/// Serves this process's metrics on a port of its own, as `ADMIN_ADDR`
/// does in a deployment, and returns the `/metrics` URL.
async fn admin_port() -> String {
    let address = platform::metrics::start_admin("127.0.0.1:0".parse().unwrap(), Shutdown::new())
        .await
        .unwrap();
    format!("http://{address}/metrics")
}

async fn scrape(mesh: &TestMesh, url: &str) -> String {
    let response = mesh.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

/// The value of the series `name{labels}` in a scrape; 0 when absent.
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// The sum of every series of `family` in a scrape.
fn sum(scrape: &str, family: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| line.starts_with(&format!("{family}{{")))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn request_counters_move_with_traffic() {
    let mesh = spawn_mesh().await;
    let url = admin_port().await;
    mesh.register("ada@example.com").await;
    let refused_http = r#"http_server_requests_total{route="/login",method="POST",status="401"}"#;
    let refused_rpc =
        r#"rpc_server_requests_total{method="/reactivation.identity.v1.IdentityService/Login",code="Unauthenticated"}"#;
    let timed = r#"http_server_duration_seconds_count{route="/login",method="POST",status="401"}"#;
    let before = scrape(&mesh, &url).await;

    for _ in 0..3 {
        let response = mesh.login("ada@example.com", "not the password at all").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = mesh.login("ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);

    let after = scrape(&mesh, &url).await;
    assert_eq!(
        value(&after, refused_http) - value(&before, refused_http),
        3.0,
        "{after}"
    );
    assert_eq!(value(&after, refused_rpc) - value(&before, refused_rpc), 3.0, "{after}");
    assert_eq!(value(&after, timed) - value(&before, timed), 3.0, "{after}");
    assert!(
        value(
            &after,
            r#"http_server_requests_total{route="/login",method="POST",status="200"}"#
        ) >= 1.0
    );
    for family in [
        "# TYPE rpc_server_duration_seconds histogram",
        "# TYPE http_server_duration_seconds histogram",
    ] {
        assert!(after.contains(family), "no {family:?} in\n{after}");
    }
}

#[tokio::test]
async fn the_outbox_backlog_rises_while_billing_is_down_and_falls_when_it_is_back() {
    let mesh = spawn_mesh().await;
    let url = admin_port().await;
    let backlog = r#"outbox_backlog{topic="billing.close_account"}"#;

    mesh.stop_billing().await;
    mesh.register_and_leave("ada@example.com").await;
    eventually("the closure waits in the outbox", || async {
        let scrape = scrape(&mesh, &url).await;
        value(&scrape, backlog) >= 1.0
            && value(&scrape, r#"outbox_oldest_age_seconds{topic="billing.close_account"}"#) > 0.0
    })
    .await;

    mesh.start_billing().await;
    eventually("the outbox drains", || async {
        let scrape = scrape(&mesh, &url).await;
        value(&scrape, backlog) == 0.0 && sum(&scrape, "outbox_backlog") == 0.0
    })
    .await;
}

#[tokio::test]
async fn validations_are_counted_by_how_the_cache_answered() {
    let mesh = spawn_mesh().await;
    let url = admin_port().await;
    let key = mesh.customer_with_trial_key("validating@example.com").await.key;
    let series = |outcome: &str| format!("validation_cache_total{{outcome=\"{outcome}\"}}");
    let before = scrape(&mesh, &url).await;
    for _ in 0..3 {
        let response = mesh
            .post("/api/keys/validate", None, serde_json::json!({ "key": key }))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let after = scrape(&mesh, &url).await;
    let moved = |outcome: &str| value(&after, &series(outcome)) - value(&before, &series(outcome));
    // The first asks license-svc and is remembered; the next two are answered from memory.
    assert_eq!(moved("miss"), 1.0, "{after}");
    assert_eq!(moved("hit"), 2.0, "{after}");
}

#[tokio::test]
async fn pool_usage_and_store_reachability_are_reported_by_every_service() {
    let mesh = spawn_mesh().await;
    let url = admin_port().await;
    mesh.register("pooled@example.com").await;
    eventually("the probes report the pools and the stores", || async {
        let scrape = scrape(&mesh, &url).await;
        scrape.contains(r#"db_pool_connections{state="idle"}"#)
            && scrape.contains(r#"db_pool_connections{state="in_use"}"#)
            && value(&scrape, r#"store_up{store="postgres"}"#) == 1.0
            && value(&scrape, r#"store_up{store="redis"}"#) == 1.0
    })
    .await;
    let scrape = scrape(&mesh, &url).await;
    // Families with labels show once they have a series; these have none.
    for family in ["# TYPE notify_queue_depth gauge", "# TYPE password_hash_queue gauge"] {
        assert!(scrape.contains(family), "no {family:?} in\n{scrape}");
    }
}
