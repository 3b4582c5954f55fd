//! `rmmbridge sync --integration <id>`: one device sync in the foreground, with a progress bar on
//! a terminal (none when piped) and a summary at the end.
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rmmbridge_server::config::Settings;
use rmmbridge_server::services::sync::SyncProgress;
use rmmbridge_server::startup::open_services;
use std::io::IsTerminal;

#[derive(Args)]
pub struct SyncArgs {
    /// The integration to sync (see `rmmbridge integration list`).
    #[arg(long)]
    pub integration: i64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(settings: Settings, a: SyncArgs) -> anyhow::Result<()> {
    let services = open_services(&settings).await?;
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        b.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}")?);
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let show = |p: &SyncProgress| {
        let c = &p.counts;
        bar.set_message(format!(
            "{}: {} devices fetched ({} pages), {} new, {} changed, {} unchanged",
            p.stage, c.fetched, c.pages, c.new, c.changed, c.unchanged
        ));
    };
    let result = services.sync.run(a.integration, "cli", &show).await;
    bar.finish_and_clear();
    print_outcome(&result?, a.json)
}

/// The summary of a finished sync, as a table of counts or as one JSON object.
pub fn print_outcome(
    out: &rmmbridge_server::services::sync::SyncOutcome,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::json!({"run_id": out.run.id, "state": out.run.state.to_string(), "counts": out.counts})
        );
        return Ok(());
    }
    let c = &out.counts;
    let secs = out
        .run
        .finished_at
        .map(|f| (f.0 - out.run.started_at.0) as f64 / 1000.0)
        .unwrap_or_default();
    println!("sync run {} {} in {secs:.1} s", out.run.id, out.run.state);
    println!(
        "  devices: {} fetched, {} new, {} changed, {} moved, {} unchanged, {} skipped (excluded clients)",
        c.fetched, c.new, c.changed, c.moved, c.unchanged, c.skipped_excluded
    );
    println!(
        "  lifecycle: {} missing, {} retired, {} returned",
        c.missing, c.retired, c.returned
    );
    println!(
        "  identification: {} by SMBIOS UUID, {} by serial, {} by MAC, {} reinstalls, {} new computers ({} clones)",
        c.identified_smbios_uuid,
        c.identified_serial,
        c.identified_mac,
        c.reinstalls,
        c.new_computers,
        c.clones
    );
    if c.manual_decisions > 0 {
        println!(
            "  {} manual decisions wait for an admin (GET /api/v1/decisions)",
            c.manual_decisions
        );
    }
    if c.waiting_for_mapping > 0 {
        println!(
            "  {} devices belong to clients that are not mapped yet: map them, then Finish",
            c.waiting_for_mapping
        );
    }
    println!("  rows written: {}", c.rows_written);
    Ok(())
}
