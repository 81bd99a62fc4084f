//! A local stand-in for Stripe, for tests and for a local run of the mesh.
//!
//! It speaks Stripe's HTTP API as the real client library calls it
//! (form-encoded requests under `/v1`, `Authorization: Bearer sk_…`,
//! `Idempotency-Key` replays, Stripe's JSON objects and error bodies) for
//! the calls billing makes — customers, coupons, Checkout sessions (created,
//! expired), subscriptions, invoice payments and refunds — and sends webhooks signed with Stripe's scheme. A hosted
//! checkout page lets a person walk the checkout flow end to end locally.
//!
//! Tests look inside: every request received, the objects held, failures
//! to inject, events to (re)deliver.

mod api;
pub mod objects;
pub mod signature;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::Context as _;
use platform::clock::Clock;
use serde_json::Value;
use tokio::net::TcpListener;

pub use crate::objects::CataloguePrice;

/// How to start a double.
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: SocketAddr,
    /// Times of objects, events and signatures.
    pub clock: Clock,
    /// The endpoint secret webhooks are signed with (`whsec_…`).
    pub webhook_secret: String,
    /// Where webhooks go; none: events are only recorded.
    pub webhook_url: Option<String>,
    /// Deliver every event as it happens (a local run); otherwise tests
    /// deliver them explicitly, except a completed checkout's.
    pub auto_deliver: bool,
    /// The prices checkout line items may name.
    pub prices: Vec<CataloguePrice>,
    /// Where a browser reaches the double (its hosted checkout pages);
    /// none: `http://` and the address it listens on.
    pub public_url: Option<String>,
}

impl Options {
    pub fn new(clock: Clock, webhook_secret: impl Into<String>, prices: Vec<CataloguePrice>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock,
            webhook_secret: webhook_secret.into(),
            webhook_url: None,
            auto_deliver: false,
            prices,
            public_url: None,
        }
    }
}

/// One API request the double received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
}

impl RecordedRequest {
    /// The value of form field `name` (e.g. `cancel_at_period_end`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug)]
struct Failure {
    method: String,
    path_prefix: String,
    status: u16,
}

#[derive(Clone, Debug)]
pub(crate) struct Customer {
    pub(crate) email: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) created: i64,
    pub(crate) deleted: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) customer: Option<String>,
    pub(crate) client_reference_id: Option<String>,
    pub(crate) success_url: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) subscription_metadata: BTreeMap<String, String>,
    pub(crate) trial_period_days: Option<i64>,
    pub(crate) price: CataloguePrice,
    pub(crate) coupon: Option<String>,
    pub(crate) created: i64,
    pub(crate) subscription: Option<String>,
    /// Expired (`POST /v1/checkout/sessions/{id}/expire`): it can no longer be paid.
    pub(crate) expired: bool,
}

/// A paid invoice: what was charged, and the payment a refund names.
#[derive(Clone, Debug)]
pub(crate) struct Invoice {
    pub(crate) payment_intent: String,
    pub(crate) amount: i64,
    pub(crate) created: i64,
}

/// A refund made: its id, the payment refunded and the amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub payment_intent: String,
    pub amount: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub(crate) customer: String,
    pub(crate) price: CataloguePrice,
    pub(crate) status: String,
    pub(crate) cancel_at_period_end: bool,
    pub(crate) created: i64,
    pub(crate) period_start: i64,
    pub(crate) period_end: i64,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) coupon: Option<String>,
    /// The invoice of the last payment.
    pub(crate) latest_invoice: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) webhook_url: Option<String>,
    pub(crate) prices: BTreeMap<String, CataloguePrice>,
    pub(crate) customers: BTreeMap<String, Customer>,
    pub(crate) coupons: BTreeMap<String, Value>,
    pub(crate) sessions: BTreeMap<String, Session>,
    pub(crate) subscriptions: BTreeMap<String, Subscription>,
    pub(crate) invoices: BTreeMap<String, Invoice>,
    pub(crate) refunds: Vec<Refund>,
    /// Events in the order they happened, as the bytes Stripe sends.
    pub(crate) events: Vec<(String, String, Vec<u8>)>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) replays: HashMap<String, (u16, Value)>,
    failures: VecDeque<Failure>,
    next_id: u64,
}

