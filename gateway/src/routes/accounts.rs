//! Self-service account routes: register, log in, see yourself, deactivate
//! (seeds 000 and 001).

use axum::{Json, extract::State, http::StatusCode};
use proto::{billing::v1 as billing, identity::v1 as pb};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AccountChanged, SignedInOnly, User};
use crate::{
    AppState,
    extract::{Body, ClientAddress, OnBehalf, OptionalBody, RequestId},
    problem::Problem,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(deactivate_user))
        .routes(routes!(cancel_account))
        .routes(routes!(delete_user))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user: User,
}

/// Create an account.
#[utoipa::path(post, path = "/register", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, description = "The account was created", body = Registered),
        (status = 400, description = "Malformed email or weak password; `invalid_params` names the field", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is already registered", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Body(credentials): Body<Credentials>,
) -> Result<(StatusCode, Json<Registered>), Problem> {
    let request = state.calls.anonymous(
        &request_id,
        pb::RegisterRequest {
            email: credentials.email,
            password: credentials.password,
        },
    );
    let user = state.identity.clone().register(request).await?.into_inner().user;
    let user = user.ok_or_else(|| Problem::from(tonic::Status::internal("register returned no user")))?;
    Ok((StatusCode::CREATED, Json(Registered { user: user.into() })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedIn {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u32,
    pub user: User,
    /// `choose_plan` when the customer left and holds no plan (seed 004):
    /// the client shows the plans, with the welcome-back offer when there is
    /// one. Absent when there is nothing to do — or when billing could not
    /// answer in time (the login succeeds all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_action: Option<String>,
    /// The welcome-back offer waiting for a returning customer, per billing
    /// period; absent when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub welcome_back_offer: Option<Vec<WelcomeBackOffer>>,
}

/// The welcome-back offer for one billing period.
#[derive(Debug, Serialize, ToSchema)]
pub struct WelcomeBackOffer {
    /// `monthly` or `annual`.
    pub billing_period: String,
    /// The Stripe coupon checkout applies by itself, e.g. `PR_WELCOME_BACK_MONTHLY`.
    pub coupon: String,
    /// Off the first payment: 50 (monthly) or 20 (annual).
    pub percent_off: i64,
}

/// How long login waits for billing's word on what the customer must do.
const STANDING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What billing says the customer who just logged in must do; `None` when
/// billing cannot answer in time — login never fails for it.
async fn standing(state: &AppState, request_id: &str, token: &str) -> Option<billing::Standing> {
    let mut request = state.calls.anonymous(request_id, billing::GetStandingRequest {});
    request.set_timeout(STANDING_TIMEOUT.min(state.calls.timeout));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().ok()?);
    let mut billing = state.billing.clone();
    match tokio::time::timeout(STANDING_TIMEOUT, billing.get_standing(request)).await {
        Ok(Ok(standing)) => Some(standing.into_inner()),
        Ok(Err(status)) => {
            tracing::warn!(code = ?status.code(), "billing did not say what the customer must do; login goes on");
            None
        }
        Err(_) => {
            tracing::warn!("billing took too long to say what the customer must do; login goes on");
            None
        }
    }
}

/// Log in with email and password.
///
/// An inactive account is refused with 403 and reason `ACCOUNT_INACTIVE`
/// ("Your account is inactive. Would you like to reactivate it?"); an unknown
/// email and a wrong password get the same 401.
#[utoipa::path(post, path = "/login", tag = "accounts", request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = LoggedIn),
        (status = 401, description = "Unknown email or wrong password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The account is inactive (reason `ACCOUNT_INACTIVE`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address (reason `RATE_LIMITED`), or too many logins at once (reason `BUSY`); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddress(client_address): ClientAddress,
    Body(credentials): Body<Credentials>,
) -> Result<Json<LoggedIn>, Problem> {
    let request = state.calls.anonymous(
        &request_id,
        pb::LoginRequest {
            email: credentials.email,
            password: credentials.password,
            client_address,
        },
    );
    let session = state.identity.clone().login(request).await?.into_inner();
    let user = session
        .user
        .ok_or_else(|| Problem::from(tonic::Status::internal("login returned no user")))?;
    let standing = standing(&state, &request_id, &session.access_token).await;
    let requires_action = standing
        .as_ref()
        .map(|standing| standing.requires_action.clone())
        .filter(|action| !action.is_empty());
    let welcome_back_offer = standing
        .filter(|standing| standing.welcome_back_eligible)
        .map(|standing| {
            standing
                .welcome_back_offers
                .iter()
                .map(|offer| WelcomeBackOffer {
                    billing_period: match offer.billing_period() {
                        billing::BillingPeriod::Annual => "annual",
                        _ => "monthly",
                    }
                    .to_owned(),
                    coupon: offer.coupon.clone(),
                    percent_off: offer.percent_off,
                })
                .collect()
        });
    Ok(Json(LoggedIn {
        access_token: session.access_token,
        token_type: session.token_type,
        expires_in: session.expires_in,
        user: user.into(),
        requires_action,
        welcome_back_offer,
    }))
}

/// The caller's own account.
#[utoipa::path(get, path = "/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = User),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(on: OnBehalf) -> Result<Json<User>, Problem> {
    let request = on.request(pb::GetMeRequest {});
    let user = on.state.identity.clone().get_me(request).await?.into_inner();
    Ok(Json(user.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeactivateUser {
    /// Whose account; default the caller's own. Another account needs admin.
    pub user_id: Option<String>,
    /// `self` (default), or — admin only — `admin`, `nonpayment`, `fraud`.
    pub reason: Option<String>,
    /// Why the customer is leaving, kept as `last_cancellation_reason`.
    pub comment: Option<String>,
}

/// Deactivate an account (your own, or any as admin).
///
/// The account's data is kept and every existing session ends at once.
#[utoipa::path(post, path = "/deactivate_user", tag = "accounts", security(("bearer" = [])),
    request_body(content = DeactivateUser, description = "All fields optional; an empty body deactivates the caller"),
    responses(
        (status = 200, description = "Deactivated", body = AccountChanged),
        (status = 400, description = "Already inactive, or a malformed field", body = Problem, content_type = "application/problem+json"),
        SignedInOnly,
        (status = 403, description = "Another account or reason without the admin role", body = Problem, content_type = "application/problem+json"),
    ))]
async fn deactivate_user(
    on: OnBehalf,
    OptionalBody(body): OptionalBody<DeactivateUser>,
) -> Result<Json<AccountChanged>, Problem> {
    let reason = match body.reason.as_deref().map(str::trim) {
        None | Some("") => pb::DeactivationReason::Unspecified,
        Some("self") => pb::DeactivationReason::Self_,
        Some("admin") => pb::DeactivationReason::Admin,
        Some("nonpayment") => pb::DeactivationReason::Nonpayment,
        Some("fraud") => pb::DeactivationReason::Fraud,
        Some(_) => {
            return Err(Problem::invalid_field(
                "reason",
                "reason must be one of self, admin, nonpayment, fraud",
            ));
        }
    };
    let message = pb::DeactivateUserRequest {
        user_id: body.user_id.unwrap_or_default(),
        reason: reason.into(),
        comment: body.comment.unwrap_or_default(),
    };
    deactivate(&on, message, "The account has been deactivated.").await
}

/// Deactivates an account at identity-svc and says so with `message`.
async fn deactivate(
    on: &OnBehalf,
    request: pb::DeactivateUserRequest,
    message: &str,
) -> Result<Json<AccountChanged>, Problem> {
    let user = on
        .state
        .identity
        .clone()
        .deactivate_user(on.request(request))
        .await?
        .into_inner();
    Ok(Json(AccountChanged {
        message: message.into(),
        user: user.into(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CancelAccount {
    /// Why the customer is leaving, kept as `last_cancellation_reason`.
    pub reason: Option<String>,
}

/// Cancel your account (seed 004): the subscription stops renewing, product
/// access ends, and the account is deactivated.
///
/// Data is kept; every session ends at once. Coming back (a reactivation
/// link) restores the account, not the subscription: buying a plan again
/// comes with the welcome-back offer.
#[utoipa::path(post, path = "/api/cancel-account", tag = "accounts", security(("bearer" = [])),
    request_body(content = CancelAccount, description = "Optional"),
    responses(
        (status = 200, description = "Cancelled; the subscription and keys follow within moments", body = AccountChanged),
        (status = 400, description = "Already inactive", body = Problem, content_type = "application/problem+json"),
        SignedInOnly,
    ))]
async fn cancel_account(
    on: OnBehalf,
    OptionalBody(body): OptionalBody<CancelAccount>,
) -> Result<Json<AccountChanged>, Problem> {
    let message = pb::DeactivateUserRequest {
        user_id: String::new(),
        reason: pb::DeactivationReason::Self_.into(),
        comment: body.reason.unwrap_or_default(),
    };
    deactivate(
        &on,
        message,
        "Your account has been cancelled. Your subscription will not renew.",
    )
    .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeleteUser {
    /// Whose account; default the caller's own. Another account needs admin.
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    pub message: String,
    /// The erasure record that remains (no personal data).
    pub erasure_id: String,
    pub erased_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Erase an account (your own, or any as admin): immediately and for good.
///
/// The account, its subscription (and the customer at Stripe), its license
/// keys and its stored emails are deleted in every service; a record of the
/// erasure without personal data remains, and a last email confirms it.
#[utoipa::path(post, path = "/delete_user", tag = "accounts", security(("bearer" = [])),
    request_body(content = DeleteUser, description = "Optional; an empty body erases the caller"),
    responses(
        (status = 200, description = "Erased", body = Erased),
        SignedInOnly,
        (status = 403, description = "Another account without the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_user(on: OnBehalf, OptionalBody(body): OptionalBody<DeleteUser>) -> Result<Json<Erased>, Problem> {
    let message = pb::DeleteUserRequest {
        user_id: body.user_id.unwrap_or_default(),
    };
    let request = on.request(message);
    let erased = on.state.identity.clone().delete_user(request).await?.into_inner();
    Ok(Json(Erased {
        message: "The account and its data have been erased.".into(),
        erasure_id: erased.erasure_id,
        erased_at: erased.erased_at.as_ref().and_then(platform::wire::from_timestamp),
    }))
}
