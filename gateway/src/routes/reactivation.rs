//! Self-service reactivation (seed 000): ask for a link by email, open it,
//! confirm.
//!
//! `POST /reactivate_user` serves both steps as the seed uses it: `{email}`
//! asks for a link (always the same 202), `{token}` confirms. The link in the
//! email opens `GET /reactivate`, a page whose button posts the token: opening
//! a link never consumes it, because mail scanners open links too. Both are
//! pages of the web app ([`crate::web::reactivation`]), listed here because
//! the API document has always described them.

use axum::{
    Extension, Json,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AccountChanged, User};
use crate::{
    AppState,
    extract::{Body, ClientAddress, RequestId},
    problem::Problem,
    web::{
        self, PageError,
        session::{CheckedForm, CsrfToken},
    },
};

/// The answer to every link request, whatever the email.
pub const LINK_REQUESTED: &str =
    "If this email belongs to an account that can be reactivated, a reactivation link is on its way. It works once.";

pub fn router() -> OpenApiRouter<AppState> {
    let pages = OpenApiRouter::new()
        .routes(routes!(confirm_page, confirm_form))
        .layer(axum::middleware::from_fn(web::page));
    OpenApiRouter::new().routes(routes!(reactivate_user)).merge(pages)
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
    ClientAddress(client_address): ClientAddress,
    Body(body): Body<ReactivateUser>,
) -> Result<Response, Problem> {
    match (body.email, body.token) {
        (Some(email), None) => {
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

/// The link page's form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmLink {
    /// The token from the emailed link.
    pub token: String,
    /// The page's CSRF value (it must match the browser's `csrf` cookie).
    pub csrf: String,
}

/// The page behind the emailed link: a button that confirms. Opening it does
/// not use the link up.
#[utoipa::path(get, path = "/reactivate", tag = "accounts", params(LinkToken),
    responses(
        (status = 200, description = "An HTML page with a \"Reactivate my account\" button", content_type = "text/html"),
        (status = 400, description = "No token in the query string: the page offers to send a new link", content_type = "text/html"),
    ))]
async fn confirm_page(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    link: Result<Query<LinkToken>, QueryRejection>,
) -> Response {
    match link {
        Ok(Query(link)) => web::reactivation::link_page(&state, &request_id, &csrf, link.token).await,
        // A link cut short by a mail client: a page, not a problem document.
        Err(_) => web::reactivation::broken_link_page(&state, &csrf),
    }
}

/// The button on the link's page: confirms and shows the outcome as a page.
///
/// The browser that gave the account's password in the login that showed
/// the reactivation prompt is signed in and sent to the welcome-back page
/// (303); any other is asked to log in.
#[utoipa::path(post, path = "/reactivate", tag = "accounts",
    request_body(content = ConfirmLink, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Reactivated: a page asking to log in", content_type = "text/html"),
        (status = 303, description = "Reactivated and signed in: to `/welcome-back`"),
        (status = 400, description = "Invalid, expired or used link: a page offering a new link", content_type = "text/html"),
        (status = 403, description = "The CSRF value is missing or wrong (an HTML page)", content_type = "text/html"),
    ))]
async fn confirm_form(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    headers: HeaderMap,
    CheckedForm(link): CheckedForm<LinkToken>,
) -> Result<Response, PageError> {
    web::reactivation::confirm(&state, &request_id, &csrf, &headers, link.token).await
}
