use rmmbridge_server::Application;
use rmmbridge_server::config::Settings;
use rmmbridge_server::keys::KeySource;
use rmmbridge_server::startup::shutdown_signal;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let state = &app.state;
    match &app.key_source {
        KeySource::Created(path) => tracing::warn!(
            path = %path.display(),
            "created a new master key file: back it up; without it the stored RMM credentials cannot be read"
        ),
        KeySource::File(path) => {
            tracing::info!(path = %path.display(), "master key loaded from file")
        }
        KeySource::Environment => tracing::info!("master key loaded from RMMBRIDGE_MASTER_KEY"),
    }
    if state.db.count_users().await? == 0 {
        tracing::warn!(
            "no users yet: create the first admin with `rmmbridge user add <name> --role admin`"
        );
    }
    tracing::info!(
        listen = %app.local_addr(),
        url = %state.settings.public_url,
        database = %state.db.backend(),
        "rmmbridge is running"
    );
    app.state.sync.spawn_scheduler();
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