impl State {
    pub(crate) fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{prefix}_{}{:04}", &random[..14], self.next_id)
    }

    /// The status of an injected failure for this request, if one is due.
    pub(crate) fn take_failure(&mut self, method: &str, path: &str) -> Option<u16> {
        let index = self
            .failures
            .iter()
            .position(|failure| failure.method == method && path.starts_with(&failure.path_prefix))?;
        self.failures.remove(index).map(|failure| failure.status)
    }

    pub(crate) fn subscription_json(&self, id: &str) -> Option<Value> {
        let subscription = self.subscriptions.get(id)?;
        Some(objects::subscription(&objects::SubscriptionParts {
            id,
            customer: &subscription.customer,
            price: &subscription.price,
            status: &subscription.status,
            cancel_at_period_end: subscription.cancel_at_period_end,
            created: subscription.created,
            period_start: subscription.period_start,
            period_end: subscription.period_end,
            metadata: &subscription.metadata,
            coupon: subscription.coupon.as_deref(),
            latest_invoice: subscription.latest_invoice.as_deref(),
        }))
    }

    pub(crate) fn session_json(&self, id: &str, base_url: &str) -> Option<Value> {
        let session = self.sessions.get(id)?;
        let discount = session.coupon.as_ref().and_then(|coupon| self.coupons.get(coupon));
        let percent_off = discount
            .and_then(|coupon| coupon["percent_off"].as_f64())
            .unwrap_or(0.0);
        let amount_total = discounted(session.price.unit_amount, percent_off);
        Some(objects::checkout_session(&objects::SessionParts {
            id,
            url: &format!("{base_url}/checkout/{id}"),
            created: session.created,
            customer: session.customer.as_deref(),
            client_reference_id: session.client_reference_id.as_deref(),
            success_url: session.success_url.as_deref(),
            metadata: &session.metadata,
            amount_total,
            subscription: session.subscription.as_deref(),
            complete: session.subscription.is_some(),
            expired: session.expired,
        }))
    }

    /// The body Stripe sends for event `id`.
    pub(crate) fn event_payload(&self, id: &str) -> anyhow::Result<Vec<u8>> {
        self.events
            .iter()
            .find(|(event_id, _, _)| event_id == id)
            .map(|(_, _, bytes)| bytes.clone())
            .with_context(|| format!("no event {id}"))
    }

    /// Records a paid invoice of `subscription` (its latest) and returns its id.
    pub(crate) fn record_payment(&mut self, subscription: &str, amount: i64, created: i64) -> String {
        let invoice_id = self.new_id("in");
        let payment_intent = self.new_id("pi");
        self.invoices.insert(
            invoice_id.clone(),
            Invoice {
                payment_intent,
                amount,
                created,
            },
        );
        if let Some(subscription) = self.subscriptions.get_mut(subscription) {
            subscription.latest_invoice = Some(invoice_id.clone());
        }
        invoice_id
    }

    /// Records an event about `object`; returns its id.
    pub(crate) fn record_event(&mut self, event_type: &str, created: i64, object: Value) -> String {
        let id = self.new_id("evt");
        let event = objects::event(&id, event_type, created, object);
        let bytes = serde_json::to_vec(&event).expect("JSON values serialize");
        self.events.push((id.clone(), event_type.to_owned(), bytes));
        id
    }
}

/// `amount` cents less `percent_off` %, rounded half up as Stripe does.
pub fn discounted(amount: i64, percent_off: f64) -> i64 {
    let off = (amount as f64 * percent_off / 100.0).round() as i64;
    amount - off
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) state: Mutex<State>,
    pub(crate) clock: Clock,
    pub(crate) webhook_secret: String,
    pub(crate) auto_deliver: bool,
    pub(crate) base_url: String,
    http: reqwest::Client,
}

