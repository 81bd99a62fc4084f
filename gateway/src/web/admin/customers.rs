//! Customers: finding accounts by email, and a customer's page (seed 002's
//! user detail page) — the account, the subscription, the key cards and
//! the one timeline across services — with the admin's actions on the
//! account. identity-svc records every account it shows an admin as read.

use axum::{
    extract::{MatchedPath, Path, Query},
    response::Response,
};
use minijinja::context;
use proto::{billing::v1 as billing, identity::v1 as identity, license::v1 as license};
use serde::{Deserialize, Serialize};

use super::{Console, day, keys::KeyRow, moment, path_segment};
use crate::{
    routes::timeline,
    web::{PageError, session::CheckedForm},
};

/// Accounts per page of the search.
const PAGE_SIZE: u32 = 25;

/// What typing confirms an erasure.
const ERASE_CONFIRMATION: &str = "DELETE";

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Search {
    #[serde(default)]
    email: String,
    /// "on": every account whose email starts with `email`.
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    page: String,
}

impl Search {
    fn url(&self, page: &str) -> String {
        let mut url = format!("/admin/users?email={}", path_segment(self.email.trim()));
        if self.prefix == "on" {
            url.push_str("&prefix=on");
        }
        if !page.is_empty() {
            url.push_str(&format!("&page={}", path_segment(page)));
        }
        url
    }
}

/// One account in a list.
#[derive(Debug, Serialize)]
struct AccountRow {
    email: String,
    href: String,
    active: bool,
    role: &'static str,
    created: Option<String>,
    reactivations: u32,
}

impl From<&identity::User> for AccountRow {
    fn from(user: &identity::User) -> Self {
        Self {
            email: user.email.clone(),
            href: format!("/admin/users/{}", path_segment(&user.email)),
            active: user.is_active,
            role: if user.role() == identity::Role::Admin {
                "Admin"
            } else {
                "Customer"
            },
            created: day(user.created_at.as_ref()),
            reactivations: user.reactivation_count,
        }
    }
}

/// `GET /admin/users`: find accounts by email, exact or by prefix.
pub async fn search(console: Console, Query(search): Query<Search>) -> Result<Response, PageError> {
    let email = search.email.trim();
    let (accounts, next, error) = if email.is_empty() {
        (Vec::new(), None, None)
    } else {
        let request = identity::FindUsersRequest {
            email: email.to_owned(),
            prefix: search.prefix == "on",
            page_size: PAGE_SIZE,
            page_token: search.page.clone(),
        };
        match console
            .state
            .identity
            .clone()
            .find_users(console.request(request))
            .await
        {
            Ok(found) => {
                let found = found.into_inner();
                let next = (!found.next_page_token.is_empty()).then(|| search.url(&found.next_page_token));
                (found.users.iter().map(AccountRow::from).collect(), next, None)
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                (Vec::new(), None, Some(status.message().to_owned()))
            }
            Err(status) => return Err(status.into()),
        }
    };
    Ok(console.render(
        "admin_users.html",
        "users",
        context! { accounts, next, error, searched => !email.is_empty(), search },
    ))
}

/// The account whose email is exactly `email`.
async fn account(console: &Console, email: &str) -> Result<identity::User, PageError> {
    let request = identity::FindUsersRequest {
        email: email.to_owned(),
        prefix: false,
        page_size: 1,
        page_token: String::new(),
    };
    let found = console
        .state
        .identity
        .clone()
        .find_users(console.request(request))
        .await;
    match found {
        Ok(found) => found.into_inner().users.into_iter().next(),
        Err(status) if status.code() == tonic::Code::InvalidArgument => None,
        Err(status) => return Err(status.into()),
    }
    .ok_or_else(|| PageError::not_found("No account has this email address."))
}

fn reason_label(reason: identity::DeactivationReason) -> &'static str {
    match reason {
        identity::DeactivationReason::Self_ => "Left on their own",
        identity::DeactivationReason::Admin => "Closed by support",
        identity::DeactivationReason::Nonpayment => "Unpaid",
        identity::DeactivationReason::Fraud => "Fraud",
        identity::DeactivationReason::Unspecified => "",
    }
}

fn subscription_view(subscription: &billing::Subscription) -> minijinja::Value {
    let status = subscription.status();
    let (label, class) = match status {
        billing::SubscriptionStatus::Active => ("Active", "active"),
        billing::SubscriptionStatus::Trial => ("Trial", "active"),
        billing::SubscriptionStatus::Cancelled => ("Cancelled", "cancelled"),
        billing::SubscriptionStatus::Expired => ("Ended", "expired"),
        billing::SubscriptionStatus::None | billing::SubscriptionStatus::Unspecified => ("No subscription", ""),
    };
    let plan = match subscription.plan() {
        billing::Plan::Grower => "Grower",
        billing::Plan::Builder => "Builder",
        billing::Plan::Maven => "Maven",
        billing::Plan::Unspecified => "",
    };
    let period = match subscription.billing_period() {
        billing::BillingPeriod::Monthly => "monthly",
        billing::BillingPeriod::Annual => "annual",
        billing::BillingPeriod::Unspecified => "",
    };
    context! {
        status => label,
        status_class => class,
        plan,
        period,
        next_billing => day(subscription.next_billing_date.as_ref()),
        cancelled => day(subscription.cancelled_at.as_ref()),
        payment_failed => subscription.payment_failed,
    }
}

