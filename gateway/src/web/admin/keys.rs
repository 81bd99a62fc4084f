//! The keys table (seed 002), a key's page with its whole history, and the
//! actions on a key. Which actions a row offers follows the key's status;
//! license-svc still refuses an action from the wrong state, and the page
//! says why.

use std::collections::BTreeMap;

use axum::{
    extract::{MatchedPath, Path, Query},
    response::Response,
};
use minijinja::context;
use proto::license::v1 as pb;
use serde::{Deserialize, Serialize};

use super::{Console, day, moment, path_segment};
use crate::web::{PageError, session::CheckedForm};

/// Keys per page of the table.
const PAGE_SIZE: u32 = 25;

/// The table's filters, as its form sends them.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default)]
    email: String,
    #[serde(default)]
    status: String,
    #[serde(default, rename = "type")]
    key_type: String,
    #[serde(default)]
    page: String,
}

impl Filter {
    fn request(&self) -> pb::ListKeysRequest {
        let status = match self.status.as_str() {
            "active" => pb::KeyStatus::Active,
            "disabled" => pb::KeyStatus::Disabled,
            "expired" => pb::KeyStatus::Expired,
            _ => pb::KeyStatus::Unspecified,
        };
        pb::ListKeysRequest {
            email: self.email.trim().to_owned(),
            status: status.into(),
            key_type: key_type(&self.key_type).into(),
            page_size: PAGE_SIZE,
            page_token: self.page.clone(),
        }
    }

    /// This view's URL with another page token.
    fn url(&self, page: &str) -> String {
        let mut query = Vec::new();
        for (name, value) in [
            ("email", self.email.trim()),
            ("status", &self.status),
            ("type", &self.key_type),
            ("page", page),
        ] {
            if !value.is_empty() {
                query.push(format!("{name}={}", path_segment(value)));
            }
        }
        if query.is_empty() {
            "/admin/keys".to_owned()
        } else {
            format!("/admin/keys?{}", query.join("&"))
        }
    }
}

fn key_type(name: &str) -> pb::KeyType {
    match name {
        "trial" => pb::KeyType::Trial,
        "production" => pb::KeyType::Production,
        "development" => pb::KeyType::Development,
        _ => pb::KeyType::Unspecified,
    }
}

/// One key as the console shows it, with the actions its status allows.
#[derive(Debug, Serialize)]
pub struct KeyRow {
    key: String,
    href: String,
    email: String,
    customer_href: String,
    kind: &'static str,
    is_trial: bool,
    status: &'static str,
    status_class: &'static str,
    expires: String,
    created: Option<String>,
    disabled: Option<String>,
    /// Edit, +Days, Email and Disable: a key in use (active or expired).
    in_use: bool,
    /// Close the deal: a trial in use.
    can_close: bool,
    /// Reactivate: disabled or expired (our rule: an expired key is
    /// reactivated directly).
    can_reactivate: bool,
}

impl From<pb::LicenseKey> for KeyRow {
    fn from(key: pb::LicenseKey) -> Self {
        let status = key.status();
        let (label, class) = match status {
            pb::KeyStatus::Active => ("Active", "active"),
            pb::KeyStatus::Disabled => ("Disabled", "disabled"),
            pb::KeyStatus::Expired => ("Expired", "expired"),
            pb::KeyStatus::Unspecified => ("Unknown", ""),
        };
        let kind = match key.key_type() {
            pb::KeyType::Trial => "Trial",
            pb::KeyType::Production => "Production",
            pb::KeyType::Development => "Development",
            pb::KeyType::Unspecified => "Key",
        };
        let in_use = matches!(status, pb::KeyStatus::Active | pb::KeyStatus::Expired);
        Self {
            href: format!("/admin/keys/{}", path_segment(&key.key)),
            customer_href: format!("/admin/users/{}", path_segment(&key.email)),
            expires: day(key.expires_at.as_ref()).unwrap_or_else(|| "Never (Subscribed)".to_owned()),
            created: day(key.created_at.as_ref()),
            disabled: moment(key.disabled_at.as_ref()),
            in_use,
            can_close: in_use && key.is_trial,
            can_reactivate: matches!(status, pb::KeyStatus::Disabled | pb::KeyStatus::Expired),
            key: key.key,
            email: key.email,
            kind,
            is_trial: key.is_trial,
            status: label,
            status_class: class,
        }
    }
}

