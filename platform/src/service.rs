//! The skeleton every gRPC service of the mesh is built on: what it
//! connects and binds, the background work it runs, and the order it stops.
//!
//! A service says only what is its own by implementing [`Service`]: its
//! settings, its migrations, and — given the [`Foundation`] every service
//! shares (Postgres migrated, Redis, session floors, the authenticator, the
//! outbox waker) — its gRPC routes, its domain and its background tasks.
//! [`Application`] does the rest the same way for all: `build` connects,
//! migrates, builds the service and binds its listener (port 0 in tests);
//! `run` serves until shutdown, then stops in order — the server reports
//! NOT_SERVING and drains its in-flight calls while every tracked task
//! finishes the piece of work it is in, and only then does the pool close.
//! [`main`] is a binary's whole life, for a `main.rs` of a few lines
//! ([`crate::service_main!`]).

use std::{fmt, future::Future, net::SocketAddr, pin::Pin};

use sqlx::{PgPool, migrate::Migrator};
use tokio::{net::TcpListener, task::JoinSet};
use tonic::service::Routes;

use crate::{
    auth::{Authenticator, InternalToken, SessionFloors},
    cli::ServiceCommand,
    client::TracedChannel,
    clock::Clock,
    config::{ConfigError, ServiceConfig},
    health::Stores,
    kv::Kv,
    outbox::{Deliver, Relay, Waker},
    shutdown::Shutdown,
};

/// What a service of the mesh is, beyond the skeleton every one shares.
pub trait Service: Sized + 'static {
    /// The binary's name, e.g. `identity-svc`: telemetry's service name.
    const NAME: &'static str;
    /// All the service's settings, [`ServiceConfig`] among them.
    type Config: fmt::Debug + Send + 'static;
    /// What jobs, commands and tests reach behind the server (the use cases).
    type Domain: Clone + fmt::Debug + Send + 'static;

    /// The service's own migrations.
    const MIGRATOR: &'static Migrator;
    /// Whether its outbox table comes from the platform's one schema
    /// ([`crate::outbox::SCHEMA`], applied before [`Service::MIGRATOR`]):
    /// every service created from now on that owes effects says `true`.
    /// identity-svc, license-svc and billing-svc say `false`: they created
    /// the table in their own migrations, which are applied and stay.
    const OUTBOX_FROM_PLATFORM: bool = false;

    /// The settings from the environment.
    fn config_from_env() -> Result<Self::Config, ConfigError>;
    /// The settings every service reads the same way.
    fn service_config(config: &Self::Config) -> &ServiceConfig;
    /// The service itself, built on what every service connects.
    fn build(
        config: Self::Config,
        foundation: Foundation,
    ) -> impl Future<Output = anyhow::Result<Parts<Self::Domain>>> + Send;
}

/// What every service connects before it builds itself, in this order:
/// Postgres (migrations applied), Redis, then what rests on them.
#[derive(Debug)]
pub struct Foundation {
    pub pool: PgPool,
    pub kv: Kv,
    /// Session floors: sessions that end at once (read by the authenticator).
    pub floors: SessionFloors,
    /// The secret this service presents to the others.
    pub internal: InternalToken,
    /// Checks the caller of every call: access tokens and the internal token.
    pub authenticator: Authenticator,
    /// Wakes the outbox relay right after a commit that owes an effect.
    pub waker: Waker,
    /// "Now" (tests pin it).
    pub clock: Clock,
    config: ServiceConfig,
}

impl Foundation {
    async fn connect(config: &ServiceConfig, migrator: &Migrator, clock: Clock) -> anyhow::Result<Self> {
        let pool = config.connect_database().await?;
        crate::db::migrate(&pool, migrator).await?;
        let kv = config.connect_redis().await?;
        let floors = SessionFloors::new(kv.clone(), config.access_token_ttl);
        let internal = InternalToken::new(config.internal_token.clone());
        let authenticator =
            Authenticator::from_pem(&config.jwt_public_key, floors.clone())?.with_internal_token(internal.clone());
        Ok(Self {
            pool,
            kv,
            floors,
            internal,
            authenticator,
            waker: Waker::default(),
            clock,
            config: config.clone(),
        })
    }

