//! Coming back (seeds 000 and 004): the emailed link's page, asking for a
//! new link, and the welcome-back screen.
//!
//! The link never signs anyone in by itself. Confirming it signs in only the
//! browser that proved the account's password in the login that showed the
//! reactivation prompt (its `proof` cookie, which identity-svc honours only
//! for the account's very next change, a reactivation, within minutes); any
//! other browser is asked to log in, and then sees the welcome-back screen.

use axum::{
    Extension,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use minijinja::context;
use platform::auth::Caller;
use proto::{billing::v1 as billing_pb, identity::v1 as pb};
use serde::Deserialize;

use super::{
    PageError, billing,
    session::{self, CheckedForm, Cookie, CsrfToken, SignedIn},
};
use crate::{
    AppState,
    extract::{ClientAddress, RequestId},
    problem::Problem,
    routes::reactivation::LINK_REQUESTED,
};

/// Seconds a browser keeps the proof: identity-svc's proof lifetime.
pub const PROOF_MAX_AGE: u64 = 30 * 60;

/// The page behind the emailed link (`GET /reactivate?token=…`): a button.
/// Opening it does not use the link up (mail scanners open links).
pub async fn link_page(state: &AppState, request_id: &str, csrf: &str, token: String) -> Response {
    // Counted for the reactivation funnel; the page does not depend on it.
    let opened = pb::RecordLinkOpenedRequest { token: token.clone() };
    let request = state.calls.anonymous(request_id, opened);
    if let Err(status) = state.identity.clone().record_link_opened(request).await {
        tracing::warn!(error = %status.message(), "could not record a reactivation link as opened");
    }
    state.web.render("reactivate.html", context! { csrf, token })
}

/// `GET /reactivate` without a usable token: the link was cut short on its
/// way, so the page offers to send a new one.
pub fn broken_link_page(state: &AppState, csrf: &str) -> Response {
    state.web.render_status(
        StatusCode::BAD_REQUEST,
        "reactivate.html",
        context! { csrf, invalid => true, error => "This link is incomplete. Ask for a new one below." },
    )
}

/// The link page's button (`POST /reactivate`): the account is active
/// again; this browser is signed in if it holds the proof, else asked to
/// log in. An unusable link offers to send a new one.
pub async fn confirm(
    state: &AppState,
    request_id: &str,
    csrf: &str,
    headers: &HeaderMap,
    token: String,
) -> Result<Response, PageError> {
    let request = state
        .calls
        .anonymous(request_id, pb::ConfirmReactivationRequest { token });
    if let Err(status) = state.identity.clone().confirm_reactivation(request).await {
        let problem = Problem::from(status);
        if problem.status_code().is_server_error() {
            return Err(problem.into());
        }
        let page = state.web.render_status(
            problem.status_code(),
            "reactivate.html",
            context! { csrf, invalid => true, error => problem.detail },
        );
        return Ok(page);
    }
    let proof = Cookie::Proof.read(&state.web, headers);
    if let Some(proof) = proof
        && let Some((_, cookies)) = session::refresh(state, request_id, proof).await?
    {
        let mut cookies = cookies;
        cookies.push(Cookie::Proof.clear(&state.web));
        return Ok(session::with_cookies(
            Redirect::to("/welcome-back").into_response(),
            cookies,
        ));
    }
    let page = state.web.render(
        "login.html",
        context! {
            nav => "login",
            csrf,
            notice => "Your account is active again. Log in to continue.",
        },
    );
    Ok(session::with_cookies(page, vec![Cookie::Proof.clear(&state.web)]))
}

/// `GET /reactivation-link`: ask for a (new) reactivation link.
pub async fn new_link_page(Extension(state): Extension<AppState>, CsrfToken(csrf): CsrfToken) -> Response {
    state.web.render("new_link.html", context! { csrf })
}

#[derive(Debug, Deserialize)]
pub struct LinkRequest {
    #[serde(default)]
    email: String,
}

/// The inactive prompt's "Reactivate my account" and the new-link form: the
/// same answer whatever the email.
pub async fn send_link(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    ClientAddress(client_address): ClientAddress,
    CsrfToken(csrf): CsrfToken,
    CheckedForm(form): CheckedForm<LinkRequest>,
) -> Result<Response, PageError> {
    let request = state.calls.anonymous(
        &request_id,
        pb::RequestReactivationRequest {
            email: form.email,
            client_address,
        },
    );
    if let Err(status) = state.identity.clone().request_reactivation(request).await {
        let problem = Problem::from(status);
        if problem.status_code() == StatusCode::BAD_REQUEST {
            let page = state.web.render_status(
                StatusCode::BAD_REQUEST,
                "new_link.html",
                context! { csrf, error => "Please enter a valid email address." },
            );
            return Ok(page);
        }
        return Err(problem.into());
    }
    Ok(state.web.render(
        "message.html",
        context! {
            csrf,
            icon => "✉",
            title => "Check your email",
            detail => LINK_REQUESTED,
            more => "The link is valid for a limited time. Nothing arrived? Look in your spam folder, or ask again in a minute.",
        },
    ))
}

/// `GET /welcome-back` (seed 004).
pub async fn welcome_back(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    SignedIn(caller): SignedIn,
) -> Result<Response, PageError> {
    welcome_back_page(&state, &caller, &request_id, &csrf, None).await
}

/// The welcome-back screen: what is kept, the offer when billing says the
/// customer is eligible, and the way on — pricing, or the subscription page
/// while a cancelled subscription still runs (it can be undone; a second one
/// cannot be bought).
pub async fn welcome_back_page(
    state: &AppState,
    caller: &Caller,
    request_id: &str,
    csrf: &str,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let subscription = billing::current_subscription(state, caller, request_id).await?;
    let pricing = state
        .billing
        .clone()
        .get_pricing(
            state
                .calls
                .on_behalf(caller, request_id, billing_pb::GetPricingRequest {}),
        )
        .await?
        .into_inner();
    let running = subscription.can_reactivate;
    let view = billing::SubscriptionPage::from(subscription);
    Ok(state.web.render(
        "welcome_back.html",
        context! {
            signed_in => true,
            nav => "home",
            csrf,
            notice,
            running,
            running_until => view.date,
            eligible => pricing.welcome_back_eligible,
        },
    ))
}