/// `GET /admin/users/{email}`: the customer's page.
pub async fn page(console: Console, Path(email): Path<String>) -> Result<Response, PageError> {
    let user = account(&console, &email).await?;
    let on = console.on_behalf();
    let subscription_request = console.request(billing::GetSubscriptionRequest {
        user_id: user.id.clone(),
    });
    let keys_request = console.request(license::ListKeysRequest {
        email: user.email.clone(),
        page_size: 200,
        ..Default::default()
    });
    let (mut billing_svc, mut license_svc) = (console.state.billing.clone(), console.state.license.clone());
    let (subscription, keys, timeline) = tokio::join!(
        billing_svc.get_subscription(subscription_request),
        license_svc.list_keys(keys_request),
        timeline::of_customer(&on, user.id.clone()),
    );
    // The page stays useful when one service cannot answer: it says which.
    let subscription = subscription.map(|answer| subscription_view(answer.get_ref())).ok();
    let keys: Option<Vec<KeyRow>> = keys
        .map(|answer| answer.into_inner().keys.into_iter().map(KeyRow::from).collect())
        .ok();
    let timeline = timeline.ok();
    let events: Vec<_> = timeline
        .as_ref()
        .map(|timeline| {
            timeline
                .events
                .iter()
                .rev()
                .map(|event| {
                    context! {
                        service => &event.service,
                        event => event.event.replace('_', " "),
                        at => event.occurred_at.map(|at| at.format("%b %-d, %Y %H:%M UTC").to_string()),
                        trace_id => &event.trace_id,
                        details => details_line(&event.details),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let incomplete: Vec<String> = timeline.map(|timeline| timeline.incomplete).unwrap_or_default();
    let href = format!("/admin/users/{}", path_segment(&user.email));
    let account = context! {
        id => &user.id,
        email => &user.email,
        active => user.is_active,
        role => if user.role() == identity::Role::Admin { "Admin" } else { "Customer" },
        created => day(user.created_at.as_ref()),
        deactivated => moment(user.deactivated_at.as_ref()),
        reason => reason_label(user.deactivation_reason()),
        reactivated => moment(user.reactivated_at.as_ref()),
        reactivations => user.reactivation_count,
        last_cancellation_reason => &user.last_cancellation_reason,
    };
    Ok(console.render(
        "admin_user.html",
        "users",
        context! { account, subscription, keys, events, incomplete, href },
    ))
}

/// An event's details on one line: `plan: builder · period: monthly`.
fn details_line(details: &serde_json::Value) -> String {
    let serde_json::Value::Object(details) = details else {
        return String::new();
    };
    details
        .iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => format!("{name}: {text}"),
            other => format!("{name}: {other}"),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[derive(Debug, Deserialize)]
pub struct AccountAction {
    /// Reactivation: why support reactivated the account.
    #[serde(default)]
    note: String,
    /// Deactivation: `admin`, `nonpayment`, `fraud` or `self`.
    #[serde(default)]
    reason: String,
    #[serde(default)]
    comment: String,
    /// Erasure: the word typed.
    #[serde(default)]
    confirmation: String,
}

/// An action on the account: `reactivate`, `deactivate` or `erase`.
pub async fn act(
    console: Console,
    route: MatchedPath,
    Path(email): Path<String>,
    CheckedForm(form): CheckedForm<AccountAction>,
) -> Result<Response, PageError> {
    let user = account(&console, &email).await?;
    let here = format!("/admin/users/{}", path_segment(&user.email));
    let mut identity_svc = console.state.identity.clone();
    let outcome = match super::action(&route) {
        "reactivate" => identity_svc
            .admin_reactivate_user(console.request(identity::AdminReactivateUserRequest {
                user_id: user.id.clone(),
                note: form.note.trim().chars().take(500).collect(),
            }))
            .await
            .map(|_| "The account is active again.".to_owned()),
        "deactivate" => {
            let reason = match form.reason.as_str() {
                "self" => identity::DeactivationReason::Self_,
                "nonpayment" => identity::DeactivationReason::Nonpayment,
                "fraud" => identity::DeactivationReason::Fraud,
                _ => identity::DeactivationReason::Admin,
            };
            identity_svc
                .deactivate_user(console.request(identity::DeactivateUserRequest {
                    user_id: user.id.clone(),
                    reason: reason.into(),
                    comment: form.comment.trim().chars().take(500).collect(),
                }))
                .await
                .map(|_| format!("The account is deactivated ({}).", reason_label(reason).to_lowercase()))
        }
        "erase" if form.confirmation.trim() != ERASE_CONFIRMATION => {
            return Ok(console.back(
                &here,
                Err(PageError::refused(
                    "Type DELETE in capital letters to confirm the erasure.",
                )),
            ));
        }
        "erase" => {
            let erased = identity_svc
                .delete_user(console.request(identity::DeleteUserRequest {
                    user_id: user.id.clone(),
                }))
                .await;
            // The customer's page is gone with the account: back to the search.
            return Ok(console.back(
                "/admin/users",
                erased
                    .map(|_| "The account and its data are erased in every service.".to_owned())
                    .map_err(PageError::from),
            ));
        }
        _ => return Err(PageError::not_found("There is no such action.")),
    };
    Ok(console.back(&here, outcome.map_err(PageError::from)))
}
