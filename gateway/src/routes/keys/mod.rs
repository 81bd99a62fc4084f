//! License key routes (seed 002): the admin key API ([`admin`]) and the
//! public validation hot path ([`validate`]), which share only the key's
//! REST shape below. Bodies are camelCase, answers `{"data": …}`, as the
//! seed shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::license::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AppState, problem::Problem};

pub mod admin;
pub mod validate;

pub use validate::{VALIDATE_PATH, ValidationCache};

/// The content type of every refusal, as the routes document it.
const DENIED: &str = "application/problem+json";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin::list_keys, admin::create_key))
        .routes(routes!(admin::get_key, admin::update_key))
        .routes(routes!(admin::disable_key))
        .routes(routes!(admin::reactivate_key))
        .routes(routes!(admin::extend_key))
        .routes(routes!(admin::close_deal))
        .routes(routes!(admin::email_key))
        .routes(routes!(admin::key_history))
        .routes(routes!(validate::validate_key))
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
    /// Why it is disabled, while it is: `admin` (only an admin reactivates
    /// it), `payment` or `account_closed` (access comes back when the
    /// customer pays).
    pub disabled_reason: Option<String>,
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

fn disabled_reason_name(reason: pb::DisabledReason) -> Option<&'static str> {
    match reason {
        pb::DisabledReason::Unspecified => None,
        pb::DisabledReason::Admin => Some("admin"),
        pb::DisabledReason::Payment => Some("payment"),
        pb::DisabledReason::AccountClosed => Some("account_closed"),
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
            disabled_reason: disabled_reason_name(key.disabled_reason()).map(str::to_owned),
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
