//! Request extractors whose refusals are problem+json like every other error.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::request::Parts,
};
use platform::{auth::Caller, error::reason};

use crate::{AppState, problem::Problem};

/// The end client's address as the trusted-proxy rule reads it (the peer,
/// or the `X-Forwarded-For` entry the configured proxies vouch for): the
/// key of every per-client limit.
#[derive(Debug)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        use axum::{extract::ConnectInfo, response::IntoResponse as _};
        let ConnectInfo(peer) = ConnectInfo::<std::net::SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| rejection.into_response())?;
        Ok(Self(state.client_address(&parts.headers, peer)))
    }
}

/// The authenticated caller, from `Authorization: Bearer …`.
#[derive(Debug)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        state
            .authenticator
            .authenticate_header(header)
            .await
            .map(Authenticated)
            .map_err(Problem::from)
    }
}

/// A call made by a signed-in caller: what every handler of such a route
/// needs, extracted in the order the handlers always took it (the state,
/// the request's id, then the caller's token, whose refusal is a 401).
#[derive(Debug)]
pub struct OnBehalf {
    pub state: AppState,
    pub request_id: String,
    pub caller: Caller,
}

impl FromRequestParts<AppState> for OnBehalf {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Ok(RequestId(request_id)) = RequestId::from_request_parts(parts, state).await;
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Self {
            state: state.clone(),
            request_id,
            caller,
        })
    }
}

impl OnBehalf {
    /// `message` as a downstream call on the caller's behalf.
    pub fn request<M>(&self, message: M) -> tonic::Request<M> {
        self.state.calls.on_behalf(&self.caller, &self.request_id, message)
    }

    /// The same, once the caller is known to be an admin: the gateway's
    /// own clear 403, before any downstream call.
    #[expect(
        clippy::result_large_err,
        reason = "the refusal is the handler's answer, returned at once: boxing it buys nothing"
    )]
    pub fn admin_request<M>(&self, message: M) -> Result<tonic::Request<M>, Problem> {
        self.caller.require_admin()?;
        Ok(self.request(message))
    }
}

/// The id of this request (`x-request-id`, set by the gateway when absent).
#[derive(Debug)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        Ok(Self(id.to_owned()))
    }
}

/// A JSON body; malformed JSON is a 400 problem naming what is wrong.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(Problem::new(
                rejection.status(),
                Some(reason::MALFORMED_BODY),
                rejection.body_text(),
            )),
        }
    }
}

/// A JSON body that may be left out entirely (then `T::default()`).
#[derive(Debug)]
pub struct OptionalBody<T>(pub T);

impl<T, S> FromRequest<S> for OptionalBody<T>
where
    T: Default + serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|err| {
            Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                Some(reason::MALFORMED_BODY),
                format!("The request body is not valid JSON for this route: {err}"),
            )
        })
    }
}

/// The body as sent, within the route's size limit (413 beyond).
#[derive(Debug)]
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| Problem::new(rejection.status(), Some(reason::MALFORMED_BODY), rejection.body_text()))
    }
}

/// The query string; a malformed one is a 400 problem naming what is wrong.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| Problem::new(rejection.status(), Some(reason::MALFORMED_QUERY), rejection.body_text()))
    }
}
