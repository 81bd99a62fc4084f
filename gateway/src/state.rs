//! What every handler of the gateway can reach: the clients of the
//! services, the limits and the validation cache, the authenticator, the
//! web app's settings. Built once by [`crate::Application::build`] and
//! cloned into each request.

use std::{net::SocketAddr, sync::Arc};

use platform::{auth::Authenticator, clock::Clock, license_key::LicenseKey, shutdown::Shutdown};

use crate::{
    client_address::TrustedProxies,
    downstream::{BillingClient, Calls, IdentityClient, LicenseClient},
    local_limit::LocalLimiter,
    routes::{self, keys::ValidationCache},
    web,
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
    pub trusted_proxies: TrustedProxies,
    /// The web app's templates and cookie settings.
    pub web: web::Web,
    /// For `/healthz/stores`.
    pub store_probes: routes::system::StoreProbes,
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
        self.trusted_proxies.client(headers, peer).to_string()
    }
}
