//! The browser's side of a session: cookies, the CSRF check, and the
//! signed-in guard.
//!
//! Three cookies, all `HttpOnly`, `Path=/`, `Secure` (and `__Host-` named)
//! outside local development:
//! * `access` — the current access token (a signed JWT, verified like any
//!   bearer token, session floor included), `SameSite=Lax`;
//! * `session` — identity-svc's opaque web session token, exchanged for a
//!   new access token when that one expires; `SameSite=Lax`;
//! * `csrf` — a random value every form repeats in a hidden field
//!   (double submit), `SameSite=Strict`.
//!
//! A session ends at once when the account is deactivated or erased: the
//! access token is refused by the floor and identity-svc refuses to refresh
//! a session whose account changed, so the next click lands on the login
//! page with the cookies cleared.

use axum::{
    Extension,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine as _;
use platform::auth::Caller;
use proto::identity::v1 as pb;
use serde::{Deserialize, de::DeserializeOwned};

use super::{Web, error::PageError};
use crate::AppState;

/// One of the web app's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    Access,
    Session,
    Csrf,
    /// The proof an inactive account's password was given in this browser
    /// (the login that showed the reactivation prompt).
    Proof,
    /// The outcome of the admin's last action, shown once by the page the
    /// action leads back to.
    Notice,
}

impl Cookie {
    fn base(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Session => "session",
            Self::Csrf => "csrf",
            Self::Proof => "proof",
            Self::Notice => "notice",
        }
    }

    /// The cookie's name: `__Host-` prefixed when secure, so that no other
    /// origin (a sibling subdomain) can plant it.
    pub fn name(self, web: &Web) -> String {
        if web.secure_cookies {
            format!("__Host-{}", self.base())
        } else {
            self.base().to_owned()
        }
    }

    fn same_site(self) -> &'static str {
        match self {
            Self::Csrf | Self::Notice => "Strict",
            Self::Access | Self::Session | Self::Proof => "Lax",
        }
    }

    /// A `Set-Cookie` value setting it (`max_age` none: until the browser
    /// closes).
    pub fn set(self, web: &Web, value: &str, max_age: Option<u64>) -> HeaderValue {
        let secure = if web.secure_cookies { "; Secure" } else { "" };
        let age = max_age.map(|secs| format!("; Max-Age={secs}")).unwrap_or_default();
        let cookie = format!(
            "{}={value}; Path=/; HttpOnly; SameSite={}{secure}{age}",
            self.name(web),
            self.same_site()
        );
        HeaderValue::from_str(&cookie).expect("cookie values are URL-safe")
    }

    /// A `Set-Cookie` value removing it.
    pub fn clear(self, web: &Web) -> HeaderValue {
        self.set(web, "", Some(0))
    }

    /// Its value in the request's `Cookie` headers.
    pub fn read(self, web: &Web, headers: &HeaderMap) -> Option<String> {
        let name = self.name(web);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
            .filter(|value| !value.is_empty())
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// This browser's CSRF value, for the forms of the page being rendered.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// Gives every page a CSRF value: the cookie's, or a fresh one set on the
/// way out.
pub async fn csrf_cookie(state: AppState, mut request: Request, next: Next) -> Response {
    let existing = Cookie::Csrf.read(&state.web, request.headers());
    let token = existing.clone().unwrap_or_else(random_token);
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    if existing.is_none() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, Cookie::Csrf.set(&state.web, &token, None));
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self(String::new())))
    }
}

/// A form posted from one of our pages: its fields, once its `csrf` field
/// matched this browser's cookie (compared in constant time) and the
/// browser did not say it came from another site.
#[derive(Debug)]
pub struct CheckedForm<T>(pub T);

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CheckedForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let cross_site = request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() == b"cross-site");
        let cookie = Cookie::Csrf.read(&state.web, request.headers());
        let axum::Form(form) = axum::Form::<WithCsrf<T>>::from_request(request, state)
            .await
            .map_err(|_| PageError::bad_form())?;
        match cookie {
            Some(cookie) if !cross_site && constant_time_eq(cookie.as_bytes(), form.csrf.as_bytes()) => {
                Ok(Self(form.fields))
            }
            _ => Err(PageError::csrf()),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a signed-in page's handler needs, extracted in the order the
/// handlers always took it: the state, the request's id, this browser's
/// CSRF value, then the signed-in caller.
#[derive(Debug)]
pub struct Customer {
    pub state: AppState,
    pub request_id: String,
    pub csrf: String,
    pub caller: Caller,
}

impl<S: Send + Sync> FromRequestParts<S> for Customer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Extension(app) = Extension::<AppState>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(crate::extract::RequestId(request_id)) =
            crate::extract::RequestId::from_request_parts(parts, state).await;
        let Ok(CsrfToken(csrf)) = CsrfToken::from_request_parts(parts, state).await;
        let SignedIn(caller) = SignedIn::from_request_parts(parts, state).await?;
        Ok(Self {
            state: app,
            request_id,
            csrf,
            caller,
        })
    }
}

