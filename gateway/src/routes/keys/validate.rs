//! The public validation hot path: whether a key is valid now, rate
//! limited per client, and answered from the gateway's cache of recent
//! validations when it can be trusted ([`crate::validation_cache`]).

use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, Method},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use platform::{
    error::{Refusal, reason},
    license_key,
};
use proto::license::v1 as pb;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use utoipa::ToSchema;

use super::{DENIED, key_type_name, status_name, time};
use crate::{
    AppState,
    extract::{Body, ClientAddress, RequestId},
    problem::Problem,
    validation_cache::{Cache, Lookup, Ticket},
};

/// The public validation route (also named in its `utoipa::path`).
pub const VALIDATE_PATH: &str = "/api/keys/validate";

/// RFC 9211: how a cache along the way handled the request.
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyToValidate {
    pub key: String,
}

/// Whether a key is valid now, and what it unlocks.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub valid: bool,
    /// `ACTIVE`, `DISABLED` or `EXPIRED`.
    pub status: &'static str,
    pub key_type: &'static str,
    pub expires_at: Option<DateTime<Utc>>,
    pub features: BTreeMap<String, bool>,
}

impl Validation {
    /// This answer as it stands at `now`: a key that was active is expired
    /// once its expiry has passed (license-svc's rule, applied to a
    /// remembered answer).
    fn at(&self, now: DateTime<Utc>) -> Cow<'_, Self> {
        let expired = self.status == status_name(pb::KeyStatus::Active)
            && platform::license_key::has_expired(self.expires_at, now);
        if expired {
            Cow::Owned(Self {
                valid: false,
                status: status_name(pb::KeyStatus::Expired),
                ..self.clone()
            })
        } else {
            Cow::Borrowed(self)
        }
    }
}

impl From<pb::ValidateKeyResponse> for Validation {
    fn from(answer: pb::ValidateKeyResponse) -> Self {
        Self {
            valid: answer.valid,
            status: status_name(answer.status()),
            key_type: key_type_name(answer.key_type()),
            expires_at: time(answer.expires_at.as_ref()),
            features: answer.features.into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationData {
    pub data: Validation,
}

/// `{"data": …}` around a borrowed validation, so a cached one is answered
/// without being copied.
#[derive(Serialize)]
struct ValidationDataRef<'a> {
    data: &'a Validation,
}

/// license-svc's answer to "is this key valid?", as the gateway remembers it.
#[derive(Debug, Clone)]
pub enum Answer {
    Found(Arc<Validation>),
    /// The key does not exist (yet: its creation is announced like any change).
    NotFound(Problem),
}

/// Recent validations, by key.
pub type ValidationCache = Cache<Answer>;

/// How the answer was come by, as an RFC 9211 `Cache-Status` value.
const CACHE_HIT: &str = "gateway; hit";
const CACHE_MISS_STORED: &str = "gateway; fwd=miss; stored";
const CACHE_MISS: &str = "gateway; fwd=miss";
const CACHE_BYPASS: &str = "gateway; fwd=bypass";

impl Answer {
    fn respond(&self, now: DateTime<Utc>, cache_status: Option<&'static str>) -> Response {
        let mut response = match self {
            Answer::Found(validation) => Json(ValidationDataRef {
                data: &validation.at(now),
            })
            .into_response(),
            Answer::NotFound(problem) => problem.clone().into_response(),
        };
        if let Some(cache_status) = cache_status {
            response
                .headers_mut()
                .insert(CACHE_STATUS, HeaderValue::from_static(cache_status));
        }
        response
    }
}

/// Asks license-svc, within `span`. An unknown key is an answer too; any
/// other refusal or failure is not, and is never remembered.
async fn ask(
    state: &AppState,
    request_id: &str,
    span: tracing::Span,
    key: &license_key::LicenseKey,
) -> Result<Answer, Problem> {
    let request = state
        .calls
        .anonymous(request_id, pb::ValidateKeyRequest { key: key.to_string() });
    let answer = state.license.clone().validate_key(request).instrument(span).await;
    match answer {
        Ok(answer) => Ok(Answer::Found(Arc::new(answer.into_inner().into()))),
        Err(status)
            if status.code() == tonic::Code::NotFound
                && platform::error::reason_of(&status).as_deref() == Some(reason::KEY_NOT_FOUND) =>
        {
            Ok(Answer::NotFound(status.into()))
        }
        Err(status) => Err(status.into()),
    }
}

/// Validate a license key (public; rate limited per client).
///
/// Answers may come from the gateway's memory of recent validations; the
/// `Cache-Status` header (RFC 9211) says whether one did. A change to a key
/// is seen at once by the gateway that made it and within moments by every
/// other.
#[utoipa::path(post, path = "/api/keys/validate", tag = "keys", request_body = KeyToValidate,
    responses(
        (status = 200, description = "The key exists: whether it is valid now", body = ValidationData,
            headers(("cache-status" = String, description = "RFC 9211: `gateway; hit` when answered from the gateway's memory"))),
        (status = 400, description = "A malformed key", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED,
            headers(("cache-status" = String, description = "RFC 9211: `gateway; hit` when answered from the gateway's memory"))),
        (status = 429, description = "Too many validations from this client; see `Retry-After`", body = Problem, content_type = DENIED),
    ))]
