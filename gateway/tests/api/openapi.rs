//! The OpenAPI document stays true: it lists every route the gateway
//! serves, and every route it lists is served.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_mesh;

const ROUTES: &[(&str, &str)] = &[
    ("post", "/register"),
    ("post", "/login"),
    ("get", "/me"),
    ("post", "/deactivate_user"),
    ("post", "/api/cancel-account"),
    ("post", "/delete_user"),
    ("post", "/reactivate_user"),
    ("get", "/reactivate"),
    ("post", "/reactivate"),
    ("post", "/admin/users/{id}/reactivate"),
    ("get", "/admin/users/{id}/events"),
    ("get", "/api/keys"),
    ("post", "/api/keys"),
    ("get", "/api/keys/{key}"),
    ("patch", "/api/keys/{key}"),
    ("post", "/api/keys/{key}/disable"),
    ("post", "/api/keys/{key}/reactivate"),
    ("post", "/api/keys/{key}/extend"),
    ("post", "/api/keys/{key}/close-deal"),
    ("post", "/api/keys/{key}/email"),
    ("get", "/api/keys/{key}/history"),
    ("post", "/api/keys/validate"),
    ("get", "/api/subscription"),
    ("post", "/api/cancel-subscription"),
    ("post", "/api/subscription/reactivate"),
    ("get", "/api/pricing"),
    ("post", "/api/create-checkout-session"),
    ("post", "/api/stripe/webhook"),
    ("get", "/api/admin/metrics/reactivation"),
    ("get", "/api/admin/users"),
    ("get", "/api/admin/users/{id}/timeline"),
    ("get", "/api/admin/metrics/funnel"),
    ("get", "/api/admin/webhooks/failed"),
    ("post", "/api/admin/webhooks/failed/replay"),
    ("get", "/billing/success"),
    ("get", "/billing/cancelled"),
    ("get", "/healthz"),
    ("get", "/healthz/stores"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn the_document_lists_exactly_the_served_routes() {
    let mesh = spawn_mesh().await;
    let response = mesh.get("/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);

    // Every documented route is really served: none falls through to the
    // "No such route" fallback.
    for (method, path) in &documented {
        let url = mesh.url(
            &path
                .replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{key}", "SK-AAAA-BBBB-CCCC-DDDD"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = mesh.http.request(method.clone(), url).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("No such route."),
            "{method} {path} is documented but not served ({status})"
        );
    }
}

#[tokio::test]
async fn every_api_error_is_documented_as_problem_json_and_every_page_error_as_a_page() {
    let document = gateway::openapi();
    let document: Value = serde_json::to_value(&document).unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            // Pages for people (the emailed link's) answer errors as pages;
            // everything else answers problem+json.
            let is_page = responses
                .get("200")
                .is_some_and(|ok| ok["content"]["text/html"].is_object());
            let error_type = if is_page {
                "text/html"
            } else {
                "application/problem+json"
            };
            for (status, response) in responses {
                // Load shedding refuses before any route runs, pages included.
                let shed = status == "503"
                    && response["description"]
                        .as_str()
                        .is_some_and(|description| description.contains("OVERLOADED"));
                let error_type = if shed { "application/problem+json" } else { error_type };
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"][error_type].is_object(),
                        "{method} {path} {status} is not documented as {error_type}"
                    );
                }
            }
        }
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}
