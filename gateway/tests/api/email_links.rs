//! Every link in every email lands on a working page of the web app.

use std::collections::BTreeMap;

use notify_svc::{domain::template::Template, templates::Renderer};
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::spawn_mesh;

/// The web addresses in a plain-text body.
fn links(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
        .map(|word| word.trim_end_matches(['.', ',', ')', '>']).to_owned())
        .collect()
}

/// The `href`s of an HTML body, unescaped.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&#x2f;", "/").replace("&#x3d;", "=").replace("&amp;", "&"))
        .collect()
}

#[tokio::test]
async fn every_link_in_every_email_lands_on_a_page() {
    let mesh = spawn_mesh().await;
    // A real reactivation link, as identity-svc mails it.
    let email = "links@example.com";
    mesh.register_and_leave(email).await;
    let requested = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED);
    let link = mesh.wait_for_link(1).await;

    // The variables as their senders fill them in.
    let base = mesh.base.clone();
    let values = BTreeMap::from([
        ("link", link),
        ("reactivate_url", format!("{base}/login")),
        ("pricing_url", format!("{base}/pricing")),
        ("subscription_url", format!("{base}/subscription")),
    ]);
    let renderer = Renderer::new("Reactivation", &base);
    let browser = reqwest::Client::new();
    let mut checked = 0;
    for template in Template::ALL {
        let variables: BTreeMap<String, String> = template
            .variables()
            .iter()
            .map(|variable| {
                let value = values.get(variable.name).cloned().unwrap_or_else(|| "7".to_owned());
                (variable.name.to_owned(), value)
            })
            .collect();
        let rendered = renderer.render(template, &variables).expect("renders");
        let mut found = links(&rendered.text);
        found.extend(hrefs(&rendered.html));
        found.sort();
        found.dedup();
        assert!(!found.is_empty(), "{} has no link", template.as_str());
        for url in found {
            assert!(url.starts_with(&base), "{url} points elsewhere");
            // As a browser opens it: asking for HTML, following redirects.
            let response = browser
                .get(&url)
                .header(header::ACCEPT, "text/html")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{url} in {}", template.as_str());
            let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
            assert!(content_type.starts_with("text/html"), "{url}: {content_type}");
            checked += 1;
        }
    }
    assert!(checked >= Template::ALL.len());
}