    /// A client channel to the service at `url`, with the ordinary call
    /// deadline (`CALL_TIMEOUT_MS`).
    pub fn channel(&self, url: &str) -> anyhow::Result<TracedChannel> {
        crate::client::channel(url, self.config.call_timeouts.call)
    }

    /// A client channel to the service at `url` whose calls wait on the
    /// payment provider (`PAYMENT_CALL_TIMEOUT_MS`).
    pub fn payment_channel(&self, url: &str) -> anyhow::Result<TracedChannel> {
        crate::client::channel(url, self.config.call_timeouts.payment_call)
    }

    /// The relay that delivers this service's outbox through `deliver`,
    /// woken by [`Foundation::waker`].
    pub fn relay<D: Deliver>(&self, deliver: D) -> Relay<D> {
        Relay::new(self.pool.clone(), deliver, self.waker.clone())
    }
}

/// What a service adds to its foundation.
#[derive(Debug)]
pub struct Parts<D> {
    /// The service's gRPC routes.
    pub routes: Routes,
    /// The fully-qualified names of the services in `routes`, for health.
    pub service_names: Vec<&'static str>,
    pub domain: D,
    /// The background work that runs beside the server.
    pub tasks: Tasks,
}

type TaskStart = Box<dyn FnOnce(Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Background work (the outbox relay, periodic jobs, workers), started when
/// the service runs and awaited when it stops: none is left behind, so no
/// work a caller was promised dies half-done with the process.
#[derive(Default)]
pub struct Tasks {
    tasks: Vec<(&'static str, TaskStart)>,
}

impl fmt::Debug for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tasks.iter().map(|(name, _)| name)).finish()
    }
}

impl Tasks {
    /// Runs `task` beside the server. It is given the stop signal: on it,
    /// it finishes the piece of work it is in and returns.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F) -> &mut Self
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push((name, Box::new(move |stop| Box::pin(task(stop)))));
        self
    }

    /// Runs `relay` beside the server.
    pub fn relay<D: Deliver>(&mut self, relay: Relay<D>) -> &mut Self {
        self.spawn("outbox relay", move |stop| relay.run(stop))
    }

    /// Runs `work` beside the server, but only until the stop signal: work
    /// nobody waits for (a start-up check), which is abandoned rather than
    /// allowed to hold up a shutdown.
    pub fn spawn_until_stopped<Fut>(&mut self, name: &'static str, work: Fut) -> &mut Self
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, move |stop| async move {
            tokio::select! {
                () = work => {}
                () = stop.wait() => {}
            }
        })
    }
}

/// A built service, bound and ready to serve.
#[derive(Debug)]
pub struct Application<S: Service> {
    listener: TcpListener,
    parts: Parts<S::Domain>,
    pool: PgPool,
    /// Probed for the health service.
    stores: Stores,
    config: ServiceConfig,
}

