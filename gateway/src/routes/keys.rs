//! License key routes (seed 002). Managing keys needs the admin role — the
//! gateway checks it first (a clear 403 without a downstream call) and
//! license-svc checks it again; validating a key is public and rate
//! limited per client, and answered from the gateway's cache of recent
//! validations when it can be trusted ([`crate::validation_cache`]); the
//! routes that change a key drop it from that cache. Bodies are camelCase,
//! answers `{"data": …}`, as the seed shows them.

use std::{borrow::Cow, collections::BTreeMap, future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Json,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use platform::{auth::Caller, error::Refusal, license_key};
use proto::license::v1 as pb;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    downstream::LicenseClient,
    extract::{Authenticated, Body, OptionalBody, RequestId},
    problem::Problem,
    validation_cache::{Cache, Lookup, Ticket},
};

/// The public validation route (also named in its `utoipa::path`).
pub const VALIDATE_PATH: &str = "/api/keys/validate";

/// RFC 9211: how a cache along the way handled the request.
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, update_key))
        .routes(routes!(disable_key))
        .routes(routes!(reactivate_key))
        .routes(routes!(extend_key))
        .routes(routes!(close_deal))
        .routes(routes!(email_key))
        .routes(routes!(key_history))
        .routes(routes!(validate_key))
}

/// Who the key was sold to.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomerInfo {
    pub name: String,
    pub company: String,
    pub notes: String,
}

/// A license key as the REST API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseKey {
    /// `SK-XXXX-XXXX-XXXX-XXXX`
    pub key: String,
    pub email: String,
    pub owner_user_id: Option<String>,
    /// `trial`, `production` or `development`.
    pub key_type: String,
    pub is_trial: bool,
    /// Null: no expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set while disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    /// `ACTIVE`, `DISABLED` or `EXPIRED`, now.
    pub status: String,
    pub features: BTreeMap<String, bool>,
    pub customer: CustomerInfo,
}

fn time(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    at.and_then(platform::wire::from_timestamp)
}

fn key_type_name(key_type: pb::KeyType) -> &'static str {
    match key_type {
        pb::KeyType::Unspecified => "unspecified",
        pb::KeyType::Trial => "trial",
        pb::KeyType::Production => "production",
        pb::KeyType::Development => "development",
    }
}

fn status_name(status: pb::KeyStatus) -> &'static str {
    match status {
        pb::KeyStatus::Unspecified => "UNSPECIFIED",
        pb::KeyStatus::Active => "ACTIVE",
        pb::KeyStatus::Disabled => "DISABLED",
        pb::KeyStatus::Expired => "EXPIRED",
    }
}

fn key_type_from_name(name: &str) -> Option<pb::KeyType> {
    match name.trim().to_ascii_lowercase().as_str() {
        "trial" => Some(pb::KeyType::Trial),
        "production" => Some(pb::KeyType::Production),
        "development" => Some(pb::KeyType::Development),
        _ => None,
    }
}

fn unknown_key_type() -> Problem {
    Problem::invalid_field("keyType", "must be trial, production or development")
}

impl From<pb::LicenseKey> for LicenseKey {
    fn from(key: pb::LicenseKey) -> Self {
        let customer = key.customer.clone().unwrap_or_default();
        Self {
            key_type: key_type_name(key.key_type()).to_owned(),
            status: status_name(key.status()).to_owned(),
            expires_at: time(key.expires_at.as_ref()),
            disabled_at: time(key.disabled_at.as_ref()),
            created_at: time(key.created_at.as_ref()),
            owner_user_id: Some(key.owner_user_id).filter(|id| !id.is_empty()),
            features: key.features.into_iter().collect(),
            customer: CustomerInfo {
                name: customer.name,
                company: customer.company,
                notes: customer.notes,
            },
            key: key.key,
            email: key.email,
            is_trial: key.is_trial,
        }
    }
}

fn customer_to_wire(customer: CustomerInfo) -> pb::CustomerInfo {
    pb::CustomerInfo {
        name: customer.name,
        company: customer.company,
        notes: customer.notes,
    }
}

/// `{"data": key}`
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyData {
    pub data: LicenseKey,
}

impl From<pb::LicenseKey> for KeyData {
    fn from(key: pb::LicenseKey) -> Self {
        Self { data: key.into() }
    }
}