/// `GET /admin/keys`: the table, filtered and paged.
pub async fn list(console: Console, Query(filter): Query<Filter>) -> Result<Response, PageError> {
    let here = filter.url(&filter.page);
    let answer = console
        .state
        .license
        .clone()
        .list_keys(console.request(filter.request()))
        .await;
    let (keys, next, error) = match answer {
        Ok(answer) => {
            let answer = answer.into_inner();
            let keys: Vec<KeyRow> = answer.keys.into_iter().map(KeyRow::from).collect();
            let next = (!answer.next_page_token.is_empty()).then(|| filter.url(&answer.next_page_token));
            (keys, next, None)
        }
        // A malformed filter is told beside the form, not as an error page.
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            (Vec::new(), None, Some(status.message().to_owned()))
        }
        Err(status) => return Err(status.into()),
    };
    Ok(console.render(
        "admin_keys.html",
        "keys",
        context! { keys, next, error, filter, here, first => (!filter.page.is_empty()).then(|| filter.url("")) },
    ))
}

#[derive(Debug, Deserialize)]
pub struct NewKey {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    days: String,
}

/// "New trial key".
pub async fn create(console: Console, CheckedForm(form): CheckedForm<NewKey>) -> Response {
    let trial_days = form.days.trim().parse().unwrap_or(0);
    let request = pb::CreateKeyRequest {
        email: form.email.trim().to_owned(),
        key_type: pb::KeyType::Trial.into(),
        trial_days,
        customer: Some(pb::CustomerInfo {
            name: form.name.trim().to_owned(),
            company: form.company.trim().to_owned(),
            notes: String::new(),
        }),
        ..Default::default()
    };
    let outcome = console.state.license.clone().create_key(console.request(request)).await;
    let outcome = outcome
        .map(|key| format!("Trial key {} created for {}.", key.get_ref().key, key.get_ref().email))
        .map_err(PageError::from);
    console.back("/admin/keys", outcome)
}

/// `GET /admin/keys/{key}`: the key, its customer and its whole history.
pub async fn detail(console: Console, Path(key): Path<String>) -> Result<Response, PageError> {
    let mut license = console.state.license.clone();
    let mut history_client = console.state.license.clone();
    let (found, history) = tokio::join!(
        license.get_key(console.request(pb::GetKeyRequest { key: key.clone() })),
        history_client.get_key_history(console.request(pb::GetKeyHistoryRequest { key: key.clone() })),
    );
    let found = match found {
        Ok(found) => found.into_inner(),
        Err(status) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {
            return Err(PageError::not_found("There is no license key with this name."));
        }
        Err(status) => return Err(status.into()),
    };
    let features: BTreeMap<String, bool> = found.features.clone().into_iter().collect();
    let customer = found.customer.clone().unwrap_or_default();
    let history: Vec<_> = history
        .map(|history| history.into_inner().entries)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .map(|entry| {
            let details: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&entry.details_json).unwrap_or_default();
            let details: Vec<String> = details
                .into_iter()
                .map(|(name, value)| match value {
                    serde_json::Value::String(text) => format!("{name}: {text}"),
                    serde_json::Value::Null => format!("{name}: none"),
                    other => format!("{name}: {other}"),
                })
                .collect();
            context! {
                action => entry.action.replace('_', " "),
                by => entry.performed_by,
                at => moment(entry.performed_at.as_ref()),
                details,
                trace_id => entry.trace_id,
            }
        })
        .collect();
    let owner = found.owner_user_id.clone();
    let key_row = KeyRow::from(found);
    let back = key_row.href.clone();
    Ok(console.render(
        "admin_key.html",
        "keys",
        context! { key => key_row, features, customer => context! { name => customer.name, company => customer.company, notes => customer.notes }, owner, history, back },
    ))
}

