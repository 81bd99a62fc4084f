//! Stripe objects as Stripe's API returns them: every field a client library
//! requires is present, with Stripe's names and value shapes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A recurring price the double knows: what a checkout line item names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CataloguePrice {
    pub id: String,
    pub unit_amount: i64,
    /// `month` or `year`.
    pub interval: String,
}

impl CataloguePrice {
    pub fn new(id: impl Into<String>, unit_amount: i64, interval: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            unit_amount,
            interval: interval.into(),
        }
    }
}

pub(crate) fn customer(id: &str, created: i64, email: Option<&str>, metadata: &BTreeMap<String, String>) -> Value {
    json!({
        "id": id,
        "object": "customer",
        "created": created,
        "livemode": false,
        "email": email,
        "metadata": metadata,
        "balance": 0,
        "delinquent": false,
        "invoice_prefix": id.trim_start_matches("cus_").to_uppercase(),
        "preferred_locales": [],
        "tax_exempt": "none",
    })
}

pub(crate) fn deleted_customer(id: &str) -> Value {
    json!({ "id": id, "object": "customer", "deleted": true })
}

pub(crate) fn coupon(
    id: &str,
    created: i64,
    percent_off: f64,
    duration: &str,
    name: Option<&str>,
    metadata: &BTreeMap<String, String>,
) -> Value {
    json!({
        "id": id,
        "object": "coupon",
        "created": created,
        "duration": duration,
        "percent_off": percent_off,
        "name": name,
        "livemode": false,
        "times_redeemed": 0,
        "valid": true,
        "metadata": metadata,
    })
}

pub(crate) fn deleted_coupon(id: &str) -> Value {
    json!({ "id": id, "object": "coupon", "deleted": true })
}

fn price(price: &CataloguePrice, created: i64) -> Value {
    json!({
        "id": price.id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "livemode": false,
        "metadata": {},
        "product": format!("prod_{}", price.id.trim_start_matches("price_")),
        "type": "recurring",
        "unit_amount": price.unit_amount,
        "recurring": { "interval": price.interval, "interval_count": 1, "usage_type": "licensed" },
    })
}

fn plan(price: &CataloguePrice, created: i64) -> Value {
    json!({
        "id": price.id,
        "object": "plan",
        "active": true,
        "amount": price.unit_amount,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "interval": price.interval,
        "interval_count": 1,
        "livemode": false,
        "usage_type": "licensed",
    })
}

/// A subscription with one item, in the shape of API versions where the
/// current period lives on the item.
pub(crate) struct SubscriptionParts<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub price: &'a CataloguePrice,
    pub status: &'a str,
    pub cancel_at_period_end: bool,
    pub created: i64,
    pub period_start: i64,
    pub period_end: i64,
    pub metadata: &'a BTreeMap<String, String>,
    pub coupon: Option<&'a str>,
    pub latest_invoice: Option<&'a str>,
}

pub(crate) fn subscription(parts: &SubscriptionParts<'_>) -> Value {
    let item_id = format!("si_{}", parts.id.trim_start_matches("sub_"));
    let discounts: Vec<Value> = parts
        .coupon
        .map(|coupon| format!("di_{}_{coupon}", parts.id.trim_start_matches("sub_")))
        .into_iter()
        .map(Value::String)
        .collect();
    json!({
        "id": parts.id,
        "object": "subscription",
        "automatic_tax": { "enabled": false },
        "billing_cycle_anchor": parts.period_start,
        "billing_mode": { "type": "classic" },
        "billing_schedules": [],
        "cancel_at_period_end": parts.cancel_at_period_end,
        "canceled_at": if parts.status == "canceled" { Some(parts.period_end) } else { None },
        "collection_method": "charge_automatically",
        "created": parts.created,
        "currency": "usd",
        "customer": parts.customer,
        "discounts": discounts,
        "invoice_settings": { "issuer": { "type": "self" } },
        "items": {
            "object": "list",
            "data": [{
                "id": item_id,
                "object": "subscription_item",
                "created": parts.created,
                "current_period_start": parts.period_start,
                "current_period_end": parts.period_end,
                "discounts": [],
                "metadata": {},
                "plan": plan(parts.price, parts.created),
                "price": price(parts.price, parts.created),
                "quantity": 1,
                "subscription": parts.id,
            }],
            "has_more": false,
            "url": format!("/v1/subscription_items?subscription={}", parts.id),
        },
        "livemode": false,
        "metadata": parts.metadata,
        "latest_invoice": parts.latest_invoice,
        "start_date": parts.created,
        "status": parts.status,
    })
}

