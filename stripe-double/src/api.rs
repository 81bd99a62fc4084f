//! The HTTP side of the double: Stripe's `/v1` API for the objects billing
//! uses, and a hosted checkout page.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State as AxumState},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use serde_json::Value;

use crate::{Customer, Inner, RecordedRequest, Session, objects};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/checkout/{id}", get(checkout_page).post(pay))
        .fallback(api)
        .with_state(inner)
}

type Answer = (u16, Value);

fn not_found(what: &str, id: &str) -> Answer {
    (
        404,
        objects::error("invalid_request_error", &format!("No such {what}: '{id}'")),
    )
}

fn invalid(message: &str) -> Answer {
    (400, objects::error("invalid_request_error", message))
}

/// Every `/v1` call: authenticated, recorded, subject to injected failures,
/// replayed when its `Idempotency-Key` was seen before.
async fn api(
    AxumState(inner): AxumState<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let mut form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if let Some(query) = uri.query() {
        form.extend(serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default());
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let authorized = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("Bearer sk_"));

    let (status, body) = {
        let mut state = inner.state();
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            form: form.clone(),
            idempotency_key: idempotency_key.clone(),
        });
        if !authorized {
            (401, objects::error("invalid_request_error", "Invalid API Key provided"))
        } else if let Some(status) = state.take_failure(method.as_str(), &path) {
            (
                status,
                objects::error("api_error", "An error occurred with our connection to Stripe."),
            )
        } else if let Some(replayed) = idempotency_key.as_ref().and_then(|key| state.replays.get(key)) {
            replayed.clone()
        } else {
            drop(state);
            let answer = handle(&inner, &method, &path, &form);
            if let Some(key) = idempotency_key {
                inner.state().replays.insert(key, answer.clone());
            }
            answer
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `prefix[key]=value` fields as a map (Stripe's `metadata[...]`).
fn map_field(form: &[(String, String)], prefix: &str) -> BTreeMap<String, String> {
    form.iter()
        .filter_map(|(key, value)| {
            let inner = key.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
            Some((inner.to_owned(), value.clone()))
        })
        .collect()
}

fn handle(inner: &Arc<Inner>, method: &Method, path: &str, form: &[(String, String)]) -> Answer {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "customers"]) => create_customer(inner, form),
        ("GET", ["v1", "customers", id]) => {
            let state = inner.state();
            match state.customers.get(*id) {
                Some(customer) if customer.deleted => (200, objects::deleted_customer(id)),
                Some(customer) => (
                    200,
                    objects::customer(id, customer.created, customer.email.as_deref(), &customer.metadata),
                ),
                None => not_found("customer", id),
            }
        }
        ("DELETE", ["v1", "customers", id]) => {
            let mut state = inner.state();
            match state.customers.get_mut(*id) {
                Some(customer) => {
                    customer.deleted = true;
                    // Deleting a customer cancels their subscriptions at once.
                    for subscription in state.subscriptions.values_mut().filter(|s| s.customer == *id) {
                        subscription.status = "canceled".into();
                    }
                    (200, objects::deleted_customer(id))
                }
                None => not_found("customer", id),
            }
        }
        ("POST", ["v1", "coupons"]) => create_coupon(inner, form),
        ("GET", ["v1", "coupons", id]) => match inner.state().coupons.get(*id) {
            Some(coupon) => (200, coupon.clone()),
            None => not_found("coupon", id),
        },
        ("POST", ["v1", "coupons", id]) => {
            let mut state = inner.state();
            match state.coupons.get_mut(*id) {
                Some(coupon) => {
                    if let Some(name) = field(form, "name") {
                        coupon["name"] = Value::String(name.to_owned());
                    }
                    for (key, value) in map_field(form, "metadata") {
                        coupon["metadata"][key] = Value::String(value);
                    }
                    (200, coupon.clone())
                }
                None => not_found("coupon", id),
            }
        }
        ("DELETE", ["v1", "coupons", id]) => match inner.state().coupons.remove(*id) {
            Some(_) => (200, objects::deleted_coupon(id)),
            None => not_found("coupon", id),
        },
        ("POST", ["v1", "checkout", "sessions"]) => create_session(inner, form),
        ("POST", ["v1", "checkout", "sessions", id, "expire"]) => expire_session(inner, id),
        ("GET", ["v1", "invoice_payments"]) => {
            let state = inner.state();
            let invoice = field(form, "invoice").unwrap_or_default();
            let payments = state
                .invoices
                .get(invoice)
                .map(|paid| objects::invoice_payment(invoice, &paid.payment_intent, paid.amount, paid.created))
                .into_iter()
                .collect();
            (200, objects::list("/v1/invoice_payments", payments))
        }
        ("POST", ["v1", "refunds"]) => create_refund(inner, form),
        ("GET", ["v1", "checkout", "sessions", id]) => match inner.state().session_json(id, &inner.base_url) {
            Some(session) => (200, session),
            None => not_found("checkout.session", id),
        },
        ("GET", ["v1", "subscriptions", id]) => match inner.state().subscription_json(id) {
            Some(subscription) => (200, subscription),
            None => not_found("subscription", id),
        },
        ("POST", ["v1", "subscriptions", id]) => update_subscription(inner, id, form),
        ("DELETE", ["v1", "subscriptions", id]) => {
            let now = inner.now();
            let mut state = inner.state();
            let Some(subscription) = state.subscriptions.get_mut(*id) else {
                return not_found("subscription", id);
            };
            subscription.status = "canceled".into();
            let object = state.subscription_json(id).expect("exists");
            let event = state.record_event("customer.subscription.deleted", now, object.clone());
            drop(state);
            inner.announce(event);
            (200, object)
        }
        _ => (
            404,
            objects::error(
                "invalid_request_error",
                &format!("Unrecognized request URL ({method} {path})"),
            ),
        ),
    }
}

