//! Support staff's routes. Each needs the admin role; the gateway checks it
//! first (a clear 403 without a downstream call) and the service checks it
//! again.

use axum::{Json, extract::Path};
use proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AccountChanged, AdminOnly, User};
use crate::{
    AppState,
    extract::{OnBehalf, OptionalBody, QueryParams},
    problem::Problem,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reactivate_user))
        .routes(routes!(account_events))
        .routes(routes!(find_users))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// The whole address, or its beginning with `prefix=true`; compared
    /// case-insensitively, every character literally. Required, at most 254
    /// characters.
    pub email: Option<String>,
    /// `true`: every account whose email starts with `email`. Default `false`.
    pub prefix: Option<bool>,
    /// Default 50, at most 200.
    pub page_size: Option<u32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// A page of accounts, in email order.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Null on the last page.
    pub next_page_token: Option<String>,
}

/// Find accounts by email, exactly or by prefix, a page at a time (admin).
/// Every account returned is recorded as read by the admin.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])), params(UserSearch),
    responses(
        (status = 200, description = "A page of accounts", body = UserPage),
        (status = 400, description = "No email, one too long, or a malformed page token or query", body = Problem, content_type = "application/problem+json"),
        AdminOnly,
    ))]
async fn find_users(on: OnBehalf, QueryParams(search): QueryParams<UserSearch>) -> Result<Json<UserPage>, Problem> {
    on.caller.require_admin()?;
    let request = on.request(pb::FindUsersRequest {
        email: search.email.unwrap_or_default(),
        prefix: search.prefix.unwrap_or_default(),
        page_size: search.page_size.unwrap_or_default(),
        page_token: search.page_token.unwrap_or_default(),
    });
    let page = on.state.identity.clone().find_users(request).await?.into_inner();
    Ok(Json(UserPage {
        users: page.users.into_iter().map(User::from).collect(),
        next_page_token: Some(page.next_page_token).filter(|token| !token.is_empty()),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AdminReactivation {
    /// Why support reactivated the account; kept in the audit trail.
    pub note: Option<String>,
}

/// Reactivate a deactivated account directly (admin).
#[utoipa::path(post, path = "/admin/users/{id}/reactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body(content = AdminReactivation, description = "Optional"),
    responses(
        (status = 200, description = "Reactivated", body = AccountChanged),
        (status = 400, description = "Already active, or a malformed id", body = Problem, content_type = "application/problem+json"),
        AdminOnly,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
async fn reactivate_user(
    on: OnBehalf,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<AdminReactivation>,
) -> Result<Json<AccountChanged>, Problem> {
    on.caller.require_admin()?;
    let message = pb::AdminReactivateUserRequest {
        user_id: id,
        note: body.note.unwrap_or_default(),
    };
    let request = on.request(message);
    let user = on
        .state
        .identity
        .clone()
        .admin_reactivate_user(request)
        .await?
        .into_inner();
    Ok(Json(AccountChanged {
        message: "The account has been reactivated.".into(),
        user: User::from(user),
    }))
}

/// One entry of an account's audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountEvent {
    pub id: String,
    /// `registered`, `deactivated`, `reactivated`, …
    pub event_type: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who did it: the user, an admin, or null for the system.
    pub actor_id: Option<String>,
    /// W3C trace id of the request that caused it.
    pub trace_id: Option<String>,
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountEvents {
    pub events: Vec<AccountEvent>,
}

/// An account's audit trail, oldest first (admin).
#[utoipa::path(get, path = "/admin/users/{id}/events", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The events", body = AccountEvents),
        AdminOnly,
    ))]
async fn account_events(on: OnBehalf, Path(id): Path<String>) -> Result<Json<AccountEvents>, Problem> {
    on.caller.require_admin()?;
    let request = on.request(pb::ListAccountEventsRequest { user_id: id });
    let events = on
        .state
        .identity
        .clone()
        .list_account_events(request)
        .await?
        .into_inner()
        .events;
    let non_empty = |text: String| Some(text).filter(|text| !text.is_empty());
    Ok(Json(AccountEvents {
        events: events
            .into_iter()
            .map(|event| AccountEvent {
                id: event.id,
                event_type: event.event_type,
                data: serde_json::from_str(&event.data_json).unwrap_or(serde_json::Value::Null),
                actor_id: non_empty(event.actor_id),
                trace_id: non_empty(event.trace_id),
                occurred_at: event.occurred_at.as_ref().and_then(platform::wire::from_timestamp),
            })
            .collect(),
    }))
}