impl Inner {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("double state poisoned")
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Delivers event `id` to the webhook endpoint, signed now; returns the
    /// endpoint's HTTP status.
    pub(crate) async fn deliver(&self, id: &str) -> anyhow::Result<u16> {
        let (url, payload) = {
            let state = self.state();
            let url = state.webhook_url.clone().context("no webhook endpoint configured")?;
            (url, state.event_payload(id)?)
        };
        let header = signature::sign(&self.webhook_secret, self.now(), &payload);
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", header)
            .body(payload)
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    /// Delivers in the background when the double delivers on its own.
    pub(crate) fn announce(self: &Arc<Self>, id: String) {
        if !self.auto_deliver || self.state().webhook_url.is_none() {
            return;
        }
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(err) = inner.deliver(&id).await {
                tracing::warn!(event = %id, error = %err, "webhook delivery failed");
            }
        });
    }

    /// Pays a Checkout session: the subscription starts (trialing when the
    /// session asked for a trial), and the events Stripe sends follow.
    pub(crate) fn complete_checkout(&self, session_id: &str) -> anyhow::Result<CompletedCheckout> {
        let now = self.now();
        let mut state = self.state();
        let session = state
            .sessions
            .get(session_id)
            .cloned()
            .context("no such checkout session")?;
        anyhow::ensure!(
            session.subscription.is_none(),
            "checkout session {session_id} is already complete"
        );
        anyhow::ensure!(!session.expired, "checkout session {session_id} has expired");
        let customer = match session.customer.clone() {
            Some(customer) => customer,
            None => {
                let id = state.new_id("cus");
                let customer = Customer {
                    email: None,
                    metadata: BTreeMap::new(),
                    created: now,
                    deleted: false,
                };
                state.customers.insert(id.clone(), customer);
                id
            }
        };
        let subscription_id = state.new_id("sub");
        let (status, period_end) = match session.trial_period_days {
            Some(days) => ("trialing", now + days * 86_400),
            None => ("active", period_end(now, &session.price.interval)),
        };
        state.subscriptions.insert(
            subscription_id.clone(),
            Subscription {
                customer: customer.clone(),
                price: session.price.clone(),
                status: status.into(),
                cancel_at_period_end: false,
                created: now,
                period_start: now,
                period_end,
                metadata: session.subscription_metadata.clone(),
                coupon: session.coupon.clone(),
                latest_invoice: None,
            },
        );
        let stored = state.sessions.get_mut(session_id).expect("session read above");
        stored.subscription = Some(subscription_id.clone());
        stored.customer = Some(customer.clone());

        let subscription = state.subscription_json(&subscription_id).expect("inserted above");
        let mut events = vec![state.record_event("customer.subscription.created", now, subscription)];
        let session_json = state.session_json(session_id, &self.base_url).expect("session exists");
        let amount = session_json["amount_total"].as_i64().unwrap_or_default();
        events.push(state.record_event("checkout.session.completed", now, session_json));
        let invoice_id = state.record_payment(&subscription_id, amount, now);
        let invoice = objects::invoice(&invoice_id, now, &customer, &subscription_id, true, amount);
        events.push(state.record_event("invoice.paid", now, invoice));
        Ok(CompletedCheckout {
            subscription_id,
            success_url: session.success_url,
            events,
        })
    }
}

/// When a period started at `start` ends (`month`: 30 days, `year`: 365).
pub(crate) fn period_end(start: i64, interval: &str) -> i64 {
    let days = if interval == "year" { 365 } else { 30 };
    start + days * 86_400
}

/// What paying a Checkout session produced.
#[derive(Clone, Debug)]
pub struct CompletedCheckout {
    pub subscription_id: String,
    pub success_url: Option<String>,
    /// `customer.subscription.created`, `checkout.session.completed`,
    /// `invoice.paid`, in that order.
    pub events: Vec<String>,
}