fn create_customer(inner: &Arc<Inner>, form: &[(String, String)]) -> Answer {
    let now = inner.now();
    let mut state = inner.state();
    let id = state.new_id("cus");
    let customer = Customer {
        email: field(form, "email").map(str::to_owned),
        metadata: map_field(form, "metadata"),
        created: now,
        deleted: false,
    };
    let json = objects::customer(&id, now, customer.email.as_deref(), &customer.metadata);
    state.customers.insert(id, customer);
    (200, json)
}

fn create_coupon(inner: &Arc<Inner>, form: &[(String, String)]) -> Answer {
    let now = inner.now();
    let mut state = inner.state();
    let Some(percent_off) = field(form, "percent_off").and_then(|value| value.parse::<f64>().ok()) else {
        return invalid("Missing required param: percent_off.");
    };
    let Some(duration) = field(form, "duration") else {
        return invalid("Missing required param: duration.");
    };
    let id = match field(form, "id") {
        Some(id) if state.coupons.contains_key(id) => {
            return invalid("Coupon already exists.");
        }
        Some(id) => id.to_owned(),
        None => state.new_id("co"),
    };
    let coupon = objects::coupon(
        &id,
        now,
        percent_off,
        duration,
        field(form, "name"),
        &map_field(form, "metadata"),
    );
    state.coupons.insert(id, coupon.clone());
    (200, coupon)
}

fn create_session(inner: &Arc<Inner>, form: &[(String, String)]) -> Answer {
    let now = inner.now();
    let mut state = inner.state();
    if field(form, "mode") != Some("subscription") {
        return invalid("The double supports Checkout in subscription mode only.");
    }
    let Some(price_id) = field(form, "line_items[0][price]") else {
        return invalid("Missing required param: line_items[0][price].");
    };
    let Some(price) = state.prices.get(price_id).cloned() else {
        return not_found("price", price_id);
    };
    if let Some(customer) = field(form, "customer")
        && state.customers.get(customer).is_none_or(|customer| customer.deleted)
    {
        return not_found("customer", customer);
    }
    let coupon = field(form, "discounts[0][coupon]").map(str::to_owned);
    if let Some(coupon) = &coupon
        && !state.coupons.contains_key(coupon)
    {
        return not_found("coupon", coupon);
    }
    let id = state.new_id("cs_test");
    let session = Session {
        customer: field(form, "customer").map(str::to_owned),
        client_reference_id: field(form, "client_reference_id").map(str::to_owned),
        success_url: field(form, "success_url").map(str::to_owned),
        metadata: map_field(form, "metadata"),
        subscription_metadata: map_field(form, "subscription_data[metadata]"),
        trial_period_days: field(form, "subscription_data[trial_period_days]").and_then(|days| days.parse().ok()),
        price,
        coupon,
        created: now,
        subscription: None,
        expired: false,
    };
    state.sessions.insert(id.clone(), session);
    (200, state.session_json(&id, &inner.base_url).expect("inserted above"))
}

