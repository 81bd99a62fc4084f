//! `spawn_app`: a billing-svc of a test's own — fresh database, own Redis
//! key space, port 0, a clock pinned to seed 003's period — pointed at a
//! Stripe double that shares the clock, and a gRPC client with tokens.

use std::time::Duration;

use billing_svc::{Application, Config, billing::Billing, config::StripeConfig};
use chrono::{DateTime, TimeZone as _, Utc};
use platform::{
    auth::{InternalToken, KeyPair, Role, TokenSigner},
    clock::Clock,
    config::Secret,
    shutdown::Shutdown,
    testing::{TestDatabase, TestKeySpace},
};
use proto::billing::v1::{self as pb, billing_service_client::BillingServiceClient};
use sqlx::PgPool;
use stripe_double::{CataloguePrice, CompletedCheckout, Options, StripeDouble};
use tonic::{Request, transport::Channel};
use uuid::Uuid;

pub const WEBHOOK_SECRET: &str = "whsec_test_billing";

pub struct TestApp {
    pub client: BillingServiceClient<Channel>,
    pub clock: Clock,
    pub stripe: StripeDouble,
    /// The domain behind the service, for jobs and operator commands.
    pub billing: Billing,
    pub admin: String,
    /// What the other services of the mesh present.
    pub internal: InternalToken,
    signer: TokenSigner,
    /// Reads the service's tables directly, as an operator would.
    pub pool: PgPool,
    _database: TestDatabase,
    keys: TestKeySpace,
}

/// A customer: their user id and access token.
#[derive(Clone, Debug)]
pub struct Customer {
    pub id: Uuid,
    pub token: String,
}

/// Seed 003's story starts on 2026-01-20.
pub fn today() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 20, 9, 0, 0).unwrap()
}

pub fn catalogue() -> Vec<CataloguePrice> {
    StripeConfig::default_catalogue()
        .map(|(id, amount, interval)| CataloguePrice::new(id, amount, interval))
        .collect()
}

