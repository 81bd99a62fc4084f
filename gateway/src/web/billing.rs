//! Paying (seeds 003 and 004): the subscription page with its dialogs,
//! pricing with the welcome-back offer, Stripe Checkout and its return.

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use minijinja::context;
use platform::auth::Caller;
use proto::{billing::v1 as pb, identity::v1 as identity_pb};
use serde::{Deserialize, Serialize};

use super::{
    PageError,
    session::{self, CheckedForm, Customer},
};
use crate::{AppState, problem::Problem};

/// The caller's subscription, as billing-svc has it.
pub async fn current_subscription(
    state: &AppState,
    caller: &Caller,
    request_id: &str,
) -> Result<pb::Subscription, PageError> {
    let request = state
        .calls
        .on_behalf(caller, request_id, pb::GetSubscriptionRequest::default());
    Ok(state.billing.clone().get_subscription(request).await?.into_inner())
}

/// A customer who left before (came back by link, or cancelled) and has no
/// plan running: their home is the welcome-back screen.
pub fn returning_without_plan(me: &identity_pb::User, subscription: &pb::Subscription) -> bool {
    use pb::SubscriptionStatus as Status;
    let left = me.reactivation_count > 0 || matches!(subscription.status(), Status::Cancelled | Status::Expired);
    let plan_running = matches!(subscription.status(), Status::Active | Status::Trial);
    left && !plan_running
}

/// A subscription as the pages show it.
#[derive(Debug, Serialize)]
pub struct SubscriptionPage {
    pub status: &'static str,
    pub status_label: &'static str,
    pub plan_label: Option<String>,
    /// "Renews" while active, "Access until" once cancelled.
    pub date_label: Option<&'static str>,
    pub date: Option<String>,
    pub can_cancel: bool,
    pub can_reactivate: bool,
    pub payment_failed: bool,
}

impl From<pb::Subscription> for SubscriptionPage {
    fn from(subscription: pb::Subscription) -> Self {
        use pb::SubscriptionStatus as Status;
        let (status, status_label) = match subscription.status() {
            Status::Unspecified | Status::None => ("none", "None"),
            Status::Trial => ("active", "Trial"),
            Status::Active => ("active", "Active"),
            Status::Cancelled => ("cancelled", "Cancelled"),
            Status::Expired => ("expired", "Expired"),
        };
        let date_label = match subscription.status() {
            Status::Active | Status::Trial => Some("Renews"),
            Status::Cancelled => Some("Access until"),
            _ => None,
        };
        let plan_label = plan_label(subscription.plan()).map(|plan| match subscription.billing_period() {
            pb::BillingPeriod::Annual => format!("{plan} · Annual"),
            pb::BillingPeriod::Monthly => format!("{plan} · Monthly"),
            pb::BillingPeriod::Unspecified => plan.to_owned(),
        });
        Self {
            status,
            status_label,
            plan_label,
            date_label,
            date: subscription
                .next_billing_date
                .as_ref()
                .and_then(platform::wire::from_timestamp)
                .map(|date| date.format("%b %-d, %Y").to_string()),
            can_cancel: subscription.can_cancel,
            can_reactivate: subscription.can_reactivate,
            payment_failed: subscription.payment_failed,
        }
    }
}

fn plan_label(plan: pb::Plan) -> Option<&'static str> {
    match plan {
        pb::Plan::Unspecified => None,
        pb::Plan::Grower => Some("Grower"),
        pb::Plan::Builder => Some("Builder"),
        pb::Plan::Maven => Some("Maven"),
    }
}

fn dollars(cents: i64) -> String {
    let whole = cents / 100;
    let grouped = whole
        .to_string()
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",");
    match cents % 100 {
        0 => grouped,
        rest => format!("{grouped}.{rest:02}"),
    }
}

/// `GET /subscription` (seed 003).
pub async fn subscription(
    customer: Customer,
    axum::extract::Query(query): axum::extract::Query<Outcome>,
) -> Result<Response, PageError> {
    let notice = match query.done.as_deref() {
        Some("cancelled") => Some("Subscription cancelled. You keep access until the end of the billing period."),
        Some("reactivated") => Some("Subscription reactivated successfully!"),
        _ => None,
    };
    subscription_page(&customer, notice, None, StatusCode::OK).await
}

