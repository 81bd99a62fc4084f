//! The gateway: the mesh's REST/JSON front door for web clients.
//!
//! It owns no state. Each route authenticates the caller (the same access
//! token verification every service runs), calls a service over gRPC with a
//! deadline and the trace context, and answers JSON — or, for every error,
//! RFC 9457 problem JSON built from the service's `ErrorInfo` reason. The
//! OpenAPI document at `/openapi.json` is generated from the route table
//! itself. The one exception to "owns no state" is a bounded, short-lived
//! cache of license validations ([`validation_cache`]), kept right by the
//! changes license-svc announces.

pub mod config;
pub mod downstream;
pub mod extract;
pub mod local_limit;
pub mod problem;
pub mod routes;
pub mod validation_cache;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, header},
};
use platform::{
    auth::{Authenticator, SessionFloors},
    clock::Clock,
    invalidation::{self, Subscription},
    kv::Kv,
    license_key::{self, LicenseKey},
    shutdown::Shutdown,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

pub use crate::config::Config;
use crate::{
    downstream::{BillingClient, Calls, IdentityClient, LicenseClient},
    local_limit::LocalLimiter,
    problem::Problem,
    routes::keys::ValidationCache,
};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub identity: IdentityClient,
    pub license: LicenseClient,
    pub billing: BillingClient,
    /// Per-client limit of public license validations.
    pub validate_limiter: LocalLimiter,
    /// Recent validations; `None` when turned off by configuration.
    pub validations: Option<ValidationCache>,
    /// "Now", for the status of a cached key (tests pin it).
    pub clock: Clock,
    pub calls: Calls,
    pub authenticator: Authenticator,
    /// The OpenAPI document, serialised once at start-up.
    pub openapi: Arc<str>,
    pub shutdown: Shutdown,
    pub trust_forwarded_for: bool,
}

impl AppState {
    /// Drops any cached validation of `key`: called by the routes that
    /// change a key, whatever license-svc answered (a call that failed may
    /// still have committed).
    pub fn forget_validation(&self, key: &str) {
        if let (Some(cache), Ok(key)) = (&self.validations, LicenseKey::parse(key)) {
            cache.forget(key.as_str());
        }
    }

    /// The end client's address, for per-client limits.
    pub fn client_address(&self, headers: &axum::http::HeaderMap, peer: SocketAddr) -> String {
        let forwarded = self
            .trust_forwarded_for
            .then(|| {
                headers
                    .get("x-forwarded-for")?
                    .to_str()
                    .ok()?
                    .split(',')
                    .next()
                    .map(str::trim)
            })
            .flatten()
            .filter(|address| !address.is_empty());
        forwarded.map_or_else(|| peer.ip().to_string(), str::to_owned)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reactivation API",
        description = "Deactivate and reactivate customers: accounts, license keys, subscriptions and the win-back offer. \
                       Errors are RFC 9457 problem details (`application/problem+json`) whose `reason` is stable and machine-readable.",
        version = "1.0.0"
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Register, log in, deactivate, reactivate by email"),
        (name = "admin", description = "Support staff (admin role)"),
        (name = "billing", description = "Subscriptions: cancel and undo, prices, checkout with the welcome-back offer, Stripe webhooks"),
        (name = "keys", description = "License keys: support staff manage them (admin role); products validate them (public)"),
        (name = "system", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::accounts::router())
        .merge(routes::reactivation::router())
        .merge(routes::admin::router())
        .merge(routes::keys::router())
        .merge(routes::billing::router())
        .merge(routes::timeline::router())
        .merge(routes::system::router())
}

/// The OpenAPI document of every route the gateway serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|origin| origin.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
}

/// The span of one request, continuing the caller's trace — except for a
/// key validation, the hot path: most are answered from memory, involving
/// no other process, and a span costs more than such an answer. It opens
/// its span itself when it does call license-svc, so that call stays in the
/// caller's trace.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    if request.method() == Method::POST && request.uri().path() == routes::keys::VALIDATE_PATH {
        tracing::Span::none()
    } else {
        platform::telemetry::server_span(request)
    }
}

/// A built gateway, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The validation cache and its live subscription to changed keys,
    /// relayed from [`Application::run`].
    changes: Option<(ValidationCache, Subscription)>,
    shutdown: Shutdown,
    config: Config,
}

impl Application {
    /// Binds the listener and prepares clients. Services need not be up yet:
    /// channels connect on first use.
    pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        Self::build_with_clock(config, shutdown, Clock::system()).await
    }

    /// As [`Application::build`], with "now" taken from `clock` (tests pin it).
    pub async fn build_with_clock(config: Config, shutdown: Shutdown, clock: Clock) -> anyhow::Result<Self> {
        let kv = Kv::connect(&config.redis_url, &config.redis_key_prefix).await?;
        let authenticator =
            Authenticator::from_pem(&config.jwt_public_key, SessionFloors::new(kv, config.access_token_ttl))?;
        let identity = IdentityClient::new(downstream::channel(&config.identity_url, config.downstream_timeout)?);
        let license = LicenseClient::new(downstream::channel(&config.license_url, config.downstream_timeout)?);
        let billing = BillingClient::new(downstream::channel(&config.billing_url, config.downstream_timeout)?);
        // Subscribed before serving, like the Redis connection above: a
        // gateway that cannot hear of changed keys does not start.
        let changes = if config.validation_cache_capacity > 0 {
            let cache = ValidationCache::new(config.validation_cache_capacity, config.validation_cache_max_age);
            let subscription =
                invalidation::subscribe(&config.redis_url, &config.redis_key_prefix, license_key::CHANGED_TOPIC)
                    .await?;
            // Announcements from now on are queued on the subscription
            // until `run` relays them.
            cache.trust();
            Some((cache, subscription))
        } else {
            None
        };
        let (router, openapi) = api().split_for_parts();
        let state = AppState {
            identity,
            license,
            billing,
            validate_limiter: LocalLimiter::per_second(config.validate_rate_limit_per_sec),
            validations: changes.as_ref().map(|(cache, _)| cache.clone()),
            clock,
            calls: Calls {
                timeout: config.downstream_timeout,
            },
            authenticator,
            openapi: Arc::from(openapi.to_json()?),
            shutdown: shutdown.clone(),
            trust_forwarded_for: config.trust_forwarded_for,
        };
        let request_id = HeaderName::from_static("x-request-id");
        let router = router
            .fallback(|| async { Problem::not_found("No such route.") })
            .with_state(state)
            .layer(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                    .layer(TraceLayer::new_for_http().make_span_with(request_span))
                    .layer(PropagateRequestIdLayer::new(request_id))
                    .layer(cors(&config.cors_allowed_origins)),
            );
        let listener = TcpListener::bind(config.listen_addr).await?;
        Ok(Self {
            listener,
            router,
            changes,
            shutdown,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until the shutdown given to `build` triggers; then `/healthz`
    /// answers 503 for the drain delay, and in-flight requests finish.
    pub async fn run(self) -> anyhow::Result<()> {
        let address = self.local_addr();
        tracing::info!(%address, "gateway listening");
        let shutdown = self.shutdown.clone();
        let drain_delay = self.config.drain_delay;
        if let Some((cache, subscription)) = self.changes {
            tokio::spawn(invalidation::listen(subscription, cache, shutdown.clone()));
        }
        axum::serve(
            self.listener,
            self.router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.wait().await;
            tokio::time::sleep(drain_delay).await;
        })
        .await?;
        tracing::info!(%address, "gateway stopped");
        Ok(())
    }
}
