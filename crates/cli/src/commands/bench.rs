//! `rmmbridge bench`: measurements that print one JSON line each, so that runs can be compared
//! by machines. Every figure that is a ratio is measured against a baseline taken in the same run.
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use rmmbridge_core::IntegrationKind;
use rmmbridge_core::plan::RunCounts;
use rmmbridge_core::secret::MasterKey;
use rmmbridge_core::secret::SecretString;
use rmmbridge_rmm::Connector;
use rmmbridge_rmm::ncentral::{NcentralConnector, NcentralCredentials, NcentralSettings};
use rmmbridge_rmm::ninjaone::{NinjaConnector, NinjaGrant, NinjaSettings, NoStore};
use rmmbridge_server::config::{Overrides, Settings};
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::integrations::{self, IntegrationInput};
use rmmbridge_server::services::mapping::{ClientMapping, SyncAfter};
use rmmbridge_server::startup::{Services, services_with_db};
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::fleet::{Change, Fleet, FleetError, Overrides as DeviceChange};
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use rmmbridge_store::testing::TestDb;
use rmmbridge_store::{ComputerQuery, TenantScope};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The floor: fetch and parse every client and device page through the connector, store nothing.
    Fetch(FetchArgs),
    /// Sync into a fresh database: a first full sync, a no-change resync and a resync with 1% of
    /// devices changed, each against the fetch-only floor measured in the same run.
    Sync(SyncArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RmmChoice {
    Ncentral,
    Ninjaone,
    /// Both, with overlapping fleets (the same seed): shared machines are merged.
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Database {
    Sqlite,
    /// A fresh database on `RMMBRIDGE_TEST_PG_URL` (default postgres://postgres@127.0.0.1:5432/postgres), dropped afterwards.
    Postgres,
}

#[derive(Args)]
pub struct SyncArgs {
    /// Devices per simulated RMM.
    #[arg(long, default_value_t = 10_000)]
    pub devices: u32,
    #[arg(long, value_enum, default_value = "ninjaone")]
    pub rmm: RmmChoice,
    #[arg(long, value_enum, default_value = "sqlite")]
    pub database: Database,
    #[arg(long)]
    pub customers: Option<u32>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
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

impl SimulatedRmm {
    /// The integration that points the hub at this simulator.
    fn integration(&self, concurrency: usize) -> IntegrationInput {
        let info = self.connection_info();
        let obj = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        let options = json!({"sync_interval_minutes": 0});
        match self {
            SimulatedRmm::Ncentral(s) => IntegrationInput {
                kind: IntegrationKind::Ncentral,
                name: "bench N-central".into(),
                settings: json!({"server_url": s.url(), "max_in_flight": concurrency}),
                secrets: obj(json!({"jwt": info["jwt"]})),
                options,
            },
            SimulatedRmm::Ninjaone(s) => IntegrationInput {
                kind: IntegrationKind::Ninjaone,
                name: "bench NinjaOne".into(),
                settings: json!({"instance": s.url(), "client_id": info["client_id"],
                    "grant": "client_credentials", "max_in_flight": concurrency}),
                secrets: obj(json!({"client_secret": info["client_secret"]})),
                options,
            },
        }
    }

    /// Renames every hundredth device, as technicians renaming machines would; returns how many.
    fn change_one_percent(&self) -> anyhow::Result<u64> {
        fn rename(fleet: &mut Fleet, now: i64) -> Result<Vec<Change>, FleetError> {
            let ids: Vec<i64> = fleet.rows().iter().step_by(100).map(|r| r.id).collect();
            ids.iter()
                .map(|id| {
                    fleet.change_device(
                        *id,
                        DeviceChange {
                            hostname: Some(format!("RENAMED-{id}")),
                            ..Default::default()
                        },
                        now,
                    )
                })
                .collect()
        }
        let n = match self {
            SimulatedRmm::Ncentral(s) => s.change(rename)?.len(),
            SimulatedRmm::Ninjaone(s) => s.change(|f, now| rename(f, now).map(|c| (c.len(), c)))?,
        };
        Ok(n as u64)
    }
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB; the simulator included.
pub fn peak_rss_mb() -> Option<f64> {
    status_mb("VmHWM:")
}

/// CPU time this process has used so far (user + system, Linux `/proc/self/stat`), in seconds:
/// with wall time it shows whether a phase waited or worked (2 cores: at most 2 s per second).
pub fn cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// Resident memory of this process now (Linux `VmRSS`), in MiB.
pub fn rss_mb() -> Option<f64> {
    status_mb("VmRSS:")
}

/// A `kB` line of `/proc/self/status`, in MiB to one decimal.
fn status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
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

fn cpu_since(start: Option<f64>) -> Option<f64> {
    Some(round3(cpu_s()? - start?))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One sync of every integration; returns the summed counts.
async fn sync_all(services: &Services, ids: &[i64]) -> anyhow::Result<(f64, RunCounts)> {
    let started = Instant::now();
    let mut total = RunCounts::default();
    for id in ids {
        let out = services.sync.run(*id, "bench", &|_| {}).await?;
        let c = out.counts;
        total.fetched += c.fetched;
        total.new += c.new;
        total.changed += c.changed;
        total.new_computers += c.new_computers;
        total.identified_smbios_uuid += c.identified_smbios_uuid;
        total.identified_serial += c.identified_serial;
        total.identified_mac += c.identified_mac;
        total.manual_decisions += c.manual_decisions;
        total.rows_written += c.rows_written;
        for (stage, ms) in c.stage_ms {
            total.add_ms(&stage, ms);
        }
    }
    Ok((started.elapsed().as_secs_f64(), total))
}

/// Median wall time of a computer search, in milliseconds.
async fn search_ms(db: &rmmbridge_store::Db, q: &str) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        db.search_computers(&ComputerQuery {
            q: Some(q.into()),
            ..Default::default()
        })
        .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(round3(times[times.len() / 2]))
}

async fn bench_sync(a: SyncArgs) -> anyhow::Result<serde_json::Value> {
    let rmms: &[Rmm] = match a.rmm {
        RmmChoice::Ncentral => &[Rmm::Ncentral],
        RmmChoice::Ninjaone => &[Rmm::Ninjaone],
        RmmChoice::Both => &[Rmm::Ncentral, Rmm::Ninjaone],
    };
    let mut sims = Vec::new();
    for r in rmms {
        sims.push(SimulatedRmm::start(*r, fleet(a.devices, a.customers, a.seed)).await?);
    }
    let simulators_rss_mb = rss_mb();
    // The floor, in the same run: fetch and parse everything, store nothing.
    let mut floor_s = 0.0;
    let cpu = cpu_s();
    for sim in &sims {
        floor_s += fetch_floor(sim.connector(a.concurrency)?.as_ref())
            .await?
            .wall_s;
    }
    let floor_cpu_s = cpu_since(cpu);

    let test_db = match a.database {
        Database::Sqlite => TestDb::sqlite().await,
        Database::Postgres => TestDb::postgres().await.ok_or_else(|| {
            anyhow::anyhow!("PostgreSQL is unreachable; set RMMBRIDGE_TEST_PG_URL")
        })?,
    };
    let dir = tempfile::tempdir()?;
    let settings = Settings::resolve(Overrides {
        data_dir: Some(dir.path().to_owned()),
        master_key: Some(SecretString::new(MasterKey::generate()?.to_base64())),
        ..Default::default()
    })?;
    let services = services_with_db(&settings, test_db.db.clone()).await?;
    let db = &services.db;
    let mut ids = Vec::new();
    for sim in &sims {
        let i = integrations::create(
            db,
            &services.vault,
            &Actor::cli(),
            &sim.integration(a.concurrency),
        )
        .await?;
        // Every company onto a tenant of its name: Create unmatched, then Finish, as an admin would.
        let mapping = ClientMapping {
            db,
            connectors: &services.connectors,
            sync: &services.sync,
        };
        let actor = Actor::cli();
        mapping.refresh(i.id, &actor).await?;
        mapping.create_unmatched(i.id, &actor).await?;
        mapping.apply(i.id, &actor, SyncAfter::Caller).await?;
        ids.push(i.id);
    }

    let cpu = cpu_s();
    let (full_sync_s, full) = sync_all(&services, &ids).await?;
    let full_cpu_s = cpu_since(cpu);
    let cpu = cpu_s();
    let (nochange_s, nochange) = sync_all(&services, &ids).await?;
    let nochange_cpu_s = cpu_since(cpu);
    let mut changed = 0;
    for sim in &sims {
        changed += sim.change_one_percent()?;
    }
    let (onepct_s, onepct) = sync_all(&services, &ids).await?;
    let computers = db.count_computers(&TenantScope::All).await?;
    let search_substring_ms = search_ms(db, "ws-1").await?;
    let search_serial_ms = search_ms(db, "renamed-1").await?;
    Ok(json!({
        "bench": "sync",
        "rmm": format!("{:?}", a.rmm).to_lowercase(),
        "database": format!("{:?}", a.database).to_lowercase(),
        "devices": full.fetched,
        "floor_s": round3(floor_s),
        "floor_cpu_s": floor_cpu_s,
        "full_cpu_s": full_cpu_s,
        "nochange_cpu_s": nochange_cpu_s,
        "simulators_rss_mb": simulators_rss_mb,
        "full_sync_s": round3(full_sync_s),
        "ratio": round3(full_sync_s / floor_s.max(1e-9)),
        "full_rows_written": full.rows_written,
        "full_stage_ms": full.stage_ms,
        "nochange_s": round3(nochange_s),
        "nochange_ratio": round3(nochange_s / floor_s.max(1e-9)),
        "nochange_rows_written": nochange.rows_written,
        "nochange_stage_ms": nochange.stage_ms,
        "onepct_devices_changed": changed,
        "onepct_s": round3(onepct_s),
        "onepct_rows_written": onepct.rows_written,
        "onepct_stage_ms": onepct.stage_ms,
        "computers": computers,
        "identified": {
            "smbios_uuid": full.identified_smbios_uuid,
            "serial": full.identified_serial,
            "mac": full.identified_mac,
            "manual_decisions": full.manual_decisions,
        },
        "search_ms": {"substring": search_substring_ms, "no_match": search_serial_ms},
        "peak_rss_mb": peak_rss_mb(),
        "note": "peak_rss_mb is the whole process, the in-process simulators included (simulators_rss_mb: the process once they hold their fleets); *_cpu_s: CPU seconds of the whole process in that phase",
    }))
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Sync(a) => println!("{}", bench_sync(a).await?),
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
