//! The gRPC contracts of the mesh, generated from `proto/reactivation/**`.
//!
//! Every service and the gateway depend on this one crate, so a contract is
//! compiled once and both sides of a call always agree on it.

#![allow(unreachable_pub, missing_debug_implementations, clippy::all)]

pub mod billing {
    pub mod v1 {
        tonic::include_proto!("reactivation.billing.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("reactivation.identity.v1");
    }
}

pub mod license {
    pub mod v1 {
        tonic::include_proto!("reactivation.license.v1");
    }
}

pub mod notify {
    pub mod v1 {
        tonic::include_proto!("reactivation.notify.v1");
    }
}

/// Encoded descriptors of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("reactivation_descriptor");
