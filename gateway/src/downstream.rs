//! gRPC clients of the services behind the gateway.
//!
//! Channels connect lazily (the gateway starts even if a service is not up
//! yet, and reconnects by itself), every call carries a deadline, the
//! caller's bearer token when it acts for a user, the request id, and the
//! trace context, so one REST request is one trace across the mesh.

use std::time::Duration;

use platform::{auth::Caller, client::TracedChannel};
use proto::{
    billing::v1::billing_service_client::BillingServiceClient,
    identity::v1::identity_service_client::IdentityServiceClient,
    license::v1::license_service_client::LicenseServiceClient,
};
use tonic::Request;

pub use platform::client::channel;

pub type IdentityClient = IdentityServiceClient<TracedChannel>;
pub type LicenseClient = LicenseServiceClient<TracedChannel>;
pub type BillingClient = BillingServiceClient<TracedChannel>;

/// Builds downstream requests with the same deadline and context.
#[derive(Clone, Debug)]
pub struct Calls {
    pub timeout: Duration,
}

impl Calls {
    /// A request made by the gateway itself (no user behind it).
    pub fn anonymous<T>(&self, request_id: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        // Sent as `grpc-timeout`, so the service can give up when we have.
        request.set_timeout(self.timeout);
        if let Ok(value) = request_id.parse() {
            request.metadata_mut().insert("x-request-id", value);
        }
        request
    }

    /// A request made on behalf of `caller`, carrying their token so the
    /// service authorizes it again by itself.
    pub fn on_behalf<T>(&self, caller: &Caller, request_id: &str, message: T) -> Request<T> {
        let mut request = self.anonymous(request_id, message);
        if let Ok(value) = format!("Bearer {}", caller.token.expose()).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }
}