/// The gateway's own refusal of a non-admin, before any downstream call.
fn denied(refusal: platform::error::Refusal) -> Problem {
    Problem::from(tonic::Status::from(refusal))
}

/// Makes one change to `key` at license-svc on the admin's behalf, then
/// drops the key from this replica's validation cache — whatever the
/// answer, since a call that failed on the way back may have committed.
async fn change_key<M, Fut>(
    state: &AppState,
    caller: &Caller,
    request_id: &str,
    key: &str,
    message: M,
    call: impl FnOnce(LicenseClient, tonic::Request<M>) -> Fut,
) -> Result<Json<KeyData>, Problem>
where
    Fut: Future<Output = Result<tonic::Response<pb::LicenseKey>, tonic::Status>>,
{
    caller.require_admin().map_err(denied)?;
    let request = state.calls.on_behalf(caller, request_id, message);
    let answer = call(state.license.clone(), request).await;
    state.forget_validation(key);
    Ok(Json(answer?.into_inner().into()))
}

const DENIED: &str = "application/problem+json";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct KeyFilter {
    /// Only this customer's keys.
    pub email: Option<String>,
    /// `ACTIVE`, `DISABLED` or `EXPIRED`.
    pub status: Option<String>,
    /// `trial`, `production` or `development`.
    pub key_type: Option<String>,
    /// Default 50, at most 200.
    pub page_size: Option<u32>,
    /// `nextPageToken` of the previous page.
    pub page_token: Option<String>,
}

/// A page of keys, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyPage {
    pub data: Vec<LicenseKey>,
    /// Absent on the last page.
    pub next_page_token: Option<String>,
}

/// List license keys (admin).
#[utoipa::path(get, path = "/api/keys", tag = "keys", security(("bearer" = [])), params(KeyFilter),
    responses(
        (status = 200, description = "A page of keys", body = KeyPage),
        (status = 400, description = "A malformed filter or page token", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
    ))]
