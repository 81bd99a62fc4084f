//! Health, reflection, and a graceful stop.

use std::{process::Stdio, time::Duration};

use proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use tokio_stream::StreamExt as _;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with, test_config};

#[tokio::test]
async fn health_reports_serving_then_not_serving_once_shutdown_begins() {
    let app = spawn_app_with(|config| config.service.drain_delay = Duration::from_millis(800)).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "reactivation.identity.v1.IdentityService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }

    // During the drain delay the server still answers, but says it is
    // going away so load balancers stop sending it work.
    app.shutdown.trigger();
    platform::testing::eventually("health says NOT_SERVING while draining", || {
        let mut health = health.clone();
        async move {
            let request = HealthCheckRequest {
                service: "reactivation.identity.v1.IdentityService".into(),
            };
            let status = health.check(request).await.expect("health check during drain");
            status.into_inner().status() == ServingStatus::NotServing
        }
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    for expected in ["reactivation.identity.v1.IdentityService", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
}

/// The real binary, sent a real SIGTERM while a Register call waits on a
/// row lock the test holds: the call completes, then the process exits 0.
#[tokio::test]
async fn sigterm_during_an_in_flight_call_lets_it_finish() {
    let database = platform::testing::TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = platform::testing::TestKeySpace::new();
    let config = test_config(&database, &keys);
    let port = platform::testing::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_identity-svc"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", config.service.database_url.expose())
        .env("REDIS_URL", config.service.redis_url.expose())
        .env("REDIS_KEY_PREFIX", &config.service.redis_key_prefix)
        .env("JWT_PUBLIC_KEY", &config.service.jwt_public_key)
        .env("JWT_PRIVATE_KEY", config.jwt_private_key.expose())
        .env("INTERNAL_API_TOKEN", config.service.internal_token.expose())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start identity-svc");

    let endpoint = format!("http://127.0.0.1:{port}");
    let client = platform::testing::eventually_some("identity-svc accepting connections", || {
        let endpoint = endpoint.clone();
        async move { IdentityServiceClient::connect(endpoint).await.ok() }
    })
    .await;

    // Hold an uncommitted insert of the same email: the service's insert
    // must wait for it.
    let pool = platform::db::connect(&database.url, 2).await.unwrap();
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ($1, 'ada@example.com', 'x', now(), now())")
        .bind(uuid::Uuid::new_v4())
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut in_flight_client = client.clone();
    let in_flight = tokio::spawn(async move {
        in_flight_client
            .register(pb::RegisterRequest {
                email: "ada@example.com".into(),
                password: PASSWORD.into(),
            })
            .await
    });
    // Wait until the service's insert is blocked on our lock.
    platform::testing::eventually("the service's insert waiting on the lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        waiting > 0
    })
    .await;

    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    // Proving the process does NOT exit while the call is in flight: no
    // outcome to poll for, so a pause in which an early exit would show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process must wait for the in-flight call"
    );

    blocker.rollback().await.unwrap();
    let registered = in_flight.await.unwrap().expect("the in-flight call completes");
    assert_eq!(registered.into_inner().user.unwrap().email, "ada@example.com");

    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    pool.close().await;
}