#[derive(Debug, Deserialize)]
pub struct Edit {
    #[serde(default)]
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    notes: String,
    /// A new flag to switch on.
    #[serde(default)]
    new_flag: String,
    /// `shown:<flag>` for every flag the form showed (so a cleared box
    /// turns its flag off) and `on:<flag>` for each ticked one.
    #[serde(flatten)]
    flags: BTreeMap<String, String>,
}

impl Edit {
    fn flags(&self) -> BTreeMap<String, bool> {
        let mut flags = BTreeMap::new();
        for field in self.flags.keys() {
            if let Some(flag) = field.strip_prefix("shown:") {
                flags.entry(flag.to_owned()).or_insert(false);
            } else if let Some(flag) = field.strip_prefix("on:") {
                flags.insert(flag.to_owned(), true);
            }
        }
        let new_flag = self.new_flag.trim();
        if !new_flag.is_empty() {
            flags.insert(new_flag.to_owned(), true);
        }
        flags
    }
}

/// "Edit": the customer info and the feature flags.
pub async fn edit(console: Console, Path(key): Path<String>, CheckedForm(form): CheckedForm<Edit>) -> Response {
    let request = pb::UpdateKeyRequest {
        key: key.clone(),
        customer: Some(pb::CustomerInfo {
            name: form.name.trim().to_owned(),
            company: form.company.trim().to_owned(),
            notes: form.notes.trim().to_owned(),
        }),
        features: Some(pb::FeatureFlags {
            flags: form.flags().into_iter().collect(),
        }),
    };
    let outcome = console.state.license.clone().update_key(console.request(request)).await;
    console.state.forget_validation(&key);
    let outcome = outcome.map(|_| format!("Key {key} saved.")).map_err(PageError::from);
    console.back(&format!("/admin/keys/{}", path_segment(&key)), outcome)
}

#[derive(Debug, Deserialize)]
pub struct Action {
    /// The console page to go back to.
    #[serde(default)]
    back: String,
    /// "+Days": how many.
    #[serde(default)]
    days: String,
}

/// One action on a key: `disable`, `reactivate`, `extend`, `close` or
/// `email`; back to the page it was asked from, saying how it went.
pub async fn act(
    console: Console,
    route: MatchedPath,
    Path(key): Path<String>,
    CheckedForm(form): CheckedForm<Action>,
) -> Response {
    let mut license = console.state.license.clone();
    let outcome = match super::action(&route) {
        "disable" => license
            .disable_key(console.request(pb::DisableKeyRequest { key: key.clone() }))
            .await
            .map(|_| format!("Key {key} disabled.")),
        "reactivate" => license
            .reactivate_key(console.request(pb::ReactivateKeyRequest { key: key.clone() }))
            .await
            .map(|answer| {
                let until = day(answer.get_ref().expires_at.as_ref())
                    .map_or_else(|| "with no expiry".to_owned(), |day| format!("until {day}"));
                format!("Key {key} reactivated, {until}.")
            }),
        "extend" => {
            let days = form.days.trim().parse().unwrap_or(0);
            license
                .extend_key(console.request(pb::ExtendKeyRequest { key: key.clone(), days }))
                .await
                .map(|answer| {
                    let until = day(answer.get_ref().expires_at.as_ref()).unwrap_or_default();
                    format!("Key {key} extended by {days} days, until {until}.")
                })
        }
        "close" => license
            .close_deal(console.request(pb::CloseDealRequest { key: key.clone() }))
            .await
            .map(|_| format!("Deal closed: {key} is a production key with no expiry.")),
        "email" => license
            .email_key(console.request(pb::EmailKeyRequest { key: key.clone() }))
            .await
            .map(|_| format!("Key {key} emailed to its customer.")),
        _ => {
            return PageError::not_found("There is no such action.").into_page(&console.state.web, &console.request_id);
        }
    };
    // Whatever the answer: a call that failed on the way back may have committed.
    console.state.forget_validation(&key);
    console.back(&form.back, outcome.map_err(PageError::from))
}