pub async fn spawn_app() -> TestApp {
    platform::testing::spans();
    let clock = Clock::manual(today());
    let stripe = StripeDouble::start(Options::new(clock.clone(), WEBHOOK_SECRET, catalogue()))
        .await
        .expect("the Stripe double starts");
    let database = TestDatabase::create(&billing_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let pair = KeyPair::generate();
    let internal = InternalToken::generate();
    let config = Config {
        service: platform::testing::service_config(&database, &keys, &pair.public_pem, &internal),
        stripe: StripeConfig {
            secret_key: Secret::new("sk_test_billing".to_owned()),
            webhook_secret: Secret::new(WEBHOOK_SECRET.to_owned()),
            api_base: stripe.url().to_owned(),
            prices: billing_svc::domain::Product::all()
                .map(|product| (product, StripeConfig::default_price_id(product)))
                .collect(),
            timeout: Duration::from_secs(5),
        },
        public_url: "http://app.test".into(),
        expiry_interval: Duration::from_secs(3600),
        // Nothing listens there: access changes wait in the outbox, where tests read them.
        license_url: "http://127.0.0.1:9".into(),
        // Nor there: emails owed to customers wait in the outbox too.
        identity_url: "http://127.0.0.1:9".into(),
        outbox_max_backoff: Duration::from_secs(1),
    };
    let application = Application::build_with_clock(config, clock.clone())
        .await
        .expect("billing-svc builds");
    let address = application.local_addr();
    let billing = application.domain();
    tokio::spawn(application.run(Shutdown::new()));
    let client = BillingServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    let signer = TokenSigner::from_pem(&pair.private_pem, Duration::from_secs(900)).unwrap();
    TestApp {
        client,
        clock,
        stripe,
        billing,
        admin: platform::testing::access_token(&signer, &keys, Uuid::new_v4(), vec![Role::User, Role::Admin]),
        internal,
        signer,
        pool: platform::db::connect(&database.url, 2).await.unwrap(),
        _database: database,
        keys,
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn reason(status: &tonic::Status) -> Option<String> {
    platform::error::reason_of(status)
}

pub fn product(plan: pb::Plan, period: pb::BillingPeriod) -> pb::CreateCheckoutSessionRequest {
    pb::CreateCheckoutSessionRequest {
        plan: plan.into(),
        billing_period: period.into(),
    }
}

impl TestApp {
    fn client(&self) -> BillingServiceClient<Channel> {
        self.client.clone()
    }

    pub fn customer(&self) -> Customer {
        let id = Uuid::new_v4();
        Customer {
            id,
            token: platform::testing::access_token(&self.signer, &self.keys, id, vec![Role::User]),
        }
    }

    pub async fn subscription(&self, customer: &Customer) -> pb::Subscription {
        self.client()
            .get_subscription(bearer(&customer.token, pb::GetSubscriptionRequest::default()))
            .await
            .expect("get subscription")
            .into_inner()
    }

    pub async fn cancel(&self, customer: &Customer) -> Result<pb::Subscription, tonic::Status> {
        let request = pb::CancelSubscriptionRequest {
            reason: "too expensive".into(),
        };
        self.client()
            .cancel_subscription(bearer(&customer.token, request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn reactivate(&self, customer: &Customer) -> Result<pb::Subscription, tonic::Status> {
        self.client()
            .reactivate_subscription(bearer(&customer.token, pb::ReactivateSubscriptionRequest {}))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn pricing(&self, customer: &Customer) -> pb::Pricing {
        self.client()
            .get_pricing(bearer(&customer.token, pb::GetPricingRequest {}))
            .await
            .expect("pricing")
            .into_inner()
    }

    pub async fn checkout(
        &self,
        customer: &Customer,
        plan: pb::Plan,
        period: pb::BillingPeriod,
    ) -> Result<pb::CheckoutSession, tonic::Status> {
        self.client()
            .create_checkout_session(bearer(&customer.token, product(plan, period)))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Stripe's event `id` delivered now, signed as Stripe signs it.
    pub async fn deliver(&self, event_id: &str) -> Result<pb::HandleStripeWebhookResponse, tonic::Status> {
        let (payload, signature) = self.stripe.signed(event_id, self.clock.now().timestamp()).unwrap();
        self.deliver_raw(payload, signature).await
    }

    pub async fn deliver_raw(
        &self,
        payload: Vec<u8>,
        signature: String,
    ) -> Result<pb::HandleStripeWebhookResponse, tonic::Status> {
        self.client()
            .handle_stripe_webhook(pb::HandleStripeWebhookRequest { payload, signature })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Checks out `plan` and pays at Stripe; the events are not delivered yet.
    pub async fn pay(&self, customer: &Customer, plan: pb::Plan, period: pb::BillingPeriod) -> CompletedCheckout {
        let session = self.checkout(customer, plan, period).await.expect("checkout");
        self.stripe.complete_checkout(&session.id).await.expect("pay")
    }

    /// Checks out `plan` and pays: Stripe's events are delivered in order.
    /// Returns the Stripe subscription id.
    pub async fn buy(&self, customer: &Customer, plan: pb::Plan, period: pb::BillingPeriod) -> String {
        let completed = self.pay(customer, plan, period).await;
        for event in &completed.events {
            self.deliver(event).await.expect("webhook applies");
        }
        completed.subscription_id
    }

    /// A customer with an active Builder monthly subscription.
    pub async fn subscriber(&self) -> (Customer, String) {
        let customer = self.customer();
        let subscription = self.buy(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly).await;
        (customer, subscription)
    }

    /// How many billing events of `kind` were recorded.
    pub async fn events(&self, kind: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM billing_events WHERE event = $1")
            .bind(kind)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// identity-svc telling billing that `customer`'s account was closed.
    pub async fn close_account(&self, customer: &Customer, closure: &str) -> Result<pb::Subscription, tonic::Status> {
        let mut request = Request::new(pb::CloseAccountRequest {
            user_id: customer.id.to_string(),
            reason: "moving to a competitor".into(),
            idempotency_key: closure.into(),
        });
        self.internal.attach(&mut request);
        let closed = self.client().close_account(request).await?.into_inner();
        Ok(closed.subscription.expect("a subscription view"))
    }

    /// The key access changes owed to license-svc, oldest first: `(user, access)`.
    pub async fn access_owed(&self) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT payload->>'user_id', payload->>'access' FROM outbox \
             WHERE topic = 'license.customer_access' ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

impl TestApp {
    /// The key access changes owed to license-svc, oldest first, each as
    /// `active` or `suspended:<why>`.
    pub async fn access_changes(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT payload->>'access' || COALESCE(':' || (payload->>'reason'), '') FROM outbox \
             WHERE topic = 'license.customer_access' ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

/// An email billing owes a customer (through identity-svc).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OwedEmail {
    pub user_id: String,
    /// The notify template's name, e.g. `TEMPLATE_WELCOME_BACK_OFFER`.
    pub template: String,
    pub variables: serde_json::Value,
    pub idempotency_key: String,
}

impl TestApp {
    /// The emails owed to customers, oldest first.
    pub async fn emails_owed(&self) -> Vec<OwedEmail> {
        sqlx::query_as(
            "SELECT payload->>'user_id' AS user_id, payload->>'template' AS template,              payload->'variables' AS variables, idempotency_key FROM outbox              WHERE topic = 'identity.customer_email' ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// The emails of `template` owed to `customer`.
    pub async fn emails_to(&self, customer: &Customer, template: &str) -> Vec<OwedEmail> {
        self.emails_owed()
            .await
            .into_iter()
            .filter(|email| email.user_id == customer.id.to_string() && email.template == template)
            .collect()
    }
}

/// The end of the paid period a subscription shows.
pub fn billing_date(subscription: &pb::Subscription) -> DateTime<Utc> {
    platform::wire::from_timestamp(subscription.next_billing_date.as_ref().expect("a billing date")).unwrap()
}
