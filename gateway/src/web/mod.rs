//! The web app: server-rendered pages for customers, on the same origin as
//! the REST API, so a person can do in a browser everything the API does
//! for them.
//!
//! One module per area (`login`, `reactivation`, `billing`, `account`, and
//! `admin`, the staff's console), each
//! with its handlers; templates live in `gateway/templates/` (one base
//! layout) and are compiled into the binary, as are the stylesheet and the
//! little script in `gateway/assets/`. Pages are plain HTML forms; the
//! script only adds focus handling to the dialogs and disables a button
//! while its form is sent.
//!
//! The routes are grouped by the policy they need: every page gets the
//! strict CSP and the other security headers, a CSRF cookie, and the error
//! page; the signed-in pages are also guarded by [`session::require_signed_in`].
//! Handlers call the same services as the JSON routes; no business rule
//! lives here. A page never shares a path and method with a JSON route.

pub mod account;
pub mod admin;
pub mod billing;
pub mod error;
pub mod login;
pub mod reactivation;
pub mod session;

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Router,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use minijinja::{Environment, Value};

pub use self::error::PageError;
use crate::AppState;

/// How long a browser keeps its session cookie: identity-svc's web session
/// lifetime (it refuses the token after that anyway).
const SESSION_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// Every page's policy: only our own scripts, styles, images and forms; no
/// framing; no plugins; no `<base>` tricks.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The templates, the assets and the cookie settings.
#[derive(Clone)]
pub struct Web {
    templates: Arc<Environment<'static>>,
    /// `Secure` cookies with `__Host-` names (off only for local
    /// development over plain HTTP).
    pub secure_cookies: bool,
    /// Seconds an access cookie is kept: the access token's lifetime.
    pub access_max_age: u64,
    pub session_max_age: u64,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

/// The templates, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("register.html", include_str!("../../templates/register.html")),
    ("credentials.html", include_str!("../../templates/credentials.html")),
    ("logout.html", include_str!("../../templates/logout.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("message.html", include_str!("../../templates/message.html")),
    ("reactivate.html", include_str!("../../templates/reactivate.html")),
    ("new_link.html", include_str!("../../templates/new_link.html")),
    ("new_link_form.html", include_str!("../../templates/new_link_form.html")),
    ("welcome_back.html", include_str!("../../templates/welcome_back.html")),
    ("pricing.html", include_str!("../../templates/pricing.html")),
    ("checkout.html", include_str!("../../templates/checkout.html")),
    ("success.html", include_str!("../../templates/success.html")),
    ("subscription.html", include_str!("../../templates/subscription.html")),
    (
        "confirm_dialog.html",
        include_str!("../../templates/confirm_dialog.html"),
    ),
    ("account.html", include_str!("../../templates/account.html")),
    ("admin_notice.html", include_str!("../../templates/admin_notice.html")),
    (
        "admin_key_actions.html",
        include_str!("../../templates/admin_key_actions.html"),
    ),
    ("admin_keys.html", include_str!("../../templates/admin_keys.html")),
    ("admin_key.html", include_str!("../../templates/admin_key.html")),
    ("admin_users.html", include_str!("../../templates/admin_users.html")),
    ("admin_user.html", include_str!("../../templates/admin_user.html")),
    ("admin_metrics.html", include_str!("../../templates/admin_metrics.html")),
    (
        "admin_webhooks.html",
        include_str!("../../templates/admin_webhooks.html"),
    ),
];

impl Web {
    pub fn new(secure_cookies: bool, access_token_ttl: Duration) -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|err| panic!("template {name}: {err}"));
        }
        Self {
            templates: Arc::new(env),
            secure_cookies,
            access_max_age: access_token_ttl.as_secs(),
            session_max_age: SESSION_MAX_AGE.as_secs(),
        }
    }

    /// Renders `template` (HTML-escaped) with `body`.
    pub fn render_status(&self, status: StatusCode, template: &str, body: Value) -> Response {
        match self
            .templates
            .get_template(template)
            .and_then(|template| template.render(body))
        {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(template, error = format!("{err:#}"), "a page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "This page could not be shown.").into_response()
            }
        }
    }

    pub fn render(&self, template: &str, body: Value) -> Response {
        self.render_status(StatusCode::OK, template, body)
    }
}

/// The id of this request, as every log line and the error page show it.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The policy of every page: the CSRF cookie, the error page for handlers
/// that fail, and the security headers. Reads the state from the request's
/// extensions, so the pages that live in the API's route table (the
/// documented `/reactivate` and `/billing/*`) get it too.
pub async fn page(Extension(state): Extension<AppState>, request: Request, next: Next) -> Response {
    let request_id = request_id(request.headers());
    let mut response = session::csrf_cookie(state.clone(), request, next).await;
    if let Some(error) = response.extensions_mut().remove::<PageError>() {
        let cookies: Vec<HeaderValue> = response.headers().get_all(header::SET_COOKIE).iter().cloned().collect();
        response = session::with_cookies(error.into_page(&state.web, &request_id), cookies);
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // A link's token is in its URL: no other site learns it from a referrer.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Pages show personal data: never stored by the browser or a proxy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The customer's pages. The signed-in ones send a signed-out browser to
/// the login page.
pub fn router() -> Router<AppState> {
    let signed_in = Router::new()
        .route("/welcome-back", get(reactivation::welcome_back))
        .route("/pricing", get(billing::pricing))
        .route("/checkout", post(billing::checkout))
        .route("/subscription", get(billing::subscription))
        .route("/subscription/cancel", post(billing::cancel))
        .route("/subscription/undo-cancel", post(billing::undo_cancel))
        .route("/account", get(account::page))
        .route("/account/deactivate", post(account::deactivate))
        .route("/account/erase", post(account::erase))
        .route_layer(middleware::from_fn(session::require_signed_in));
    let pages = Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::login_page))
        .route("/sign-in", post(login::sign_in))
        .route("/register", get(login::register_page))
        .route("/sign-up", post(login::sign_up))
        .route("/logout", get(login::logout_page).post(login::logout))
        .route(
            "/reactivation-link",
            get(reactivation::new_link_page).post(reactivation::send_link),
        )
        .merge(signed_in)
        .merge(admin::router())
        .route_layer(middleware::from_fn(page));
    Router::new()
        .route("/assets/style.css", get(stylesheet))
        .route("/assets/app.js", get(script))
        .merge(pages)
}

async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("../../assets/style.css"))
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/app.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::*;

    #[test]
    fn every_template_renders_escaped_with_its_policy() {
        let web = Web::new(true, Duration::from_secs(900));
        for (name, _) in TEMPLATES {
            let subscription = context! { status => "active", status_label => "Active", can_cancel => true };
            let key = context! { key => "SK-A", href => "/admin/keys/SK-A", in_use => true, can_close => true };
            let body = context! { csrf => "c", title => "<b>t</b>", detail => "d", subscription, key, account => context! { email => "e" },
            filter => context! { email => "" }, search => context! { email => "" }, customer => context! { name => "n" }, features => context! { beta => true }, weeks => Vec::<i32>::new() };
            let response = web.render(name, body);
            assert_eq!(response.status(), StatusCode::OK, "{name}");
        }
        let html = web
            .templates
            .get_template("message.html")
            .unwrap()
            .render(context! { title => "<script>", detail => "d" })
            .unwrap();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>alert"));
        assert!(!html.contains("style=\""), "inline styles would break the CSP");
    }
}
