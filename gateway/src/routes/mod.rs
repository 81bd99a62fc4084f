//! The REST routes, grouped by the part of the product they serve. Each
//! handler is annotated for the OpenAPI document, which is generated from
//! the same route table the server runs, so the two cannot drift apart.

pub mod accounts;
pub mod admin;
pub mod billing;
pub mod keys;
pub mod reactivation;
pub mod system;
pub mod timeline;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::identity::v1 as pb;
use serde::Serialize;
use utoipa::{
    IntoResponses, ToSchema,
    openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response as Documented},
};

/// The media type of every refusal.
pub(crate) const PROBLEM: &str = "application/problem+json";

/// Problem responses, `(status, description)`, documented alike wherever
/// a route may refuse the same way.
pub(crate) fn problems(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Documented>> {
    list.iter()
        .map(|(status, description)| {
            let problem = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content(PROBLEM, problem)
                .build();
            ((*status).to_owned(), RefOr::T(response))
        })
        .collect()
}

/// What a route for signed-in callers may answer besides its own: 401.
pub(crate) struct SignedInOnly;

impl IntoResponses for SignedInOnly {
    fn responses() -> BTreeMap<String, RefOr<Documented>> {
        problems(&[("401", "Not authenticated")])
    }
}

/// What an admin's route may answer besides its own: 401 and 403.
pub(crate) struct AdminOnly;

impl IntoResponses for AdminOnly {
    fn responses() -> BTreeMap<String, RefOr<Documented>> {
        problems(&[("401", "Not authenticated"), ("403", "Not an admin")])
    }
}

/// An account as the REST API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    pub is_active: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    /// `self`, `admin`, `nonpayment` or `fraud` while inactive.
    pub deactivation_reason: Option<String>,
    pub reactivated_at: Option<DateTime<Utc>>,
    pub reactivation_count: u32,
    pub last_cancellation_reason: Option<String>,
}

fn time(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    at.and_then(platform::wire::from_timestamp)
}

pub(crate) fn reason_name(reason: pb::DeactivationReason) -> Option<&'static str> {
    match reason {
        pb::DeactivationReason::Unspecified => None,
        pb::DeactivationReason::Self_ => Some("self"),
        pb::DeactivationReason::Admin => Some("admin"),
        pb::DeactivationReason::Nonpayment => Some("nonpayment"),
        pb::DeactivationReason::Fraud => Some("fraud"),
    }
}

impl From<pb::User> for User {
    fn from(user: pb::User) -> Self {
        Self {
            role: if user.role() == pb::Role::Admin {
                "admin"
            } else {
                "user"
            }
            .to_owned(),
            deactivation_reason: reason_name(user.deactivation_reason()).map(str::to_owned),
            created_at: time(user.created_at.as_ref()),
            deactivated_at: time(user.deactivated_at.as_ref()),
            reactivated_at: time(user.reactivated_at.as_ref()),
            last_cancellation_reason: Some(user.last_cancellation_reason).filter(|text| !text.is_empty()),
            id: user.id,
            email: user.email,
            is_active: user.is_active,
            reactivation_count: user.reactivation_count,
        }
    }
}

/// A change of account state, with a message for the person who made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountChanged {
    pub message: String,
    pub user: User,
}