pub(crate) struct SessionParts<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub created: i64,
    pub customer: Option<&'a str>,
    pub client_reference_id: Option<&'a str>,
    pub success_url: Option<&'a str>,
    pub metadata: &'a BTreeMap<String, String>,
    pub amount_total: i64,
    pub subscription: Option<&'a str>,
    pub complete: bool,
    pub expired: bool,
}

pub(crate) fn checkout_session(parts: &SessionParts<'_>) -> Value {
    json!({
        "id": parts.id,
        "object": "checkout.session",
        "automatic_tax": { "enabled": false },
        "amount_total": parts.amount_total,
        "client_reference_id": parts.client_reference_id,
        "created": parts.created,
        "currency": "usd",
        "custom_fields": [],
        "custom_text": {},
        "customer": parts.customer,
        "expires_at": parts.created + 24 * 3600,
        "livemode": false,
        "metadata": parts.metadata,
        "mode": "subscription",
        "payment_method_types": ["card"],
        "payment_status": if parts.complete { "paid" } else { "unpaid" },
        "shipping_options": [],
        "status": if parts.complete { "complete" } else if parts.expired { "expired" } else { "open" },
        "subscription": parts.subscription,
        "success_url": parts.success_url,
        "url": if parts.complete || parts.expired { None } else { Some(parts.url) },
    })
}

pub(crate) fn invoice(id: &str, created: i64, customer: &str, subscription: &str, paid: bool, amount: i64) -> Value {
    json!({
        "id": id,
        "object": "invoice",
        "created": created,
        "currency": "usd",
        "customer": customer,
        "amount_due": amount,
        "amount_paid": if paid { amount } else { 0 },
        "status": if paid { "paid" } else { "open" },
        "livemode": false,
        "subscription": subscription,
        "parent": {
            "type": "subscription_details",
            "subscription_details": { "subscription": subscription, "metadata": {} },
        },
    })
}

/// The payment of a paid invoice, as `GET /v1/invoice_payments` lists it.
pub(crate) fn invoice_payment(invoice: &str, payment_intent: &str, amount: i64, created: i64) -> Value {
    json!({
        "id": format!("inpay_{}", invoice.trim_start_matches("in_")),
        "object": "invoice_payment",
        "amount_paid": amount,
        "amount_requested": amount,
        "created": created,
        "currency": "usd",
        "invoice": invoice,
        "is_default": true,
        "livemode": false,
        "payment": { "type": "payment_intent", "payment_intent": payment_intent },
        "status": "paid",
        "status_transitions": { "canceled_at": null, "paid_at": created },
    })
}

pub(crate) fn refund(id: &str, payment_intent: &str, amount: i64, created: i64, reason: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": null,
        "charge": null,
        "created": created,
        "currency": "usd",
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null,
    })
}

pub(crate) fn list(url: &str, data: Vec<Value>) -> Value {
    json!({ "object": "list", "data": data, "has_more": false, "url": url })
}

pub(crate) fn event(id: &str, event_type: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
    })
}

/// Stripe's error body.
pub(crate) fn error(kind: &str, message: &str) -> Value {
    json!({ "error": { "type": kind, "message": message } })
}
