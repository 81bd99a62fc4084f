//! `bench`: measures the mesh and, in the same run, the physical limit it is
//! bounded by, then prints both and their ratio. Run in release mode:
//!
//! ```text
//! scripts/bench login [--seconds N] [--concurrency N]
//! scripts/bench validate [--seconds N] [--concurrency N]
//! scripts/abuse
//! ```
//!
//! The services run as their real release binaries, in processes of their
//! own beside the benchmark, so each one's peak memory is reported.
//!
//! `login`: password logins per second through the gateway (HTTP → gateway
//! → gRPC → identity-svc → Postgres, argon2id verify, token signing) against
//! raw argon2id hashes per second with the same parameters on all cores.
//! Needs `DATABASE_URL` and `REDIS_URL` (a database is created and dropped).
//!
//! `validate`: license validations per second and their latency (default 64
//! in flight) through the gateway (with its validation cache, and a second
//! gateway with it off) and directly over gRPC to license-svc, against raw
//! Postgres select-only transactions per second (pgbench, prepared, over
//! TCP, on a scratch database it creates and drops). HTTP load comes from
//! a lean generator on one thread, so the client is not what is measured.
//!
//! `abuse`: hostile traffic (see [`abuse`]); a figure per case, and a
//! failure when the mesh answers wrongly. CI runs it.

mod abuse;
mod http_load;
mod login;
mod measure;
mod processes;
mod validate;

use std::time::Duration;

#[derive(Debug)]
struct Options {
    seconds: u64,
    concurrency: usize,
}

fn parse_options(args: &[String], defaults: Options) -> anyhow::Result<Options> {
    let mut options = defaults;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse()?,
            "--concurrency" => options.concurrency = value.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((scenario, rest)) = args.split_first() else {
        anyhow::bail!("usage: bench login|validate|abuse [--seconds N] [--concurrency N]");
    };
    let defaults = match scenario.as_str() {
        "validate" => Options {
            seconds: 10,
            concurrency: 64,
        },
        _ => Options {
            seconds: 15,
            concurrency: 8,
        },
    };
    let options = parse_options(rest, defaults)?;
    if cfg!(debug_assertions) && scenario != "abuse" {
        eprintln!("warning: a debug build measures the compiler, not the mesh; use --release");
    }
    match scenario.as_str() {
        "abuse" => abuse::run().await,
        "login" => login::run(Duration::from_secs(options.seconds), options.concurrency).await,
        "validate" => validate::run(Duration::from_secs(options.seconds), options.concurrency).await,
        other => anyhow::bail!("unknown scenario {other}; try: login, validate, abuse"),
    }
}
