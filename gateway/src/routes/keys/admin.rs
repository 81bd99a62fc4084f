//! The admin key API: list, create, read, edit, disable, reactivate,
//! extend, close the deal, email, history. Managing keys needs the admin
//! role — the gateway checks it first (a clear 403 without a downstream
//! call) and license-svc checks it again; the routes that change a key drop
//! it from this replica's validation cache.

use std::{collections::BTreeMap, future::Future};

use axum::{
    Json,
    extract::{FromRequestParts, Path},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use proto::license::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, IntoResponses, ToSchema,
    openapi::{RefOr, response::Response as Documented},
};

use super::{CustomerInfo, DENIED, KeyData, LicenseKey, customer_to_wire, key_type_from_name, time, unknown_key_type};
use crate::{
    AppState,
    downstream::LicenseClient,
    extract::{Body, OnBehalf, OptionalBody, QueryParams},
    problem::Problem,
    routes::{AdminOnly, problems},
};

/// An admin's call about one key: the call, then which key ([`KeyInPath`],
/// extracted last, as the handlers always took it).
pub(super) struct OnKey {
    on: OnBehalf,
    key: String,
}

impl FromRequestParts<AppState> for OnKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let on = OnBehalf::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(KeyInPath { key }) = Path::<KeyInPath>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self { on, key })
    }
}

impl OnKey {
    #[expect(
        clippy::result_large_err,
        reason = "the refusal is the handler's answer, returned at once: boxing it buys nothing"
    )]
    fn admin_request<M>(&self, message: M) -> Result<tonic::Request<M>, Problem> {
        self.on.admin_request(message)
    }

    /// Makes one change to the key at license-svc on the admin's behalf,
    /// then drops the key from this replica's validation cache — whatever
    /// the answer, since a call that failed on the way back may have
    /// committed.
    async fn change<M, Fut>(
        self,
        message: M,
        call: impl FnOnce(LicenseClient, tonic::Request<M>) -> Fut,
    ) -> Result<Json<KeyData>, Problem>
    where
        Fut: Future<Output = Result<tonic::Response<pb::LicenseKey>, tonic::Status>>,
    {
        let request = self.admin_request(message)?;
        let answer = call(self.on.state.license.clone(), request).await;
        self.on.state.forget_validation(&self.key);
        Ok(Json(answer?.into_inner().into()))
    }
}

/// The key an admin's call is about: the route's path parameter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct KeyInPath {
    /// SK-XXXX-XXXX-XXXX-XXXX
    key: String,
}

/// What an admin's call about one key may answer besides its outcome and
/// its 400, the same on every such route.
pub(super) struct RefusedAboutAKey;

impl IntoResponses for RefusedAboutAKey {
    fn responses() -> BTreeMap<String, RefOr<Documented>> {
        problems(&[
            ("401", "Not authenticated"),
            ("403", "Not an admin"),
            ("404", "License key not found"),
        ])
    }
}

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
        AdminOnly,
    ))]
pub(super) async fn list_keys(
    on: OnBehalf,
    QueryParams(filter): QueryParams<KeyFilter>,
) -> Result<Json<KeyPage>, Problem> {
    on.caller.require_admin()?;
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
    let request = on.request(message);
    let page = on.state.license.clone().list_keys(request).await?.into_inner();
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
        AdminOnly,
    ))]
