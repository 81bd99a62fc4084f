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
//!
//! The same binary serves the customer's web app ([`web`]): server-rendered
//! pages on the same origin, kept apart from the JSON routes.

pub mod client_address;
pub mod config;
pub mod downstream;
pub mod extract;
pub mod local_limit;
pub mod problem;
pub mod protection;
pub mod routes;
mod serve;
pub mod state;
pub mod validation_cache;
pub mod web;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, header},
    middleware,
};
use platform::{
    auth::{Authenticator, SessionFloors},
    clock::Clock,
    invalidation::{self, Subscription},
    kv::Kv,
    license_key,
    shutdown::Shutdown,
};
use tokio::net::TcpListener;
use tonic_health::pb::health_client::HealthClient;
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

pub use crate::{config::Config, state::AppState};
use crate::{
    downstream::{BillingClient, Calls, IdentityClient, LicenseClient},
    local_limit::LocalLimiter,
    problem::Problem,
    protection::Admission,
    routes::keys::ValidationCache,
};

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
    routes_and_document().1
}

/// The routes, and the document that describes them — with what the
/// gateway's own limits may answer on any of them.
fn routes_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = api().split_for_parts();
    protection::document(&mut openapi);
    (router, openapi)
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
/// caller's trace. The span is named by the route's template
/// (`/api/keys/{key}`), never the raw path, which can hold a license key.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    if request.method() == Method::POST && request.uri().path() == routes::keys::VALIDATE_PATH {
        return tracing::Span::none();
    }
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", axum::extract::MatchedPath::as_str);
    platform::telemetry::server_span_of(request.method(), route, request.headers())
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
        let kv = Kv::connect_with(&config.redis_url, &config.redis_key_prefix, config.redis_timeout).await?;
        let store_probes = routes::system::StoreProbes {
            services: [
                ("identity", &config.identity_url),
                ("license", &config.license_url),
                ("billing", &config.billing_url),
            ]
            .into_iter()
            .map(|(name, url)| {
                Ok((
                    name,
                    HealthClient::new(downstream::channel(url, config.downstream_timeout)?),
                ))
            })
            .collect::<anyhow::Result<_>>()?,
            redis: kv.clone(),
        };
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
        let (router, openapi) = routes_and_document();
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
            trusted_proxies: config.trusted_proxies.clone(),
            web: web::Web::new(config.secure_cookies, config.access_token_ttl),
            store_probes,
        };
        let request_id = HeaderName::from_static("x-request-id");
        let router = router
            .merge(web::router())
            .fallback(|| async { Problem::not_found("No such route.") })
            .with_state(state.clone())
            // The pages' middleware reads the state from here.
            .layer(axum::Extension(state))
            .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
            .layer(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                    .layer(TraceLayer::new_for_http().make_span_with(request_span))
                    .layer(axum::middleware::from_fn(platform::metrics::record_http))
                    .layer(PropagateRequestIdLayer::new(request_id))
                    .layer(cors(&config.cors_allowed_origins))
                    .layer(middleware::from_fn_with_state(
                        Admission::new(config.limits.max_in_flight, config.limits.request_timeout),
                        protection::admit,
                    )),
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
        let limits = &self.config.limits;
        let connections = serve::ConnectionLimits {
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            max_header_bytes: limits.max_header_bytes,
        };
        serve::serve(self.listener, self.router, connections, async move {
            shutdown.wait().await;
            tokio::time::sleep(drain_delay).await;
        })
        .await;
        tracing::info!(%address, "gateway stopped");
        Ok(())
    }
}
