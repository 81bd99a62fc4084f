//! Self-service reactivation (seed 000): ask for a link by email, open it,
//! confirm.
//!
//! `POST /reactivate_user` serves both steps as the seed uses it: `{email}`
//! asks for a link (always the same 202), `{token}` confirms. The link in the
//! email opens `GET /reactivate`, a page whose button posts the token: opening
//! a link never consumes it, because mail scanners open links too.

use std::net::SocketAddr;

use axum::{
    Form, Json,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AccountChanged, User};
use crate::{
    AppState,
    extract::{Body, RequestId},
    problem::Problem,
};

/// The answer to every link request, whatever the email.
pub const LINK_REQUESTED: &str =
    "If this email belongs to an account that can be reactivated, a reactivation link is on its way. It works once.";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reactivate_user))
        .routes(routes!(confirm_page, confirm_form))
}

/// Exactly one of `email` (ask for a link) or `token` (confirm).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReactivateUser {
    pub email: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkRequested {
    pub message: String,
}

/// Ask for a reactivation link (`{email}`) or confirm one (`{token}`).
///
/// With `email`: always 202 with the same body, registered or not (429 with
/// `Retry-After` when asked too often). With `token`: 200 with the account, or
/// 400 "This link is invalid or has expired. Please request a new
/// reactivation link." Reactivation does not restore a subscription.
#[utoipa::path(post, path = "/reactivate_user", tag = "accounts", request_body = ReactivateUser,
    responses(
        (status = 200, description = "Confirmed: the account is active again", body = AccountChanged),
        (status = 202, description = "A link is sent if the account may have one", body = LinkRequested),
        (status = 400, description = "Invalid, expired or used link (reason `REACTIVATION_LINK_INVALID`), or a malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests (reason `RATE_LIMITED`); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn reactivate_user(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<ReactivateUser>,
) -> Result<Response, Problem> {
    match (body.email, body.token) {
        (Some(email), None) => {
            let client_address = state.client_address(&headers, peer);
            let request = state
                .calls
                .anonymous(&request_id, pb::RequestReactivationRequest { email, client_address });
            state.identity.clone().request_reactivation(request).await?;
            let body = LinkRequested {
                message: LINK_REQUESTED.into(),
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        (None, Some(token)) => {
            let user = confirm(&state, &request_id, token).await?;
            let body = AccountChanged {
                message: "Your account is active again. You can log in now.".into(),
                user,
            };
            Ok(Json(body).into_response())
        }
        _ => Err(Problem::invalid_field(
            "email",
            "send exactly one of `email` (to get a link) or `token` (to confirm one)",
        )),
    }
}

async fn confirm(state: &AppState, request_id: &str, token: String) -> Result<User, Problem> {
    let request = state
        .calls
        .anonymous(request_id, pb::ConfirmReactivationRequest { token });
    let user = state.identity.clone().confirm_reactivation(request).await?.into_inner();
    Ok(user.into())
}

#[derive(Debug, Deserialize, IntoParams, ToSchema)]
pub struct LinkToken {
    /// The token from the emailed link.
    pub token: String,
}

/// The page behind the emailed link: a button that confirms. Opening it does
/// not use the link up.
#[utoipa::path(get, path = "/reactivate", tag = "accounts", params(LinkToken),
    responses((status = 200, description = "An HTML page with a \"Reactivate my account\" button", content_type = "text/html")))]
async fn confirm_page(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Query(link): Query<LinkToken>,
) -> Response {
    // Counted for the reactivation funnel; the page does not depend on it.
    let opened = pb::RecordLinkOpenedRequest {
        token: link.token.clone(),
    };
    let request = state.calls.anonymous(&request_id, opened);
    if let Err(status) = state.identity.clone().record_link_opened(request).await {
        tracing::warn!(error = %status.message(), "could not record a reactivation link as opened");
    }
    let body = format!(
        r#"<h1>Reactivate your account</h1>
<p>Press the button to reactivate your account. Your data is where you left it; your subscription is not restored, so you can choose a plan again afterwards.</p>
<form method="post" action="/reactivate">
  <input type="hidden" name="token" value="{token}">
  <button type="submit">Reactivate my account</button>
</form>"#,
        token = escape(&link.token)
    );
    page(StatusCode::OK, &body)
}

/// The button on the link's page: confirms and shows the outcome as a page.
#[utoipa::path(post, path = "/reactivate", tag = "accounts",
    request_body(content = LinkToken, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Reactivated (an HTML page)", content_type = "text/html"),
        (status = 400, description = "Invalid, expired or used link (an HTML page)", content_type = "text/html"),
    ))]
async fn confirm_form(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Form(link): Form<LinkToken>,
) -> Response {
    match confirm(&state, &request_id, link.token).await {
        Ok(user) => page(
            StatusCode::OK,
            &format!(
                "<h1>Welcome back</h1><p>The account {} is active again. You can log in now.</p>",
                escape(&user.email)
            ),
        ),
        Err(problem) => page(
            problem.status_code(),
            &format!("<h1>This link cannot be used</h1><p>{}</p>", escape(&problem.detail)),
        ),
    }
}

/// A minimal standalone page. The token is in the URL, so no referrer leaves
/// it and nothing caches it; nothing but inline styles and this form runs.
fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Reactivate your account</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         button{{font-size:1rem;padding:.6rem 1.2rem;background:#15803d;color:#fff;border:0;border-radius:.4rem;cursor:pointer}}</style>\
         </head><body>{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}