/// Expires an open Checkout session: it can no longer be paid. A complete
/// or expired one cannot be, as at Stripe.
fn expire_session(inner: &Arc<Inner>, id: &str) -> Answer {
    let mut state = inner.state();
    let Some(session) = state.sessions.get_mut(id) else {
        return not_found("checkout.session", id);
    };
    if session.subscription.is_some() || session.expired {
        return invalid("Only Checkout Sessions with a status in [\"open\"] can be expired.");
    }
    session.expired = true;
    (200, state.session_json(id, &inner.base_url).expect("exists"))
}

/// Refunds a payment (`payment_intent`), in full unless `amount` says less.
fn create_refund(inner: &Arc<Inner>, form: &[(String, String)]) -> Answer {
    let now = inner.now();
    let mut state = inner.state();
    let Some(payment_intent) = field(form, "payment_intent") else {
        return invalid("Missing required param: payment_intent.");
    };
    let Some(paid) = state
        .invoices
        .values()
        .find(|invoice| invoice.payment_intent == payment_intent)
        .map(|invoice| invoice.amount)
    else {
        return not_found("payment_intent", payment_intent);
    };
    let refunded: i64 = state
        .refunds
        .iter()
        .filter(|refund| refund.payment_intent == payment_intent)
        .map(|refund| refund.amount)
        .sum();
    let amount = field(form, "amount")
        .and_then(|amount| amount.parse().ok())
        .unwrap_or(paid - refunded);
    if amount <= 0 || refunded + amount > paid {
        return invalid("Refund amount is greater than the unrefunded amount on the charge.");
    }
    let id = state.new_id("re");
    state.refunds.push(crate::Refund {
        id: id.clone(),
        payment_intent: payment_intent.to_owned(),
        amount,
    });
    (
        200,
        objects::refund(&id, payment_intent, amount, now, field(form, "reason")),
    )
}

fn update_subscription(inner: &Arc<Inner>, id: &str, form: &[(String, String)]) -> Answer {
    let now = inner.now();
    let mut state = inner.state();
    let Some(subscription) = state.subscriptions.get_mut(id) else {
        return not_found("subscription", id);
    };
    if subscription.status == "canceled" {
        return invalid("A canceled subscription can only update its cancellation_details and metadata.");
    }
    if let Some(cancel) = field(form, "cancel_at_period_end") {
        subscription.cancel_at_period_end = cancel == "true";
    }
    for (key, value) in map_field(form, "metadata") {
        subscription.metadata.insert(key, value);
    }
    let object = state.subscription_json(id).expect("exists");
    let event = state.record_event("customer.subscription.updated", now, object.clone());
    drop(state);
    inner.announce(event);
    (200, object)
}

/// The hosted checkout page: what is bought, at what price, and a button.
async fn checkout_page(AxumState(inner): AxumState<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let Some(session) = inner.state().session_json(&id, &inner.base_url) else {
        return (StatusCode::NOT_FOUND, "No such checkout session").into_response();
    };
    let complete = session["status"] == "complete";
    let amount = session["amount_total"].as_i64().unwrap_or_default();
    let price = inner.state().sessions.get(&id).map(|session| session.price.clone());
    let (regular, interval) = price.map_or((0, String::new()), |price| (price.unit_amount, price.interval));
    let offer = if amount < regular {
        format!(
            "<p>Welcome back: <s>${}</s> ${} for the first {interval}.</p>",
            dollars(regular),
            dollars(amount)
        )
    } else {
        String::new()
    };
    let action = if complete {
        "<p>This checkout is complete.</p>".to_owned()
    } else if session["status"] == "expired" {
        "<p>This checkout has expired: a newer one replaced it.</p>".to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"/checkout/{id}\"><button type=\"submit\">Pay ${}</button></form>",
            dollars(amount)
        )
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Checkout (local Stripe)</title></head>\
         <body><h1>Checkout</h1><p>${} per {interval}.</p>{offer}{action}\
         <p><small>Local Stripe double: no card is charged.</small></p></body></html>",
        dollars(regular)
    ))
    .into_response()
}

async fn pay(AxumState(inner): AxumState<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let completed = match inner.complete_checkout(&id) {
        Ok(completed) => completed,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    for event in &completed.events {
        if inner.state().webhook_url.is_some()
            && let Err(err) = inner.deliver(event).await
        {
            tracing::warn!(event = %event, error = %err, "webhook delivery failed");
        }
    }
    match completed.success_url {
        // Stripe fills in the session id where the URL asks for it.
        Some(url) => Redirect::to(&url.replace("{CHECKOUT_SESSION_ID}", &id)).into_response(),
        None => Html("<p>Payment complete.</p>").into_response(),
    }
}

fn dollars(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}