pub(super) async fn create_key(on: OnBehalf, Body(new): Body<NewKey>) -> Result<(StatusCode, Json<KeyData>), Problem> {
    on.caller.require_admin()?;
    let message = pb::CreateKeyRequest {
        email: new.email,
        owner_user_id: new.owner_user_id.unwrap_or_default(),
        key_type: key_type_from_name(&new.key_type).ok_or_else(unknown_key_type)?.into(),
        trial_days: new.trial_days.unwrap_or_default(),
        features: new.features.into_iter().collect(),
        customer: Some(customer_to_wire(new.customer)),
    };
    let request = on.request(message);
    let key = on.state.license.clone().create_key(request).await?.into_inner();
    // This replica may remember the key as unknown.
    on.state.forget_validation(&key.key);
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// One license key (admin).
#[utoipa::path(get, path = "/api/keys/{key}", tag = "keys", security(("bearer" = [])),
    params(KeyInPath),
    responses(
        (status = 200, description = "The key", body = KeyData),
        (status = 400, description = "A malformed key", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn get_key(on: OnKey) -> Result<Json<KeyData>, Problem> {
    let request = on.admin_request(pb::GetKeyRequest { key: on.key.clone() })?;
    Ok(Json(
        on.on.state.license.clone().get_key(request).await?.into_inner().into(),
    ))
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
    params(KeyInPath),
    request_body = KeyEdit,
    responses(
        (status = 200, description = "The edited key", body = KeyData),
        (status = 400, description = "A malformed key or body", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn update_key(on: OnKey, OptionalBody(edit): OptionalBody<KeyEdit>) -> Result<Json<KeyData>, Problem> {
    let message = pb::UpdateKeyRequest {
        key: on.key.clone(),
        customer: edit.customer.map(customer_to_wire),
        features: edit.features.map(|flags| pb::FeatureFlags {
            flags: flags.into_iter().collect(),
        }),
    };
    on.change(message, |mut license, request| async move {
        license.update_key(request).await
    })
    .await
}

/// Disable a key until it is reactivated (admin).
#[utoipa::path(post, path = "/api/keys/{key}/disable", tag = "keys", security(("bearer" = [])),
    params(KeyInPath),
    responses(
        (status = 200, description = "The disabled key", body = KeyData),
        (status = 400, description = "Already disabled (`KEY_ALREADY_DISABLED`), or a malformed key", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn disable_key(on: OnKey) -> Result<Json<KeyData>, Problem> {
    let message = pb::DisableKeyRequest { key: on.key.clone() };
    on.change(message, |mut license, request| async move {
        license.disable_key(request).await
    })
    .await
}

/// Reactivate a disabled or expired key (admin): a trial runs 7 days from
/// now, any other key has no expiry.
#[utoipa::path(post, path = "/api/keys/{key}/reactivate", tag = "keys", security(("bearer" = [])),
    params(KeyInPath),
    responses(
        (status = 200, description = "The reactivated key", body = KeyData),
        (status = 400, description = "Already active (`KEY_ALREADY_ACTIVE`), the customer's trial periods are used up (`TRIAL_LIMIT_REACHED`), or a malformed key", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn reactivate_key(on: OnKey) -> Result<Json<KeyData>, Problem> {
    let message = pb::ReactivateKeyRequest { key: on.key.clone() };
    on.change(message, |mut license, request| async move {
        license.reactivate_key(request).await
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Extension {
    /// 1 to 3650.
    pub days: u32,
}

/// Move an active key's expiry later (admin).
#[utoipa::path(post, path = "/api/keys/{key}/extend", tag = "keys", security(("bearer" = [])),
    params(KeyInPath),
    request_body = Extension,
    responses(
        (status = 200, description = "The extended key", body = KeyData),
        (status = 400, description = "Disabled, expired or not expiring, or a malformed key or day count", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn extend_key(on: OnKey, Body(extension): Body<Extension>) -> Result<Json<KeyData>, Problem> {
    let message = pb::ExtendKeyRequest {
        key: on.key.clone(),
        days: extension.days,
    };
    on.change(message, |mut license, request| async move {
        license.extend_key(request).await
    })
    .await
}

/// Close the deal: the trial becomes a production key, same key, no expiry (admin).
#[utoipa::path(post, path = "/api/keys/{key}/close-deal", tag = "keys", security(("bearer" = [])),
    params(KeyInPath),
    responses(
        (status = 200, description = "The production key", body = KeyData),
        (status = 400, description = "Not a trial (`KEY_NOT_TRIAL`), disabled, or a malformed key", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn close_deal(on: OnKey) -> Result<Json<KeyData>, Problem> {
    let message = pb::CloseDealRequest { key: on.key.clone() };
    on.change(message, |mut license, request| async move {
        license.close_deal(request).await
    })
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailQueued {
    pub message: String,
}

/// Email the key to its customer (admin). Accepted: it leaves through
/// notify-svc, retried until delivered.
#[utoipa::path(post, path = "/api/keys/{key}/email", tag = "keys", security(("bearer" = [])),
    params(KeyInPath),
    responses(
        (status = 202, description = "The email is on its way", body = EmailQueued),
        (status = 400, description = "Disabled (`KEY_DISABLED`), or a malformed key", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn email_key(on: OnKey) -> Result<(StatusCode, Json<EmailQueued>), Problem> {
    let request = on.admin_request(pb::EmailKeyRequest { key: on.key.clone() })?;
    on.on.state.license.clone().email_key(request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EmailQueued {
            message: "The license key is on its way to the customer.".into(),
        }),
    ))
}

/// One action on a key, in seed 002's shape (`key_value`, `action`,
/// `performed_at`, `details`), with who did it and the trace id.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyHistoryEntry {
    /// `SK-XXXX-XXXX-XXXX-XXXX`
    pub key_value: String,
    /// `created`, `updated`, `extended`, `deal_closed`, `emailed`, `disabled`,
    /// `reactivated`, `suspended`, `restored`.
    pub action: String,
    pub performed_at: Option<DateTime<Utc>>,
    /// The admin's user id, or `service`.
    pub performed_by: String,
    /// `new_expiry`, `key_type`, `was_trial`; for `disabled` and
    /// `suspended`, `reason` (`admin`, `payment`, `account_closed`); …
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
    params(KeyInPath),
    responses(
        (status = 200, description = "The history", body = KeyHistory),
        (status = 400, description = "A malformed key", body = Problem, content_type = DENIED),
        RefusedAboutAKey,
    ))]
pub(super) async fn key_history(on: OnKey) -> Result<Json<KeyHistory>, Problem> {
    let request = on.admin_request(pb::GetKeyHistoryRequest { key: on.key.clone() })?;
    let entries = on
        .on
        .state
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
                key_value: entry.key,
                action: entry.action,
                performed_by: entry.performed_by,
            })
            .collect(),
    }))
}
