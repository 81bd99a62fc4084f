//! What the gateway tells operators about the stores behind it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{eventually, spawn_mesh};

#[tokio::test]
async fn the_stores_page_shows_each_services_stores_and_a_service_that_does_not_answer() {
    let mesh = spawn_mesh().await;
    let up = json!({ "postgres": "up", "redis": "up" });
    // Each service probes its stores as it starts serving.
    eventually("every store is reported up", || async {
        let response = mesh.get("/healthz/stores", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.json::<Value>().await.unwrap();
        body["redis"] == "up"
            && ["identity", "license", "billing"]
                .iter()
                .all(|service| body["services"][service] == up)
    })
    .await;

    mesh.stop_license().await;
    // Until the gateway's connection to it notices the server has gone.
    eventually("license-svc is reported unknown", || async {
        let response = mesh.get("/healthz/stores", None).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "operators' page, not a readiness probe"
        );
        let body = response.json::<Value>().await.unwrap();
        assert_eq!(body["services"]["identity"], up);
        body["services"]["license"] == json!({ "postgres": "unknown", "redis": "unknown" })
    })
    .await;
    assert_eq!(mesh.get("/healthz", None).await.status(), StatusCode::OK);
}