/// A running double; dropping it stops the server.
#[derive(Debug)]
pub struct StripeDouble {
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StripeDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StripeDouble {
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(options.listen).await?;
        let base_url = match options.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let state = State {
            webhook_url: options.webhook_url,
            prices: options
                .prices
                .into_iter()
                .map(|price| (price.id.clone(), price))
                .collect(),
            ..State::default()
        };
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            clock: options.clock,
            webhook_secret: options.webhook_secret,
            auto_deliver: options.auto_deliver,
            base_url,
            http: reqwest::Client::new(),
        });
        let app = api::router(Arc::clone(&inner));
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "stripe double stopped");
            }
        });
        Ok(Self { inner, server })
    }

    /// The API base URL a Stripe client is pointed at (without `/v1`).
    pub fn url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn webhook_secret(&self) -> &str {
        &self.inner.webhook_secret
    }

    pub fn set_webhook_url(&self, url: impl Into<String>) {
        self.inner.state().webhook_url = Some(url.into());
    }

    /// Every API request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.state().requests.clone()
    }

    /// The `cancel_at_period_end` of every update subscription `id` received, in order.
    pub fn cancel_at_period_end_updates(&self, id: &str) -> Vec<String> {
        let path = format!("/v1/subscriptions/{id}");
        self.inner
            .state()
            .requests
            .iter()
            .filter(|request| request.method == "POST" && request.path == path)
            .filter_map(|request| request.field("cancel_at_period_end").map(str::to_owned))
            .collect()
    }

    /// The next `method` request under `path_prefix` answers `status` with a
    /// Stripe error body, and changes nothing.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16) {
        self.inner.state().failures.push_back(Failure {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            status,
        });
    }

    pub fn subscription(&self, id: &str) -> Option<Value> {
        self.inner.state().subscription_json(id)
    }

    pub fn checkout_session(&self, id: &str) -> Option<Value> {
        self.inner.state().session_json(id, &self.inner.base_url)
    }

    /// Ids of the customers that exist (not deleted).
    pub fn customers(&self) -> Vec<String> {
        let state = self.inner.state();
        state
            .customers
            .iter()
            .filter(|(_, customer)| !customer.deleted)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn customer_deleted(&self, id: &str) -> bool {
        self.inner
            .state()
            .customers
            .get(id)
            .is_some_and(|customer| customer.deleted)
    }

    /// Every refund made so far, in order.
    pub fn refunds(&self) -> Vec<Refund> {
        self.inner.state().refunds.clone()
    }

    /// The payment (payment intent) of subscription `id`'s latest invoice.
    pub fn latest_payment(&self, id: &str) -> Option<String> {
        let state = self.inner.state();
        let invoice = state.subscriptions.get(id)?.latest_invoice.clone()?;
        state
            .invoices
            .get(&invoice)
            .map(|invoice| invoice.payment_intent.clone())
    }

    pub fn coupons(&self) -> Vec<Value> {
        self.inner.state().coupons.values().cloned().collect()
    }

    /// Ids and types of every event so far, in order.
    pub fn events(&self) -> Vec<(String, String)> {
        let state = self.inner.state();
        state
            .events
            .iter()
            .map(|(id, kind, _)| (id.clone(), kind.clone()))
            .collect()
    }

    /// Pays a Checkout session as the customer would on the hosted page, and
    /// delivers the resulting events in order when a webhook endpoint is set
    /// (an error unless each is accepted).
    pub async fn complete_checkout(&self, session_id: &str) -> anyhow::Result<CompletedCheckout> {
        let completed = self.inner.complete_checkout(session_id)?;
        if self.inner.state().webhook_url.is_some() {
            for event in &completed.events {
                let status = self.inner.deliver(event).await?;
                anyhow::ensure!(
                    (200..300).contains(&status),
                    "the webhook endpoint answered {status} to {event}"
                );
            }
        }
        Ok(completed)
    }

    /// Delivers event `id` (again), signed now; the endpoint's HTTP status.
    pub async fn deliver(&self, id: &str) -> anyhow::Result<u16> {
        self.inner.deliver(id).await
    }

    /// The body and `Stripe-Signature` header of event `id`, signed at `timestamp`.
    pub fn signed(&self, id: &str, timestamp: i64) -> anyhow::Result<(Vec<u8>, String)> {
        let payload = self.inner.state().event_payload(id)?;
        let header = signature::sign(&self.inner.webhook_secret, timestamp, &payload);
        Ok((payload, header))
    }

    /// A renewal payment of subscription `id` fails: `invoice.payment_failed`
    /// (the subscription goes `past_due`). Returns the event id.
    pub fn fail_payment(&self, id: &str) -> anyhow::Result<String> {
        self.invoice_event(id, false)
    }

    /// A payment of subscription `id` succeeds: `invoice.paid` (the
    /// subscription is `active` again). Returns the event id.
    pub fn pay(&self, id: &str) -> anyhow::Result<String> {
        self.invoice_event(id, true)
    }

    fn invoice_event(&self, id: &str, paid: bool) -> anyhow::Result<String> {
        let now = self.inner.now();
        let mut state = self.inner.state();
        let subscription = state.subscriptions.get_mut(id).context("no such subscription")?;
        subscription.status = if paid { "active" } else { "past_due" }.into();
        let (customer, amount) = (subscription.customer.clone(), subscription.price.unit_amount);
        let invoice_id = if paid {
            state.record_payment(id, amount, now)
        } else {
            state.new_id("in")
        };
        let invoice = objects::invoice(&invoice_id, now, &customer, id, paid, amount);
        let kind = if paid { "invoice.paid" } else { "invoice.payment_failed" };
        Ok(state.record_event(kind, now, invoice))
    }

    /// Subscription `id` takes Stripe status `status` (e.g. `trialing`,
    /// as the dashboard can set it): `customer.subscription.updated`.
    /// Returns the event id.
    pub fn set_status(&self, id: &str, status: &str) -> anyhow::Result<String> {
        let now = self.inner.now();
        let mut state = self.inner.state();
        let subscription = state.subscriptions.get_mut(id).context("no such subscription")?;
        subscription.status = status.to_owned();
        let object = state.subscription_json(id).expect("exists");
        Ok(state.record_event("customer.subscription.updated", now, object))
    }

    /// The paid period of subscription `id` ends now: one set to cancel at
    /// period end is deleted (`customer.subscription.deleted`), any other
    /// renews for a period (`customer.subscription.updated`). Returns the
    /// event id.
    pub fn end_period(&self, id: &str) -> anyhow::Result<String> {
        let now = self.inner.now();
        let mut state = self.inner.state();
        let subscription = state.subscriptions.get_mut(id).context("no such subscription")?;
        let kind = if subscription.cancel_at_period_end {
            subscription.status = "canceled".into();
            "customer.subscription.deleted"
        } else {
            subscription.period_start = subscription.period_end;
            subscription.period_end = period_end(subscription.period_start, &subscription.price.interval);
            "customer.subscription.updated"
        };
        let object = state.subscription_json(id).expect("exists");
        Ok(state.record_event(kind, now, object))
    }
}
