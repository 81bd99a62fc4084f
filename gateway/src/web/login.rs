//! The start page, logging in and out, creating an account (seed 000's
//! login with its reactivation prompt).

use axum::{
    Extension,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use minijinja::context;
use proto::identity::v1 as pb;
use serde::Deserialize;

use super::{
    PageError, billing,
    session::{self, CheckedForm, Cookie, CsrfToken},
};
use crate::{
    AppState,
    extract::{ClientAddress, RequestId},
    problem::Problem,
};

/// What an unknown email and a wrong password both read.
const WRONG_CREDENTIALS: &str = "The email or password is incorrect.";

/// `/`: the customer's home when signed in — the welcome-back screen for a
/// customer who left and has no plan running — else the login page.
pub async fn home(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (caller, cookies) = session::identify(&state, &request_id, &headers).await?;
    let Some(caller) = caller else {
        return Ok(session::with_cookies(login_form(&state, &csrf, context! {}), cookies));
    };
    // Staff work in the console; its pages are theirs alone.
    if caller.is_admin() {
        return Ok(session::with_cookies(
            Redirect::to("/admin/keys").into_response(),
            cookies,
        ));
    }
    let me = state
        .identity
        .clone()
        .get_me(state.calls.on_behalf(&caller, &request_id, pb::GetMeRequest {}))
        .await?
        .into_inner();
    let subscription = billing::current_subscription(&state, &caller, &request_id).await?;
    let page = if billing::returning_without_plan(&me, &subscription) {
        super::reactivation::welcome_back_page(&state, &caller, &request_id, &csrf, None).await?
    } else {
        state.web.render(
            "home.html",
            context! { signed_in => true, nav => "home", csrf, email => me.email, subscription => billing::SubscriptionPage::from(subscription) },
        )
    };
    Ok(session::with_cookies(page, cookies))
}

fn login_form(state: &AppState, csrf: &str, extra: minijinja::Value) -> Response {
    state
        .web
        .render("login.html", context! { nav => "login", csrf, ..extra })
}

/// `GET /login`.
pub async fn login_page(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if let (Some(_), cookies) = session::identify(&state, &request_id, &headers).await? {
        return Ok(session::with_cookies(Redirect::to("/").into_response(), cookies));
    }
    Ok(login_form(&state, &csrf, context! {}))
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The login form: signed in and sent home; or the prompt of an inactive
/// account, leaving this browser the proof that its password was given.
pub async fn sign_in(visitor: Visitor, CheckedForm(form): CheckedForm<Credentials>) -> Result<Response, PageError> {
    let Visitor { state, csrf, .. } = &visitor;
    let email = form.email.trim().to_owned();
    let answer = match visitor.start_web_session(email.clone(), form.password).await {
        Ok(answer) => answer,
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::InvalidArgument
            ) =>
        {
            let page = login_form(state, csrf, context! { email, error => WRONG_CREDENTIALS });
            return Ok(with_status(page, StatusCode::UNAUTHORIZED));
        }
        Err(status) => return Err(status.into()),
    };
    if answer.inactive {
        let page = login_form(
            state,
            csrf,
            context! { email, inactive => true, self_service => answer.self_service_reactivation },
        );
        let proof = (!answer.session_token.is_empty()).then(|| {
            Cookie::Proof.set(
                &state.web,
                &answer.session_token,
                Some(super::reactivation::PROOF_MAX_AGE),
            )
        });
        return Ok(session::with_cookies(
            with_status(page, StatusCode::FORBIDDEN),
            proof.into_iter().collect(),
        ));
    }
    Ok(signed_in(state, answer))
}

/// This browser signed in with the web session `answer` opened: home.
fn signed_in(state: &AppState, answer: pb::WebSession) -> Response {
    let access = answer.login.map(|login| login.access_token).unwrap_or_default();
    let cookies = session::signed_in_cookies(&state.web, &access, &answer.session_token);
    session::with_cookies(Redirect::to("/").into_response(), cookies)
}

/// Who fills in the login or registration form, extracted in the order the
/// handlers always took it: the state, the request's id, this browser's
/// CSRF value, and the address the form comes from.
#[derive(Debug)]
pub struct Visitor {
    state: AppState,
    request_id: String,
    csrf: String,
    client_address: String,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Extension(app) = Extension::<AppState>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(RequestId(request_id)) = RequestId::from_request_parts(parts, state).await;
        let Ok(CsrfToken(csrf)) = CsrfToken::from_request_parts(parts, state).await;
        let ClientAddress(client_address) = ClientAddress::from_request_parts(parts, &app).await?;
        Ok(Self {
            state: app,
            request_id,
            csrf,
            client_address,
        })
    }
}

impl Visitor {
    /// Logs in at identity-svc and opens a web session for this browser.
    async fn start_web_session(&self, email: String, password: String) -> Result<pb::WebSession, tonic::Status> {
        let login = pb::LoginRequest {
            email,
            password,
            client_address: self.client_address.clone(),
        };
        let request = self.state.calls.anonymous(&self.request_id, login);
        Ok(self
            .state
            .identity
            .clone()
            .start_web_session(request)
            .await?
            .into_inner())
    }
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    *response.status_mut() = status;
    response
}

/// `GET /register`.
pub async fn register_page(Extension(state): Extension<AppState>, CsrfToken(csrf): CsrfToken) -> Response {
    state.web.render("register.html", context! { nav => "register", csrf })
}

/// The registration form: the account is created and this browser signed in.
pub async fn sign_up(visitor: Visitor, CheckedForm(form): CheckedForm<Credentials>) -> Result<Response, PageError> {
    let (state, csrf) = (&visitor.state, &visitor.csrf);
    let email = form.email.trim().to_owned();
    let request = state.calls.anonymous(
        &visitor.request_id,
        pb::RegisterRequest {
            email: email.clone(),
            password: form.password.clone(),
        },
    );
    if let Err(status) = state.identity.clone().register(request).await {
        let problem = Problem::from(status);
        if problem.status_code().is_server_error() {
            return Err(problem.into());
        }
        // The field's message without the field's name in front.
        let error = problem
            .invalid_params
            .first()
            .map_or_else(|| problem.detail.clone(), |param| capitalised(&param.reason));
        let page = state
            .web
            .render("register.html", context! { nav => "register", csrf, email, error });
        return Ok(with_status(page, problem.status_code()));
    }
    let answer = visitor.start_web_session(email, form.password).await?;
    Ok(signed_in(state, answer))
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `GET /logout`: a button (logging out changes state, so it is a form).
pub async fn logout_page(Extension(state): Extension<AppState>, CsrfToken(csrf): CsrfToken) -> Response {
    state.web.render("logout.html", context! { signed_in => true, csrf })
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// Logging out: the session ends at identity-svc and the cookies go.
pub async fn logout(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<Nothing>,
) -> Result<Response, PageError> {
    if let Some(session_token) = Cookie::Session.read(&state.web, &headers) {
        let request = state
            .calls
            .anonymous(&request_id, pb::EndWebSessionRequest { session_token });
        state.identity.clone().end_web_session(request).await?;
    }
    Ok(signed_out(&state, Redirect::to("/login").into_response()))
}

/// `response` with every session cookie of this browser removed.
pub fn signed_out(state: &AppState, response: Response) -> Response {
    let web = &state.web;
    session::with_cookies(
        response,
        vec![
            Cookie::Access.clear(web),
            Cookie::Session.clear(web),
            Cookie::Proof.clear(web),
        ],
    )
}