pub(super) async fn validate_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Body(body): Body<KeyToValidate>,
) -> Result<Response, Problem> {
    if !state.validate_limiter.allow(&client) {
        return Err(Problem::rate_limited(
            "Too many license validations. Please wait a moment.",
            1,
        ));
    }
    // license-svc's own refusal, made here so a malformed key never
    // reaches the cache.
    let key = license_key::LicenseKey::parse(&body.key)
        .map_err(|message| Problem::from(Refusal::invalid_field("key", message)))?;
    // The route has no span of its own (see `request_span`): a call to
    // license-svc gets one, continuing the caller's trace.
    let span = || platform::telemetry::server_span_of(&Method::POST, VALIDATE_PATH, &headers);
    let Some(cache) = &state.validations else {
        return Ok(ask(&state, &request_id, span(), &key)
            .await?
            .respond(state.clock.now(), None));
    };
    let lookup = cache.lookup(key.as_str());
    let outcome = match &lookup {
        Lookup::Hit { .. } => "hit",
        Lookup::Miss(_) => "miss",
        Lookup::Bypass => "bypass",
    };
    platform::metrics::metrics()
        .validation_cache
        .get_or_create(&platform::metrics::OutcomeLabels { outcome })
        .inc();
    let (answer, cache_status) = match lookup {
        Lookup::Hit { value, refresh } => {
            if let Some(ticket) = refresh {
                refresh_in_background(&state, cache, request_id, key, ticket);
            }
            (value, CACHE_HIT)
        }
        Lookup::Miss(ticket) => {
            let answer = ask(&state, &request_id, span(), &key).await?;
            let stored = cache.store(ticket, answer.clone());
            (answer, if stored { CACHE_MISS_STORED } else { CACHE_MISS })
        }
        Lookup::Bypass => (ask(&state, &request_id, span(), &key).await?, CACHE_BYPASS),
    };
    Ok(answer.respond(state.clock.now(), Some(cache_status)))
}

/// Asks license-svc again about a cached key past its refresh age, without
/// making the request that noticed wait. Background work: no trace.
fn refresh_in_background(
    state: &AppState,
    cache: &ValidationCache,
    request_id: String,
    key: license_key::LicenseKey,
    ticket: Ticket,
) {
    let state = state.clone();
    let cache = cache.clone();
    tokio::spawn(async move {
        // A failure leaves the entry to age out; the next miss asks again.
        if let Ok(answer) = ask(&state, &request_id, tracing::Span::none(), &key).await {
            cache.store(ticket, answer);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_validation_route_is_where_its_span_exception_looks_for_it() {
        assert!(crate::openapi().paths.paths.contains_key(super::VALIDATE_PATH));
    }
}
