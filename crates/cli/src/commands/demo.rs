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
    println!("rmmbridge demo is running");
    println!("  open:      {url}/");
    println!("  username:  {}", admin.username);
    println!("  password:  {password}   (shown only now)");
    println!("  data:      {}", dir.display());
    println!("Press Ctrl-C to stop.");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
