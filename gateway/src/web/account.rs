//! `/account`: the customer's details and license keys, deactivating the
//! account (seed 000) and erasing it for good (seed 001).

use axum::{Extension, response::Response};
use minijinja::context;
use platform::auth::Caller;
use proto::{identity::v1 as pb, license::v1 as license_pb};
use serde::{Deserialize, Serialize};

use super::{
    PageError,
    login::signed_out,
    session::{CheckedForm, CsrfToken, SignedIn},
};
use crate::{AppState, extract::RequestId};

/// What typing confirms an erasure.
const ERASE_CONFIRMATION: &str = "DELETE";

/// One license key as its owner sees it.
#[derive(Debug, Serialize)]
struct KeyRow {
    key: String,
    kind: &'static str,
    status: &'static str,
    status_class: &'static str,
    expires: String,
}

impl From<license_pb::LicenseKey> for KeyRow {
    fn from(key: license_pb::LicenseKey) -> Self {
        let (status, status_class) = match key.status() {
            license_pb::KeyStatus::Active => ("Active", "active"),
            license_pb::KeyStatus::Disabled => ("Disabled", "disabled"),
            license_pb::KeyStatus::Expired => ("Expired", "expired"),
            license_pb::KeyStatus::Unspecified => ("Unknown", ""),
        };
        let kind = match key.key_type() {
            license_pb::KeyType::Trial => "Trial",
            license_pb::KeyType::Production => "Production",
            license_pb::KeyType::Development => "Development",
            license_pb::KeyType::Unspecified => "Key",
        };
        let expires = key
            .expires_at
            .as_ref()
            .and_then(platform::wire::from_timestamp)
            .map_or_else(
                || "Never (Subscribed)".to_owned(),
                |at| at.format("%b %-d, %Y").to_string(),
            );
        Self {
            key: key.key,
            kind,
            status,
            status_class,
            expires,
        }
    }
}

/// `GET /account`.
pub async fn page(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    SignedIn(caller): SignedIn,
) -> Result<Response, PageError> {
    account_page(&state, &caller, &request_id, &csrf, None).await
}

async fn account_page(
    state: &AppState,
    caller: &Caller,
    request_id: &str,
    csrf: &str,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let me = state
        .identity
        .clone()
        .get_me(state.calls.on_behalf(caller, request_id, pb::GetMeRequest {}))
        .await?
        .into_inner();
    // The page is still useful without the keys: say so instead of failing.
    let keys = state
        .license
        .clone()
        .list_my_keys(
            state
                .calls
                .on_behalf(caller, request_id, license_pb::ListMyKeysRequest {}),
        )
        .await
        .map(|answer| {
            answer
                .into_inner()
                .keys
                .into_iter()
                .map(KeyRow::from)
                .collect::<Vec<_>>()
        });
    if let Err(status) = &keys {
        tracing::warn!(error = %status.message(), "could not list the customer's keys");
    }
    let since = me
        .created_at
        .as_ref()
        .and_then(platform::wire::from_timestamp)
        .map(|at| at.format("%b %-d, %Y").to_string());
    Ok(state.web.render(
        "account.html",
        context! {
            signed_in => true,
            nav => "account",
            csrf,
            error,
            account => context! { email => me.email, since },
            keys_unavailable => keys.is_err(),
            keys => keys.unwrap_or_default(),
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct Deactivation {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

/// "Deactivate account": the account closes and this browser is signed out
/// (every session of the account ends at once).
pub async fn deactivate(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    SignedIn(caller): SignedIn,
    CheckedForm(form): CheckedForm<Deactivation>,
) -> Result<Response, PageError> {
    if form.confirm != "yes" {
        let error = "Tick the box to confirm that you want to deactivate your account.";
        return account_page(&state, &caller, &request_id, &csrf, Some(error)).await;
    }
    let message = pb::DeactivateUserRequest {
        user_id: String::new(),
        reason: pb::DeactivationReason::Self_.into(),
        comment: form.reason.trim().chars().take(500).collect(),
    };
    state
        .identity
        .clone()
        .deactivate_user(state.calls.on_behalf(&caller, &request_id, message))
        .await?;
    let page = state.web.render(
        "message.html",
        context! {
            csrf,
            title => "Your account is deactivated",
            detail => "Your subscription will not renew and your license keys are disabled. Your data is kept: log in at any time to reactivate your account.",
            action_href => "/login",
            action_label => "Back to log in",
        },
    );
    Ok(signed_out(&state, page))
}

#[derive(Debug, Deserialize)]
pub struct Erasure {
    #[serde(default)]
    confirmation: String,
}

/// "Delete my data permanently" (seed 001): only with the word typed.
pub async fn erase(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    SignedIn(caller): SignedIn,
    CheckedForm(form): CheckedForm<Erasure>,
) -> Result<Response, PageError> {
    if form.confirmation.trim() != ERASE_CONFIRMATION {
        let error = "Type DELETE in capital letters to confirm the erasure.";
        return account_page(&state, &caller, &request_id, &csrf, Some(error)).await;
    }
    state
        .identity
        .clone()
        .delete_user(
            state
                .calls
                .on_behalf(&caller, &request_id, pb::DeleteUserRequest::default()),
        )
        .await?;
    let page = state.web.render(
        "message.html",
        context! {
            csrf,
            title => "Your data has been erased",
            detail => "Your account, subscription, license keys and stored emails are gone. A last email confirms it.",
            action_href => "/register",
            action_label => "Create a new account",
        },
    );
    Ok(signed_out(&state, page))
}
