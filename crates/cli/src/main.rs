//! The `rmmbridge` binary: one command line over the server, the store and the simulators.
#![forbid(unsafe_code)]

mod commands;
mod logging;

use clap::{Args, Parser, Subcommand};
use rmmbridge_core::secret::SecretString;
use rmmbridge_server::config::{LogFormat, Overrides, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc returns freed memory to the system more readily than glibc's per-thread arenas, which
/// keeps a 100,000-device sync's peak RSS lower (measured with `rmmbridge bench sync`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rmmbridge",
    version,
    about = "Self-hosted RMM integration hub for N-able N-central and NinjaOne",
    long_about = "rmmbridge imports the clients and computers of your RMM platforms, maps them onto your tenants, \
                  identifies the same machine across RMMs as one computer, keeps it all fresh and runs scripts \
                  through the RMM.\n\nStart with `rmmbridge demo` to try it against built-in simulated RMMs."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Settings every command shares. Each flag also reads its RMMBRIDGE_* environment variable.
#[derive(Args, Clone, Default)]
struct GlobalArgs {
    /// Optional TOML configuration file (keys: listen, public_url, data_dir, database_url, master_key_file, log, log_format).
    #[arg(long, global = true, env = "RMMBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and the master key file [default: ./rmmbridge-data].
    #[arg(long, global = true, env = "RMMBRIDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://<path> or postgres://user@host/db [default: SQLite in the data directory].
    #[arg(long, global = true, env = "RMMBRIDGE_DATABASE_URL")]
    database_url: Option<String>,
    /// Master key file [default: <data dir>/master.key, created with mode 0600 on first start].
    #[arg(long, global = true, env = "RMMBRIDGE_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `rmmbridge_server=debug,info`.
    #[arg(long, global = true, env = "RMMBRIDGE_LOG")]
    log: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "RMMBRIDGE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
}

#[derive(Args, Clone, Default)]
struct ListenArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "RMMBRIDGE_LISTEN")]
    listen: Option<SocketAddr>,
    /// The URL people and RMMs use to reach this server (used for the OAuth redirect URI) [default: http://<listen>].
    #[arg(long, env = "RMMBRIDGE_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (web UI, REST API, workers).
    Serve(ListenArgs),
    /// Try rmmbridge: a server on a fresh embedded SQLite database with an admin account printed once.
    Demo(commands::demo::DemoArgs),
    /// Apply database migrations and exit (the server also applies them at start).
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// Manage API tokens (sent as `Authorization: Bearer <token>` to /api/v1).
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Manage integrations (connections to N-central and NinjaOne).
    #[command(subcommand)]
    Integration(commands::integration::IntegrationCommand),
    /// Run a device sync of one integration now, with progress and a summary.
    Sync(commands::sync::SyncArgs),
    /// Map an integration's clients onto tenants: list, refresh, auto-match, match, create,
    /// exclude, include, create-unmatched, preview, apply [--sync].
    Clients(commands::clients::ClientsArgs),
    /// Benchmarks against in-process simulators; each prints one JSON line.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Print the current 6-digit TOTP code for a Base32 MFA secret (RFC 6238, SHA-1, 30 s).
    Totp(commands::totp::TotpArgs),
    /// Run a simulated RMM (N-central or NinjaOne) with seeded MSP data; prints one JSON line
    /// with what a client needs.
    #[command(subcommand)]
    Sim(commands::sim::SimCommand),
}

impl GlobalArgs {
    fn settings(&self, listen: Option<&ListenArgs>) -> anyhow::Result<Settings> {
        Ok(Settings::resolve(Overrides {
            config_file: self.config.clone(),
            listen: listen.and_then(|l| l.listen),
            public_url: listen.and_then(|l| l.public_url.clone()),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            // Read here rather than as a flag: a key on the command line would show in `ps`.
            master_key: std::env::var("RMMBRIDGE_MASTER_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty())
                .map(SecretString::from),
            master_key_file: self.master_key_file.clone(),
            log_filter: self.log.clone(),
            log_format: self.log_format,
        })?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Serve(listen) => {
            let settings = g.settings(Some(&listen))?;
            logging::init(&settings);
            commands::serve::run(settings).await
        }
        Command::Demo(args) => commands::demo::run(g.settings(Some(&args.listen))?, args).await,
        Command::Migrate => {
            let settings = g.settings(None)?;
            logging::init(&settings);
            let db = rmmbridge_server::startup::open_database(&settings).await?;
            println!("database is up to date ({})", db.backend());
            Ok(())
        }
        Command::User(cmd) => commands::user::run(g.settings(None)?, cmd).await,
        Command::Token(cmd) => commands::token::run(g.settings(None)?, cmd).await,
        Command::Integration(cmd) => commands::integration::run(g.settings(None)?, cmd).await,
        Command::Sync(a) => commands::sync::run(g.settings(None)?, a).await,
        Command::Clients(a) => commands::clients::run(g.settings(None)?, a).await,
        Command::Bench(cmd) => commands::bench::run(cmd).await,
        Command::Totp(args) => commands::totp::run(args),
        Command::Sim(cmd) => commands::sim::run(cmd).await,
    }
}
