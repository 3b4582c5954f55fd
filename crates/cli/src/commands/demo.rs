use crate::ListenArgs;
use clap::Args;
use rmmbridge_core::Role;
use rmmbridge_server::Application;
use rmmbridge_server::auth::password::generate_password;
use rmmbridge_server::config::{Settings, sqlite_url};
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::users;
use rmmbridge_server::startup::shutdown_signal;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Keep the demo's data here instead of a fresh temporary directory.
    #[arg(long = "demo-dir")]
    pub demo_dir: Option<std::path::PathBuf>,
}

/// The demo always runs on embedded SQLite in its own directory, never on a configured production database.
pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let dir = match args.demo_dir {
        Some(dir) => dir,
        None => {
            std::env::temp_dir().join(format!("rmmbridge-demo-{}", uuid::Uuid::new_v4().simple()))
        }
    };
    std::fs::create_dir_all(&dir)?;
    settings.data_dir = dir.clone();
    settings.database_url = sqlite_url(&dir.join("rmmbridge.db"));
    settings.master_key_file = dir.join("master.key");
    if settings.log_filter == "info" {
        settings.log_filter = "warn".into();
    }
    crate::logging::init(&settings);

    let app = Application::build(settings).await?;
    let db = app.state.db.clone();
    let password = generate_password();
    let admin = match users::find(&db, "admin").await {
        Ok(existing) => {
            users::reset_password(&db, &Actor::system("demo"), &existing, &password).await?;
            existing
        }
        Err(_) => {
            users::create_user(&db, &Actor::system("demo"), "admin", Role::Admin, &password).await?
        }
    };
    let url = app.state.settings.public_url.clone();
    // Two RMMs of one MSP after an acquisition: one seed, so many machines are in both.
    let fleet = |devices| rmmbridge_sim::fleet::FleetConfig {
        seed: 42,
        customers: 24,
        devices,
        shared: 0.5,
        ..Default::default()
    };
    let ncentral =
        super::bench::SimulatedRmm::start(super::bench::Rmm::Ncentral, fleet(900)).await?;
    let ninja = super::bench::SimulatedRmm::start(super::bench::Rmm::Ninjaone, fleet(700)).await?;
    let created = add_demo_integrations(&app.state, &ncentral, &ninja).await?;
    println!("rmmbridge demo is running");
    println!("  open:      {url}/");
    println!("  username:  {}", admin.username);
    println!("  password:  {password}   (shown only now)");
    println!("  data:      {}", dir.display());
    println!(
        "  simulated: N-central at {} and NinjaOne at {}",
        sim_url(&ncentral),
        sim_url(&ninja)
    );
    if created {
        println!(
            "  next:      open Integrations, verify both, provide consent for NinjaOne, then map the clients"
        );
    }
    println!("Press Ctrl-C to stop.");
    app.state.sync.spawn_scheduler();
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

fn sim_url(s: &super::bench::SimulatedRmm) -> String {
    s.connection_info()["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Points one integration at each simulator, not yet verified or mapped, so a newcomer walks the
/// whole flow. A kept demo directory is reused: its integrations are re-pointed at the new ports.
async fn add_demo_integrations(
    state: &rmmbridge_server::state::AppState,
    ncentral: &super::bench::SimulatedRmm,
    ninja: &super::bench::SimulatedRmm,
) -> anyhow::Result<bool> {
    use rmmbridge_server::services::integrations::{
        self as svc, IntegrationInput, IntegrationPatch,
    };
    use serde_json::json;
    let actor = Actor::system("demo");
    let nc = ncentral.connection_info();
    let nj = ninja.connection_info();
    let inputs = [
        IntegrationInput {
            kind: rmmbridge_core::IntegrationKind::Ncentral,
            name: "Contoso N-central (simulated)".into(),
            settings: json!({"server_url": nc["url"], "username": nc["username"]}),
            secrets: json!({"jwt": nc["jwt"], "password": nc["password"], "mfa_secret": nc["mfa_secret"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            options: json!({}),
        },
        IntegrationInput {
            kind: rmmbridge_core::IntegrationKind::Ninjaone,
            name: "Fabrikam NinjaOne (simulated)".into(),
            settings: json!({"instance": nj["url"], "client_id": nj["client_id"], "script_id": nj["script_id"].to_string()}),
            secrets: json!({"client_secret": nj["client_secret"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            options: json!({}),
        },
    ];
    let existing = state.db.list_integrations().await?;
    let mut created = false;
    for input in inputs {
        match existing.iter().find(|i| i.name == input.name) {
            Some(i) => {
                let patch = IntegrationPatch {
                    settings: Some(input.settings),
                    secrets: input.secrets,
                    ..Default::default()
                };
                svc::update(&state.db, &state.vault, &actor, i.id, &patch).await?;
            }
            None => {
                svc::create(&state.db, &state.vault, &actor, &input).await?;
                created = true;
            }
        }
    }
    Ok(created)
}