/// Which change the subscription page reports (a fixed word, never text).
#[derive(Debug, Deserialize)]
pub struct Outcome {
    done: Option<String>,
}

async fn subscription_page(
    customer: &Customer,
    notice: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let (state, csrf) = (&customer.state, &customer.csrf);
    let subscription =
        SubscriptionPage::from(current_subscription(state, &customer.caller, &customer.request_id).await?);
    Ok(state.web.render_status(
        status,
        "subscription.html",
        context! { signed_in => true, nav => "subscription", csrf, notice, error, subscription },
    ))
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// The cancel dialog's "Yes, Cancel".
pub async fn cancel(customer: Customer, CheckedForm(_): CheckedForm<NoFields>) -> Result<Response, PageError> {
    let request = customer.request(pb::CancelSubscriptionRequest { reason: String::new() });
    let answer = customer.state.billing.clone().cancel_subscription(request).await;
    changed(&customer, answer, "/subscription?done=cancelled").await
}

/// The reactivate dialog's "Yes, Reactivate" (undoing the cancellation).
pub async fn undo_cancel(customer: Customer, CheckedForm(_): CheckedForm<NoFields>) -> Result<Response, PageError> {
    let request = customer.request(pb::ReactivateSubscriptionRequest {});
    let answer = customer.state.billing.clone().reactivate_subscription(request).await;
    changed(&customer, answer, "/subscription?done=reactivated").await
}

/// After a change from the subscription page's dialogs: back to the page
/// at `done`; or, refused, the page as it now stands with why (a Stripe
/// outage says to try again: nothing changed).
async fn changed<T>(customer: &Customer, answer: Result<T, tonic::Status>, done: &str) -> Result<Response, PageError> {
    match answer {
        Ok(_) => Ok(Redirect::to(done).into_response()),
        Err(status) => {
            let (error, code) = shown_refusal(status)?;
            subscription_page(customer, None, Some(error), code).await
        }
    }
}

/// What a page says when billing-svc could not reach Stripe.
const PAYMENT_PROVIDER_UNREACHABLE: &str =
    "We could not reach our payment provider, so nothing was changed. Please try again in a moment.";

/// A refusal as a page shows it, with the page's status: a Stripe outage
/// says to try again; any other server error is the error page.
fn shown_refusal(status: tonic::Status) -> Result<(String, StatusCode), PageError> {
    let problem = Problem::from(status);
    let code = problem.status_code();
    if code == StatusCode::SERVICE_UNAVAILABLE {
        Ok((PAYMENT_PROVIDER_UNREACHABLE.to_owned(), code))
    } else if code.is_server_error() {
        Err(problem.into())
    } else {
        Ok((problem.detail, code))
    }
}

/// One plan's card on the pricing page.
#[derive(Debug, Serialize)]
struct PlanCard {
    id: &'static str,
    name: &'static str,
    blurb: &'static str,
    featured: bool,
    prices: Vec<PriceCard>,
}

#[derive(Debug, Serialize)]
struct PriceCard {
    period: &'static str,
    period_label: &'static str,
    unit: &'static str,
    regular: String,
    offer: Option<String>,
    note: &'static str,
}

/// `GET /pricing` (seed 004): three plans, monthly and annual; with the
/// offer banner and the first payment's price for an eligible customer.
pub async fn pricing(customer: Customer) -> Result<Response, PageError> {
    pricing_page(&customer, None, StatusCode::OK).await
}

async fn pricing_page(customer: &Customer, error: Option<String>, status: StatusCode) -> Result<Response, PageError> {
    let (state, csrf) = (&customer.state, &customer.csrf);
    let request = customer.request(pb::GetPricingRequest {});
    let pricing = state.billing.clone().get_pricing(request).await?.into_inner();
    let plans = [
        (
            pb::Plan::Grower,
            "grower",
            "For a first product and a small team.",
            false,
        ),
        (
            pb::Plan::Builder,
            "builder",
            "For growing products: our most popular plan.",
            true,
        ),
        (
            pb::Plan::Maven,
            "maven",
            "For products at scale, with everything included.",
            false,
        ),
    ]
    .into_iter()
    .map(|(plan, id, blurb, featured)| {
        let prices = pricing
            .prices
            .iter()
            .filter(|price| price.plan() == plan)
            .map(|price| {
                let annual = price.billing_period() == pb::BillingPeriod::Annual;
                PriceCard {
                    period: if annual { "annual" } else { "monthly" },
                    period_label: if annual { "Annual" } else { "Monthly" },
                    unit: if annual { "year" } else { "month" },
                    regular: dollars(price.amount_cents),
                    offer: price.welcome_back_amount_cents.map(dollars),
                    note: if annual {
                        "Save 15% compared to monthly"
                    } else {
                        "Billed every month"
                    },
                }
            })
            .collect();
        PlanCard {
            id,
            name: plan_label(plan).unwrap_or_default(),
            blurb,
            featured,
            prices,
        }
    })
    .collect::<Vec<_>>();
    Ok(state.web.render_status(
        status,
        "pricing.html",
        context! { signed_in => true, nav => "pricing", csrf, eligible => pricing.welcome_back_eligible, plans, error },
    ))
}

#[derive(Debug, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    plan: String,
    #[serde(default)]
    billing_period: String,
}