impl Customer {
    /// `message` as a call on the customer's behalf.
    pub fn request<M>(&self, message: M) -> tonic::Request<M> {
        self.state.calls.on_behalf(&self.caller, &self.request_id, message)
    }
}

/// The signed-in customer of a page.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// The caller behind this browser's cookies, refreshing the access token
/// from the session when it expired; `None` when signed out. New cookies
/// to set come back with it.
pub async fn identify(
    state: &AppState,
    request_id: &str,
    headers: &HeaderMap,
) -> Result<(Option<Caller>, Vec<HeaderValue>), PageError> {
    let web = &state.web;
    if let Some(access) = Cookie::Access.read(web, headers) {
        match state
            .authenticator
            .authenticate_header(Some(&format!("Bearer {access}")))
            .await
        {
            Ok(caller) => return Ok((Some(caller), Vec::new())),
            Err(status) if status.code() == tonic::Code::Unavailable => return Err(PageError::from(status)),
            Err(_) => {}
        }
    }
    let Some(session) = Cookie::Session.read(web, headers) else {
        return Ok((None, Vec::new()));
    };
    match refresh(state, request_id, session).await {
        Ok(Some((caller, cookies))) => Ok((Some(caller), cookies)),
        Ok(None) => Ok((None, vec![Cookie::Access.clear(web), Cookie::Session.clear(web)])),
        Err(error) => Err(error),
    }
}

/// Exchanges a session (or a proof) token for a fresh access token; `None`
/// when identity-svc says the session has ended.
pub async fn refresh(
    state: &AppState,
    request_id: &str,
    session_token: String,
) -> Result<Option<(Caller, Vec<HeaderValue>)>, PageError> {
    let request = state
        .calls
        .anonymous(request_id, pb::RefreshWebSessionRequest { session_token });
    match state.identity.clone().refresh_web_session(request).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            let access = answer.login.map(|login| login.access_token).unwrap_or_default();
            let caller = state
                .authenticator
                .authenticate_header(Some(&format!("Bearer {access}")))
                .await
                .map_err(PageError::from)?;
            Ok(Some((
                caller,
                signed_in_cookies(&state.web, &access, &answer.session_token),
            )))
        }
        Err(status) if status.code() == tonic::Code::Unauthenticated => Ok(None),
        Err(status) => Err(PageError::from(status)),
    }
}

/// The cookies of a signed-in browser.
pub fn signed_in_cookies(web: &Web, access_token: &str, session_token: &str) -> Vec<HeaderValue> {
    vec![
        Cookie::Access.set(web, access_token, Some(web.access_max_age)),
        Cookie::Session.set(web, session_token, Some(web.session_max_age)),
    ]
}

/// Guards the signed-in pages: identifies the browser, or sends it to the
/// login page with its session cookies cleared.
pub async fn require_signed_in(Extension(state): Extension<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, |_| true).await
}

/// Guards the admin console: as [`require_signed_in`], and a signed-in
/// customer gets the 403 page, never the page asked for.
pub async fn require_admin(Extension(state): Extension<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Caller::is_admin).await
}

async fn guard(state: AppState, mut request: Request, next: Next, allowed: fn(&Caller) -> bool) -> Response {
    let request_id = super::request_id(request.headers());
    let (caller, cookies) = match identify(&state, &request_id, request.headers()).await {
        Ok(found) => found,
        Err(error) => return error.into_page(&state.web, &request_id),
    };
    let response = match caller {
        Some(caller) if allowed(&caller) => {
            request.extensions_mut().insert(SignedIn(caller));
            next.run(request).await
        }
        Some(_) => PageError::admins_only().into_page(&state.web, &request_id),
        None => Redirect::to("/login").into_response(),
    };
    with_cookies(response, cookies)
}

/// Attaches `cookies` to `response`.
pub fn with_cookies(mut response: Response, cookies: Vec<HeaderValue>) -> Response {
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_values_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
