//! Compiles every `.proto` under `reactivation/` into Rust with tonic + prost.
//!
//! A fresh machine has no `protoc`, so the vendored binary is used unless
//! `PROTOC` names another one; a file descriptor set is emitted for gRPC
//! server reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "reactivation/identity/v1/identity.proto",
    "reactivation/notify/v1/notify.proto",
    "reactivation/license/v1/license.proto",
    "reactivation/billing/v1/billing.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let well_known = protoc_bin_vendored::include_path()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let includes = [PathBuf::from("."), well_known];
    let protos: Vec<PathBuf> = PROTOS.iter().map(PathBuf::from).collect();
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("reactivation_descriptor.bin"))
        .compile_with_config(config, &protos, &includes)?;
    Ok(())
}
