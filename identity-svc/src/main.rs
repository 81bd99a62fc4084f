//! identity-svc: arguments first (`--help` needs no environment), then the
//! configuration from the environment; then serve (the default), or run an
//! operator command:
//!
//! - `identity-svc serve` — serve until SIGTERM or Ctrl-C.
//! - `identity-svc migrate` — apply the migrations, then exit.
//! - `identity-svc check-config` — print the settings, secrets masked.
//! - `identity-svc create-admin EMAIL [--promote]` — make an admin: a new
//!   account whose password is read from standard input (never from an
//!   argument, which other users of the machine can see), or with
//!   `--promote` an existing account given the role.

use std::io::{BufRead, IsTerminal};

use identity_svc::{
    Config, IdentitySvc,
    admins::{AdminMade, create_admin},
    config::SETTINGS,
};

platform::service_main!(IdentitySvc, SETTINGS, Command, run);

/// identity-svc's own operator commands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make an admin: a new account (its password read from standard
    /// input, e.g. `printf '%s\n' "$PASSWORD" | identity-svc create-admin EMAIL`),
    /// or an existing one given the role with --promote.
    CreateAdmin {
        /// The admin's email address.
        email: String,
        /// Give the admin role to the existing account of EMAIL.
        #[arg(long)]
        promote: bool,
    },
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let Command::CreateAdmin { email, promote } = command;
    let stdin = std::io::stdin();
    anyhow::ensure!(
        promote || !stdin.is_terminal(),
        "pipe the new admin's password in: printf '%s\\n' \"$PASSWORD\" | identity-svc create-admin {email}"
    );
    let mut password = String::new();
    if !promote {
        stdin.lock().read_line(&mut password)?;
    }
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    match create_admin(&config, &email, password, promote).await? {
        AdminMade::Created(id) => println!("admin {email} created ({id})"),
        AdminMade::Promoted(id) => println!("{email} ({id}) is now an admin; it takes effect at its next login"),
        AdminMade::AlreadyAdmin(id) => println!("{email} ({id}) is an admin already; nothing changed"),
    }
    Ok(())
}
