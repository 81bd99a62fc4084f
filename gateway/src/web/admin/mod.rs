//! `/admin`: the console of the support and sales staff (seed 002) — license
//! keys, customers, the reactivation metrics and failed Stripe webhooks.
//!
//! Every route sits behind [`session::require_admin`]: a signed-out browser
//! goes to the login page and a customer gets the 403 page, before any
//! handler runs or any service is asked. The services check the admin role
//! again on every call. An action is a form posted to its own path; it
//! answers with a redirect back to the page it came from (so a reload never
//! repeats it), carrying its outcome in a one-time [`Notice`].

pub mod customers;
pub mod keys;
pub mod metrics;
pub mod webhooks;

use axum::{
    Router,
    http::{HeaderMap, HeaderValue},
    middleware,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::Engine as _;
use minijinja::{Value, context};
use platform::auth::Caller;

use super::{
    PageError,
    session::{self, Cookie},
};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/keys") }))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route("/admin/keys/{key}", get(keys::detail))
        .route("/admin/keys/{key}/edit", post(keys::edit))
        .route("/admin/keys/{key}/extend", post(keys::act))
        .route("/admin/keys/{key}/close", post(keys::act))
        .route("/admin/keys/{key}/email", post(keys::act))
        .route("/admin/keys/{key}/disable", post(keys::act))
        .route("/admin/keys/{key}/reactivate", post(keys::act))
        .route("/admin/users", get(customers::search))
        .route("/admin/users/{email}", get(customers::page))
        // Under `account/`: `POST /admin/users/{id}/reactivate` is the JSON API's.
        .route("/admin/users/{email}/account/reactivate", post(customers::act))
        .route("/admin/users/{email}/account/deactivate", post(customers::act))
        .route("/admin/users/{email}/account/erase", post(customers::act))
        .route("/admin/metrics", get(metrics::page))
        .route("/admin/webhooks", get(webhooks::page))
        .route("/admin/webhooks/replay", post(webhooks::replay))
        .route_layer(middleware::from_fn(session::require_admin))
}

/// What an admin page's handler needs: the state, the request's id, the
/// admin, this browser's CSRF value and the notice left by the last action.
#[derive(Debug)]
pub struct Console {
    pub state: AppState,
    pub request_id: String,
    pub admin: Caller,
    csrf: String,
    notice: Option<Notice>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session::Customer {
            state: app,
            request_id,
            csrf,
            caller: admin,
        } = session::Customer::from_request_parts(parts, state).await?;
        let notice = Notice::read(&app, &parts.headers);
        Ok(Self {
            state: app,
            request_id,
            admin,
            csrf,
            notice,
        })
    }
}

impl Console {
    /// `message` as a call on the admin's behalf.
    pub fn request<M>(&self, message: M) -> tonic::Request<M> {
        self.state.calls.on_behalf(&self.admin, &self.request_id, message)
    }

    /// The call as the JSON routes make it, for what they already compose.
    pub fn on_behalf(&self) -> crate::extract::OnBehalf {
        crate::extract::OnBehalf {
            state: self.state.clone(),
            request_id: self.request_id.clone(),
            caller: self.admin.clone(),
        }
    }

    /// Renders an admin page: `body` with the console's navigation, the
    /// CSRF value and the last action's notice (then forgotten).
    pub fn render(&self, template: &str, nav: &str, body: Value) -> Response {
        let page = context! {
            signed_in => true,
            admin => true,
            nav,
            csrf => &self.csrf,
            notice => self.notice.as_ref().map(|notice| context! { ok => notice.ok, text => &notice.text }),
            ..body
        };
        let response = self.state.web.render(template, page);
        if self.notice.is_some() {
            return session::with_cookies(response, vec![Cookie::Notice.clear(&self.state.web)]);
        }
        response
    }

    /// Back to `back` (a path of the console; anything else leads to the
    /// keys page), telling the outcome of an action.
    pub fn back(&self, back: &str, outcome: Result<String, PageError>) -> Response {
        let notice = match outcome {
            Ok(text) => Notice { ok: true, text },
            // A refusal is told on the page; only an outage is an error page.
            Err(error) if error.status.is_server_error() => {
                return error.into_page(&self.state.web, &self.request_id);
            }
            Err(error) => Notice {
                ok: false,
                text: error.detail,
            },
        };
        let target = if is_console_path(back) { back } else { "/admin/keys" };
        session::with_cookies(Redirect::to(target).into_response(), vec![notice.cookie(&self.state)])
    }
}

/// The action a route names: the last segment of its template
/// (`/admin/keys/{key}/disable` → `disable`).
pub fn action(route: &axum::extract::MatchedPath) -> &str {
    route.as_str().rsplit('/').next().unwrap_or_default()
}

/// A path of the console, safe to redirect to: not another site
/// (`//host`, `/\host`) and not outside `/admin`.
fn is_console_path(path: &str) -> bool {
    path.starts_with("/admin") && !path.contains("//") && !path.contains('\\') && !path.contains("..")
}

/// The outcome of an action, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Notice {
    ok: bool,
    text: String,
}

impl Notice {
    fn cookie(&self, state: &AppState) -> HeaderValue {
        let flag = if self.ok { "1" } else { "0" };
        // Bounded: a refusal's message is short, but a cookie must stay small.
        let text: String = self.text.chars().take(500).collect();
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{flag}{text}"));
        Cookie::Notice.set(&state.web, &value, Some(60))
    }

    fn read(state: &AppState, headers: &HeaderMap) -> Option<Self> {
        let value = Cookie::Notice.read(&state.web, headers)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (flag, text) = text.split_at_checked(1)?;
        Some(Self {
            ok: flag == "1",
            text: text.to_owned(),
        })
    }
}

/// `text` as one segment of a URL path: everything but the unreserved
/// characters percent-encoded (an email's `@` and `+` included).
pub fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `at` as the console shows a moment: `Dec 2, 2026 14:05 UTC`.
pub fn moment(at: Option<&prost_types::Timestamp>) -> Option<String> {
    at.and_then(platform::wire::from_timestamp)
        .map(|at| at.format("%b %-d, %Y %H:%M UTC").to_string())
}

/// `at` as a day: `Dec 2, 2026`.
pub fn day(at: Option<&prost_types::Timestamp>) -> Option<String> {
    at.and_then(platform::wire::from_timestamp)
        .map(|at| at.format("%b %-d, %Y").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_the_console_are_followed_back() {
        assert!(is_console_path("/admin/keys?status=ACTIVE"));
        assert!(is_console_path("/admin/users/ada%40example.com"));
        for elsewhere in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/account",
            "/admin/../account",
            "/admin//evil",
        ] {
            assert!(!is_console_path(elsewhere), "{elsewhere}");
        }
    }

    #[test]
    fn an_email_is_one_path_segment() {
        assert_eq!(path_segment("ada+news@example.com"), "ada%2Bnews%40example.com");
        assert_eq!(path_segment("a/b"), "a%2Fb");
    }
}
