//! `rmmbridge sim`: a simulated RMM on a local port, for trying rmmbridge and developing against it
//! without touching a production RMM. Prints one JSON line with what a client needs, then serves
//! until Ctrl-C.
use clap::{Args, Subcommand};
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use rmmbridge_sim::server::Faults;
use std::net::SocketAddr;

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// N-able N-central: REST API-Service and SOAP ServerEI2.
    Ncentral {
        #[command(flatten)]
        common: SimArgs,
        /// The server version to report; below 2023.9 only SOAP is served.
        #[arg(long, default_value = "2024.6.0.19")]
        server_version: String,
        /// The API user has MFA on: SOAP refuses its username and password (fault 2100).
        #[arg(long)]
        mfa_enabled: bool,
        /// Concurrent requests allowed per endpoint before 429.
        #[arg(long, default_value_t = 10)]
        max_in_flight: usize,
    },
    /// NinjaOne Public API v2 with its OAuth 2.0 endpoints.
    Ninjaone {
        #[command(flatten)]
        common: SimArgs,
        /// Access token lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        access_ttl: i64,
        /// Refresh token lifetime in seconds (NinjaOne: about 30 days).
        #[arg(long, default_value_t = 30 * 86_400)]
        refresh_ttl: i64,
        /// Reuse refresh tokens instead of issuing a new one on every refresh.
        #[arg(long)]
        no_rotate_refresh: bool,
        /// Answer 400 when client credentials ask for offline_access, as the EU instance does.
        #[arg(long)]
        eu_offline_access_quirk: bool,
    },
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Same seed, same data; two simulators with one seed share machines.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 25)]
    pub customers: u32,
    #[arg(long, default_value_t = 500)]
    pub devices: u32,
    /// Share (0 to 1) of devices on ground shared with the other simulator of the same seed.
    #[arg(long, default_value_t = 0.6)]
    pub shared: f64,
    /// Share of data requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit: f64,
    /// Seconds to send in `Retry-After` with a 429 (none by default, as the real RMMs).
    #[arg(long)]
    pub retry_after: Option<u32>,
    /// Share of data requests that start a burst of 5xx answers.
    #[arg(long, default_value_t = 0.0)]
    pub server_errors: f64,
    /// Length of a 5xx burst.
    #[arg(long, default_value_t = 3)]
    pub burst: u32,
    /// Share of requests delayed by --slow-ms.
    #[arg(long, default_value_t = 0.0)]
    pub slow: f64,
    #[arg(long, default_value_t = 0)]
    pub slow_ms: u64,
    /// Share of requests whose connection breaks mid-response.
    #[arg(long, default_value_t = 0.0)]
    pub resets: f64,
    /// Serve this device page malformed.
    #[arg(long)]
    pub malformed_page: Option<u32>,
    /// Expire the access token in use after this many data requests (once).
    #[arg(long)]
    pub expire_token_after: Option<u32>,
    /// N-central only: share of requests answered 200 with an error message inside.
    #[arg(long, default_value_t = 0.0)]
    pub error_in_200: f64,
}

impl SimArgs {
    fn fleet(&self) -> FleetConfig {
        FleetConfig {
            seed: self.seed,
            customers: self.customers,
            devices: self.devices,
            shared: self.shared,
            ..Default::default()
        }
    }

    fn faults(&self) -> Faults {
        Faults {
            rate_limit: self.rate_limit,
            retry_after_s: self.retry_after,
            server_errors: self.server_errors,
            burst: self.burst,
            slow: self.slow,
            slow_ms: self.slow_ms,
            resets: self.resets,
            malformed_page: self.malformed_page,
            expire_token_after: self.expire_token_after,
            error_in_200: self.error_in_200,
        }
    }
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Ncentral {
            common,
            server_version,
            mfa_enabled,
            max_in_flight,
        } => {
            let cfg = NcentralConfig {
                fleet: common.fleet(),
                faults: common.faults(),
                version: server_version,
                mfa_enabled,
                max_in_flight,
                ..Default::default()
            };
            let sim = NcentralSim::start(common.listen, cfg)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", common.listen))?;
            println!("{}", sim.connection_info());
            eprintln!(
                "N-central simulator at {} (Ctrl-C to stop; /_sim/* changes the fleet)",
                sim.url()
            );
            tokio::signal::ctrl_c().await?;
        }
        SimCommand::Ninjaone {
            common,
            access_ttl,
            refresh_ttl,
            no_rotate_refresh,
            eu_offline_access_quirk,
        } => {
            let cfg = NinjaConfig {
                fleet: common.fleet(),
                faults: common.faults(),
                access_ttl_s: access_ttl,
                refresh_ttl_s: refresh_ttl,
                rotate_refresh: !no_rotate_refresh,
                reject_offline_access_for_client_credentials: eu_offline_access_quirk,
                ..Default::default()
            };
            let sim = NinjaSim::start(common.listen, cfg)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", common.listen))?;
            println!("{}", sim.connection_info());
            eprintln!(
                "NinjaOne simulator at {} (Ctrl-C to stop; /_sim/* changes the fleet)",
                sim.url()
            );
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}