impl<S: Service> Application<S> {
    pub async fn build(config: S::Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// As [`Application::build`], with "now" taken from `clock` (tests pin it).
    pub async fn build_with_clock(config: S::Config, clock: Clock) -> anyhow::Result<Self> {
        let service_config = S::service_config(&config).clone();
        let foundation = Foundation::connect(&service_config, &migrations::<S>(), clock).await?;
        let pool = foundation.pool.clone();
        let stores = Stores::new(pool.clone(), foundation.kv.clone());
        let parts = S::build(config, foundation).await?;
        let listener = TcpListener::bind(service_config.listen_addr).await?;
        Ok(Self {
            listener,
            parts,
            pool,
            stores,
            config: service_config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The domain behind the service, for jobs, commands and tests.
    pub fn domain(&self) -> S::Domain {
        self.parts.domain.clone()
    }

    /// Serves, and runs every background task, until `shutdown` triggers;
    /// then drains in-flight calls while the tasks finish what they are in,
    /// waits for them all, and closes the pool.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        // The tasks have a stop of their own so that a server that fails to
        // serve stops them too, without triggering the caller's shutdown
        // (which, in the development launcher, every service shares).
        let stop = Shutdown::new();
        let forward = tokio::spawn({
            let (shutdown, stop) = (shutdown.clone(), stop.clone());
            async move {
                shutdown.wait().await;
                stop.trigger();
            }
        });
        let mut running = JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for (name, start) in self.parts.tasks.tasks {
            let handle = running.spawn(start(stop.clone()));
            names.insert(handle.id(), name);
        }

        let result = crate::serve::serve_grpc(
            self.listener,
            self.parts.routes,
            &self.parts.service_names,
            self.stores,
            shutdown,
            self.config.drain_delay,
        )
        .await;

        stop.trigger();
        forward.abort();
        while let Some(joined) = running.join_next_with_id().await {
            if let Err(err) = joined {
                let task = names.get(&err.id()).copied().unwrap_or("a background task");
                tracing::error!(task, error = %err, "a background task ended abnormally");
            }
        }
        self.pool.close().await;
        result
    }
}

/// Every migration of `S`: its own, and the outbox's if it takes it from
/// the platform.
pub fn migrations<S: Service>() -> Migrator {
    let platform = if S::OUTBOX_FROM_PLATFORM {
        crate::outbox::SCHEMA.iter()
    } else {
        [].iter()
    };
    Migrator::with_migrations(platform.chain(S::MIGRATOR.iter()).cloned().collect())
}

/// A service binary's life after its arguments are parsed: telemetry, the
/// settings from the environment, then `command`.
pub async fn main<S: Service>(command: ServiceCommand) -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init(S::NAME)?;
    let config = S::config_from_env()?;
    execute::<S>(command, config).await
}

/// Carries out one of the commands every service binary has.
pub async fn execute<S: Service>(command: ServiceCommand, config: S::Config) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Serve => {
            let shutdown = Shutdown::on_signals();
            crate::metrics::start_admin_from_env(shutdown.clone()).await?;
            Application::<S>::build(config).await?.run(shutdown).await
        }
        ServiceCommand::Migrate => {
            crate::db::migrate_database(&S::service_config(&config).database_url, &migrations::<S>()).await
        }
        ServiceCommand::CheckConfig => {
            crate::cli::print_settings(&config);
            Ok(())
        }
    }
}

/// A service binary's `main`: its arguments first (`--help` needs no
/// environment and lists `$settings` after the shared ones), then
/// [`main`]. `$service` implements [`Service`].
///
/// A binary with operator commands of its own names their
/// [`clap::Subcommand`] enum and the function running one, given the
/// service's configuration (telemetry is started first, as for serving):
/// `service_main!(BillingSvc, SETTINGS, Command, run)`.
#[macro_export]
macro_rules! service_main {
    ($service:ty, $settings:expr) => {
        $crate::service_main!(@cli $settings, $crate::cli::ServiceCommand);

        #[::tokio::main]
        async fn main() -> ::anyhow::Result<()> {
            let cli = <Cli as ::clap::Parser>::parse();
            $crate::service::main::<$service>(cli.command.unwrap_or($crate::cli::ServiceCommand::Serve)).await
        }
    };
    ($service:ty, $settings:expr, $own:ty, $run:path) => {
        #[derive(Debug, ::clap::Subcommand)]
        enum AnyCommand {
            #[command(flatten)]
            Service($crate::cli::ServiceCommand),
            #[command(flatten)]
            Own($own),
        }

        $crate::service_main!(@cli $settings, AnyCommand);

        #[::tokio::main]
        async fn main() -> ::anyhow::Result<()> {
            let cli = <Cli as ::clap::Parser>::parse();
            match cli.command.unwrap_or(AnyCommand::Service($crate::cli::ServiceCommand::Serve)) {
                AnyCommand::Service(command) => $crate::service::main::<$service>(command).await,
                AnyCommand::Own(command) => {
                    let _telemetry = $crate::telemetry::init(<$service as $crate::service::Service>::NAME)?;
                    let config = <$service as $crate::service::Service>::config_from_env()?;
                    $run(command, config).await
                }
            }
        }
    };
    (@cli $settings:expr, $command:ty) => {
        #[derive(Debug, ::clap::Parser)]
        #[command(
            version,
            about,
            after_help = $crate::cli::settings_help(&format!("{}{}", $crate::cli::SERVICE_SETTINGS, $settings))
        )]
        struct Cli {
            #[command(subcommand)]
            command: Option<$command>,
        }
    };
}
