//! `rmmbridge bench`: measurements that print one JSON line each, so that runs can be compared
//! by machines. Every figure that is a ratio is measured against a baseline taken in the same run.
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use rmmbridge_core::secret::SecretString;
use rmmbridge_rmm::Connector;
use rmmbridge_rmm::ncentral::{NcentralConnector, NcentralCredentials, NcentralSettings};
use rmmbridge_rmm::ninjaone::{NinjaConnector, NinjaGrant, NinjaSettings, NoStore};
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The floor: fetch and parse every client and device page through the connector, store nothing.
    Fetch(FetchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Rmm {
    Ncentral,
    Ninjaone,
}

#[derive(Args)]
pub struct FetchArgs {
    #[arg(long, default_value_t = 10_000)]
    pub devices: u32,
    #[arg(long, value_enum, default_value = "ninjaone")]
    pub rmm: Rmm,
    /// Customers in the simulated fleet [default: one per 200 devices, at least 10].
    #[arg(long)]
    pub customers: Option<u32>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Requests in flight from the connector.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

/// A simulator running in this process, and a connector that talks to it over loopback HTTP.
pub enum SimulatedRmm {
    Ncentral(NcentralSim),
    Ninjaone(NinjaSim),
}

impl SimulatedRmm {
    pub async fn start(rmm: Rmm, fleet: FleetConfig) -> anyhow::Result<SimulatedRmm> {
        let addr = "127.0.0.1:0".parse()?;
        Ok(match rmm {
            Rmm::Ncentral => SimulatedRmm::Ncentral(
                NcentralSim::start(
                    addr,
                    NcentralConfig {
                        fleet,
                        // The real server allows up to 50 per endpoint; the bench must not be throttled by the sim.
                        max_in_flight: 50,
                        ..Default::default()
                    },
                )
                .await?,
            ),
            Rmm::Ninjaone => SimulatedRmm::Ninjaone(
                NinjaSim::start(
                    addr,
                    NinjaConfig {
                        fleet,
                        ..Default::default()
                    },
                )
                .await?,
            ),
        })
    }

    pub fn connection_info(&self) -> serde_json::Value {
        match self {
            SimulatedRmm::Ncentral(s) => s.connection_info(),
            SimulatedRmm::Ninjaone(s) => s.connection_info(),
        }
    }

    /// A connector with no token store (client credentials for NinjaOne): nothing is persisted.
    pub fn connector(&self, concurrency: usize) -> anyhow::Result<Arc<dyn Connector>> {
        let info = self.connection_info();
        let text = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
        Ok(match self {
            SimulatedRmm::Ncentral(s) => {
                let mut settings = NcentralSettings::new(&s.url());
                settings.http.max_in_flight = concurrency;
                settings.asset_concurrency = concurrency;
                Arc::new(NcentralConnector::new(
                    &settings,
                    NcentralCredentials::jwt(SecretString::new(text("jwt"))),
                )?)
            }
            SimulatedRmm::Ninjaone(s) => {
                let mut settings = NinjaSettings {
                    instance: s.url(),
                    client_id: text("client_id"),
                    script_id: Some(info["script_id"].to_string()),
                    tls: Default::default(),
                    http: Default::default(),
                };
                settings.http.max_in_flight = concurrency;
                Arc::new(NinjaConnector::new(
                    &settings,
                    SecretString::new(text("client_secret")),
                    NinjaGrant::ClientCredentials,
                    NoStore,
                )?)
            }
        })
    }
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB; the simulator included.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

pub struct Floor {
    pub clients: usize,
    pub devices: u64,
    pub pages: u64,
    pub wall_s: f64,
}

/// Fetches and parses everything once, holding one page at a time.
pub async fn fetch_floor(c: &dyn Connector) -> anyhow::Result<Floor> {
    let started = Instant::now();
    let clients = c.list_clients().await?.len();
    let (mut devices, mut pages) = (0u64, 0u64);
    let mut stream = c.devices();
    while let Some(page) = stream.next().await {
        devices += page?.len() as u64;
        pages += 1;
    }
    Ok(Floor {
        clients,
        devices,
        pages,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

pub fn fleet(devices: u32, customers: Option<u32>, seed: u64) -> FleetConfig {
    FleetConfig {
        seed,
        customers: customers.unwrap_or((devices / 200).max(10)),
        devices,
        ..Default::default()
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Fetch(a) => {
            let sim = SimulatedRmm::start(a.rmm, fleet(a.devices, a.customers, a.seed)).await?;
            let c = sim.connector(a.concurrency)?;
            let f = fetch_floor(c.as_ref()).await?;
            println!(
                "{}",
                json!({
                    "bench": "fetch",
                    "rmm": format!("{:?}", a.rmm).to_lowercase(),
                    "devices": f.devices,
                    "clients": f.clients,
                    "pages": f.pages,
                    "concurrency": a.concurrency,
                    "wall_s": round3(f.wall_s),
                    "devices_per_s": round3(f.devices as f64 / f.wall_s.max(1e-9)),
                    "peak_rss_mb": peak_rss_mb(),
                    "note": "peak_rss_mb is the whole process, the in-process simulator included",
                })
            );
        }
    }
    Ok(())
}
