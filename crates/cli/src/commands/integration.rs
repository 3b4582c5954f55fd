//! `rmmbridge integration`: add, list, show, verify and remove integrations from the terminal,
//! through the same services as the API. Secrets are read from standard input, never from flags.
use clap::Subcommand;
use rmmbridge_core::IntegrationKind;
use rmmbridge_rmm::CheckStatus;
use rmmbridge_server::config::Settings;
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::integrations::{self as svc, IntegrationInput};
use rmmbridge_server::startup::open_services;
use serde_json::{Map, Value};
use std::io::Read;

#[derive(Subcommand)]
pub enum IntegrationCommand {
    /// Add an integration. Secrets come as a JSON object on standard input, e.g.
    /// `echo '{"jwt":"eyJ..."}' | rmmbridge integration add ncentral --name "Acme" --settings '{"server_url":"https://nc.example.com"}'`.
    Add {
        /// ncentral or ninjaone.
        kind: IntegrationKind,
        #[arg(long)]
        name: String,
        /// N-central: {"server_url", "username"}; NinjaOne: {"instance", "client_id", "script_id", "grant"}.
        #[arg(long)]
        settings: String,
        /// {"device_sync", "sites_as_clients", "allow_duplicates", "sync_interval_minutes", "missing_grace_days"}.
        #[arg(long, default_value = "{}")]
        options: String,
        /// Do not read secrets from standard input.
        #[arg(long)]
        no_secrets: bool,
    },
    /// List integrations with their status.
    List,
    /// Show one integration as JSON (secrets only as "set, when").
    Show { id: i64 },
    /// Run "Verify credentials" and print every check; exits non-zero when one fails.
    Verify { id: i64 },
    /// Remove an integration with its clients and agents.
    Remove {
        id: i64,
        /// Confirm the removal.
        #[arg(long)]
        yes: bool,
    },
}

fn json_arg(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--{what} is not JSON: {e}"))
}

pub async fn run(settings: Settings, cmd: IntegrationCommand) -> anyhow::Result<()> {
    let rmmbridge_server::startup::Services {
        db,
        vault,
        connectors,
        ..
    } = open_services(&settings).await?;
    let actor = Actor::cli();
    match cmd {
        IntegrationCommand::Add {
            kind,
            name,
            settings: s,
            options,
            no_secrets,
        } => {
            let secrets: Map<String, Value> = if no_secrets {
                Map::new()
            } else {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("standard input must be a JSON object of secrets, e.g. {{\"jwt\":\"...\"}}: {e}")
                })?
            };
            let input = IntegrationInput {
                kind,
                name,
                settings: json_arg("settings", &s)?,
                secrets,
                options: json_arg("options", &options)?,
            };
            let i = svc::create(&db, &vault, &actor, &input).await?;
            println!(
                "created integration {} ({}, {}): {}",
                i.id, i.kind, i.name, i.status
            );
            if let Some(m) = &i.status_message {
                println!("next: {m}");
            }
        }
        IntegrationCommand::List => {
            println!(
                "{:<5} {:<9} {:<32} {:<14} message",
                "id", "kind", "name", "status"
            );
            for i in db.list_integrations().await? {
                println!(
                    "{:<5} {:<9} {:<32} {:<14} {}",
                    i.id,
                    i.kind,
                    i.name,
                    i.status,
                    i.status_message.unwrap_or_default()
                );
            }
        }
        IntegrationCommand::Show { id } => {
            let i = svc::get(&db, id).await?;
            let v = svc::view(&db, i, &settings.public_url).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        IntegrationCommand::Verify { id } => {
            let v = svc::verify(&db, &connectors, &actor, id).await?;
            for c in &v.checks {
                println!("{c}");
            }
            let failed = v
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .count();
            if failed > 0 {
                anyhow::bail!("{failed} check(s) failed");
            }
            println!("all checks passed");
        }
        IntegrationCommand::Remove { id, yes } => {
            let i = svc::get(&db, id).await?;
            if !yes {
                anyhow::bail!(
                    "this removes {:?} with its clients and agents; run again with --yes to confirm",
                    i.name
                );
            }
            svc::remove(&db, &actor, id).await?;
            println!("removed integration {id} ({})", i.name);
        }
    }
    Ok(())
}