/// "Subscribe": a Stripe Checkout session, and the browser sent there. The
/// hop is a page (with a link, refreshed at once), not a redirect: a
/// redirect after a form would have to pass the CSP's `form-action`.
pub async fn checkout(customer: Customer, CheckedForm(form): CheckedForm<CheckoutForm>) -> Result<Response, PageError> {
    let plan = match form.plan.as_str() {
        "grower" => pb::Plan::Grower,
        "builder" => pb::Plan::Builder,
        "maven" => pb::Plan::Maven,
        _ => return Err(PageError::bad_form()),
    };
    let period = match form.billing_period.as_str() {
        "monthly" => pb::BillingPeriod::Monthly,
        "annual" => pb::BillingPeriod::Annual,
        _ => return Err(PageError::bad_form()),
    };
    let message = pb::CreateCheckoutSessionRequest {
        plan: plan.into(),
        billing_period: period.into(),
    };
    let request = customer.request(message);
    match customer.state.billing.clone().create_checkout_session(request).await {
        Ok(session) => {
            let url = session.into_inner().url;
            Ok(customer.state.web.render("checkout.html", context! { url }))
        }
        Err(status) => {
            let (error, code) = shown_refusal(status)?;
            pricing_page(&customer, Some(error), code).await
        }
    }
}

/// Where Stripe Checkout returns a customer who paid: the new subscription.
pub async fn success(
    state: &AppState,
    request_id: &str,
    csrf: &str,
    headers: &HeaderMap,
) -> Result<Response, PageError> {
    let (caller, cookies) = session::identify(state, request_id, headers).await?;
    let page = match caller {
        Some(caller) => {
            let subscription = SubscriptionPage::from(current_subscription(state, &caller, request_id).await?);
            state
                .web
                .render("success.html", context! { signed_in => true, csrf, subscription })
        }
        None => state.web.render("success.html", context! { csrf }),
    };
    Ok(session::with_cookies(page, cookies))
}

/// Where Stripe Checkout returns a customer who gave up.
pub fn cancelled(state: &AppState, csrf: &str) -> Response {
    state.web.render(
        "message.html",
        context! {
            csrf,
            title => "No charge made",
            detail => "You left the checkout; nothing was charged. You can pick a plan again at any time.",
            action_href => "/pricing",
            action_label => "See plans",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_read_as_on_a_price_tag() {
        assert_eq!(dollars(1750), "17.50");
        assert_eq!(dollars(3500), "35");
        assert_eq!(dollars(102_000), "1,020");
        assert_eq!(dollars(81_600), "816");
        assert_eq!(dollars(28_560), "285.60");
    }
}