async fn list_keys(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Query(filter): Query<KeyFilter>,
) -> Result<Json<KeyPage>, Problem> {
    caller.require_admin().map_err(denied)?;
    let status = match filter
        .status
        .as_deref()
        .map(|status| status.trim().to_ascii_uppercase())
    {
        None => pb::KeyStatus::Unspecified,
        Some(status) if status.is_empty() => pb::KeyStatus::Unspecified,
        Some(status) => match status.as_str() {
            "ACTIVE" => pb::KeyStatus::Active,
            "DISABLED" => pb::KeyStatus::Disabled,
            "EXPIRED" => pb::KeyStatus::Expired,
            _ => return Err(Problem::invalid_field("status", "must be ACTIVE, DISABLED or EXPIRED")),
        },
    };
    let key_type = match filter.key_type.as_deref().filter(|name| !name.trim().is_empty()) {
        None => pb::KeyType::Unspecified,
        Some(name) => key_type_from_name(name).ok_or_else(unknown_key_type)?,
    };
    let message = pb::ListKeysRequest {
        email: filter.email.unwrap_or_default(),
        status: status.into(),
        key_type: key_type.into(),
        page_size: filter.page_size.unwrap_or_default(),
        page_token: filter.page_token.unwrap_or_default(),
    };
    let request = state.calls.on_behalf(&caller, &request_id, message);
    let page = state.license.clone().list_keys(request).await?.into_inner();
    Ok(Json(KeyPage {
        data: page.keys.into_iter().map(Into::into).collect(),
        next_page_token: Some(page.next_page_token).filter(|token| !token.is_empty()),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewKey {
    pub email: String,
    /// `trial`, `production` or `development`.
    pub key_type: String,
    /// The customer's account, when known.
    pub owner_user_id: Option<String>,
    /// Trial only; default 14.
    pub trial_days: Option<u32>,
    #[serde(default)]
    pub features: BTreeMap<String, bool>,
    #[serde(default)]
    pub customer: CustomerInfo,
}

/// Create a license key (admin). A trial expires after `trialDays` (default 14).
#[utoipa::path(post, path = "/api/keys", tag = "keys", security(("bearer" = [])), request_body = NewKey,
    responses(
        (status = 201, description = "The new key", body = KeyData),
        (status = 400, description = "A malformed field, or the customer's trial periods are used up (`TRIAL_LIMIT_REACHED`)", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
    ))]
async fn create_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Body(new): Body<NewKey>,
) -> Result<(StatusCode, Json<KeyData>), Problem> {
    caller.require_admin().map_err(denied)?;
    let message = pb::CreateKeyRequest {
        email: new.email,
        owner_user_id: new.owner_user_id.unwrap_or_default(),
        key_type: key_type_from_name(&new.key_type).ok_or_else(unknown_key_type)?.into(),
        trial_days: new.trial_days.unwrap_or_default(),
        features: new.features.into_iter().collect(),
        customer: Some(customer_to_wire(new.customer)),
    };
    let request = state.calls.on_behalf(&caller, &request_id, message);
    let key = state.license.clone().create_key(request).await?.into_inner();
    // This replica may remember the key as unknown.
    state.forget_validation(&key.key);
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// One license key (admin).
#[utoipa::path(get, path = "/api/keys/{key}", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    responses(
        (status = 200, description = "The key", body = KeyData),
        (status = 400, description = "A malformed key", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn get_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
) -> Result<Json<KeyData>, Problem> {
    caller.require_admin().map_err(denied)?;
    let request = state.calls.on_behalf(&caller, &request_id, pb::GetKeyRequest { key });
    Ok(Json(state.license.clone().get_key(request).await?.into_inner().into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyEdit {
    /// Replaces the stored customer info when present.
    pub customer: Option<CustomerInfo>,
    /// Replaces the stored feature flags when present.
    pub features: Option<BTreeMap<String, bool>>,
}

/// Edit a key's customer info and feature flags (admin).
#[utoipa::path(patch, path = "/api/keys/{key}", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    request_body = KeyEdit,
    responses(
        (status = 200, description = "The edited key", body = KeyData),
        (status = 400, description = "A malformed key or body", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn update_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
    OptionalBody(edit): OptionalBody<KeyEdit>,
) -> Result<Json<KeyData>, Problem> {
    let message = pb::UpdateKeyRequest {
        key: key.clone(),
        customer: edit.customer.map(customer_to_wire),
        features: edit.features.map(|flags| pb::FeatureFlags {
            flags: flags.into_iter().collect(),
        }),
    };
    change_key(
        &state,
        &caller,
        &request_id,
        &key,
        message,
        |mut license, request| async move { license.update_key(request).await },
    )
    .await
}

/// Disable a key until it is reactivated (admin).
#[utoipa::path(post, path = "/api/keys/{key}/disable", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    responses(
        (status = 200, description = "The disabled key", body = KeyData),
        (status = 400, description = "Already disabled (`KEY_ALREADY_DISABLED`), or a malformed key", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn disable_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
) -> Result<Json<KeyData>, Problem> {
    let message = pb::DisableKeyRequest { key: key.clone() };
    change_key(
        &state,
        &caller,
        &request_id,
        &key,
        message,
        |mut license, request| async move { license.disable_key(request).await },
    )
    .await
}

/// Reactivate a disabled or expired key (admin): a trial runs 7 days from
/// now, any other key has no expiry.
#[utoipa::path(post, path = "/api/keys/{key}/reactivate", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    responses(
        (status = 200, description = "The reactivated key", body = KeyData),
        (status = 400, description = "Already active (`KEY_ALREADY_ACTIVE`), the customer's trial periods are used up (`TRIAL_LIMIT_REACHED`), or a malformed key", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn reactivate_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
) -> Result<Json<KeyData>, Problem> {
    let message = pb::ReactivateKeyRequest { key: key.clone() };
    change_key(
        &state,
        &caller,
        &request_id,
        &key,
        message,
        |mut license, request| async move { license.reactivate_key(request).await },
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Extension {
    /// 1 to 3650.
    pub days: u32,
}

/// Move an active key's expiry later (admin).
#[utoipa::path(post, path = "/api/keys/{key}/extend", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    request_body = Extension,
    responses(
        (status = 200, description = "The extended key", body = KeyData),
        (status = 400, description = "Disabled, expired or not expiring, or a malformed key or day count", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn extend_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
    Body(extension): Body<Extension>,
) -> Result<Json<KeyData>, Problem> {
    let message = pb::ExtendKeyRequest {
        key: key.clone(),
        days: extension.days,
    };
    change_key(
        &state,
        &caller,
        &request_id,
        &key,
        message,
        |mut license, request| async move { license.extend_key(request).await },
    )
    .await
}

/// Close the deal: the trial becomes a production key, same key, no expiry (admin).
#[utoipa::path(post, path = "/api/keys/{key}/close-deal", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    responses(
        (status = 200, description = "The production key", body = KeyData),
        (status = 400, description = "Not a trial (`KEY_NOT_TRIAL`), disabled, or a malformed key", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn close_deal(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
) -> Result<Json<KeyData>, Problem> {
    let message = pb::CloseDealRequest { key: key.clone() };
    change_key(
        &state,
        &caller,
        &request_id,
        &key,
        message,
        |mut license, request| async move { license.close_deal(request).await },
    )
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailQueued {
    pub message: String,
}

/// Email the key to its customer (admin). Accepted: it leaves through
/// notify-svc, retried until delivered.
#[utoipa::path(post, path = "/api/keys/{key}/email", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    responses(
        (status = 202, description = "The email is on its way", body = EmailQueued),
        (status = 400, description = "Disabled (`KEY_DISABLED`), or a malformed key", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn email_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<EmailQueued>), Problem> {
    caller.require_admin().map_err(denied)?;
    let request = state.calls.on_behalf(&caller, &request_id, pb::EmailKeyRequest { key });
    state.license.clone().email_key(request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EmailQueued {
            message: "The license key is on its way to the customer.".into(),
        }),
    ))
}

/// One action on a key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyHistoryEntry {
    pub key: String,
    /// `created`, `updated`, `extended`, `deal_closed`, `emailed`, `disabled`,
    /// `reactivated`, `suspended`, `restored`.
    pub action: String,
    pub performed_at: Option<DateTime<Utc>>,
    /// The admin's user id, or `service`.
    pub performed_by: String,
    /// `new_expiry`, `key_type`, `was_trial`, …
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// W3C trace id of the request that caused it.
    pub trace_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyHistory {
    pub data: Vec<KeyHistoryEntry>,
}

/// A key's history, oldest first (admin).
#[utoipa::path(get, path = "/api/keys/{key}/history", tag = "keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "SK-XXXX-XXXX-XXXX-XXXX")),
    responses(
        (status = 200, description = "The history", body = KeyHistory),
        (status = 400, description = "A malformed key", body = Problem, content_type = DENIED),
        (status = 401, description = "Not authenticated", body = Problem, content_type = DENIED),
        (status = 403, description = "Not an admin", body = Problem, content_type = DENIED),
        (status = 404, description = "License key not found", body = Problem, content_type = DENIED),
    ))]
async fn key_history(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
) -> Result<Json<KeyHistory>, Problem> {
    caller.require_admin().map_err(denied)?;
    let request = state
        .calls
        .on_behalf(&caller, &request_id, pb::GetKeyHistoryRequest { key });
    let entries = state
        .license
        .clone()
        .get_key_history(request)
        .await?
        .into_inner()
        .entries;
    Ok(Json(KeyHistory {
        data: entries
            .into_iter()
            .map(|entry| KeyHistoryEntry {
                performed_at: time(entry.performed_at.as_ref()),
                details: serde_json::from_str(&entry.details_json).unwrap_or(serde_json::Value::Null),
                trace_id: Some(entry.trace_id).filter(|id| !id.is_empty()),
                key: entry.key,
                action: entry.action,
                performed_by: entry.performed_by,
            })
            .collect(),
    }))
}

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
        let expired =
            self.status == status_name(pb::KeyStatus::Active) && self.expires_at.is_some_and(|expiry| expiry <= now);
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
                && platform::error::reason_of(&status).as_deref() == Some("KEY_NOT_FOUND") =>
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
async fn validate_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<KeyToValidate>,
) -> Result<Response, Problem> {
    if !state.validate_limiter.allow(&state.client_address(&headers, peer)) {
        return Err(Problem::rate_limited(
            "Too many license validations. Please wait a moment.",
            1,
        ));
    }
    // license-svc's own refusal, made here so a malformed key never
    // reaches the cache.
    let key = license_key::LicenseKey::parse(&body.key)
        .map_err(|message| Problem::from(tonic::Status::from(Refusal::invalid_field("key", message))))?;
    // The route has no span of its own (see `request_span`): a call to
    // license-svc gets one, continuing the caller's trace.
    let span = || platform::telemetry::server_span_of(&Method::POST, VALIDATE_PATH, &headers);
    let Some(cache) = &state.validations else {
        return Ok(ask(&state, &request_id, span(), &key)
            .await?
            .respond(state.clock.now(), None));
    };
    let (answer, cache_status) = match cache.lookup(key.as_str()) {
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
