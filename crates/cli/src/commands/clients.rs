//! `rmmbridge clients`: client mapping from the terminal (DESIGN.md §3 items 4 and 5), through the
//! same service as the API (`services::mapping`). Human output is aligned tables; `--json` prints
//! the API's JSON shapes.
use clap::{Args, Subcommand};
use rmmbridge_server::config::Settings;
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::mapping::{
    ClientAction, ClientMapping, ClientRow, SyncAfter, View,
};
use rmmbridge_server::startup::open_services;
use rmmbridge_store::TenantScope;
use serde::Serialize;

#[derive(Args)]
pub struct ClientsArgs {
    /// The integration whose clients to map (see `rmmbridge integration list`).
    #[arg(long, global = true)]
    pub integration: Option<i64>,
    /// Print JSON (the API's shapes) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: ClientsCommand,
}

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// List the clients with their mapping and suggestions.
    List {
        /// all, unmatched, matched or excluded.
        #[arg(long, default_value = "all", value_parser = parse_view)]
        view: View,
    },
    /// Fetch the RMM's client list now.
    Refresh,
    /// Match every client whose name is identical (after normalisation) to one tenant's.
    AutoMatch,
    /// Match one client to a tenant.
    Match {
        client: i64,
        #[arg(long)]
        tenant: i64,
    },
    /// Create a tenant named after the client at Finish.
    Create { client: i64 },
    /// Exclude a client: its devices are not imported.
    Exclude { client: i64 },
    /// Bring an excluded client back (unmatched).
    Include { client: i64 },
    /// Create a tenant for every unmatched client.
    CreateUnmatched,
    /// What Finish would do.
    Preview,
    /// Finish: apply the pending mapping in one transaction.
    Apply {
        /// Then run the device sync in the foreground and print its summary.
        #[arg(long)]
        sync: bool,
    },
}

fn parse_view(s: &str) -> Result<View, String> {
    s.parse()
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Left-aligned columns, each as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}

fn client_rows(rows: &[ClientRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            let state = if c.pending {
                format!("{} (pending)", c.state)
            } else {
                c.state.clone()
            };
            let suggestion = c
                .suggestion
                .as_ref()
                .map(|s| {
                    format!(
                        "{} ({}, {:.0}%): {}",
                        s.tenant_name,
                        s.kind,
                        s.confidence * 100.0,
                        s.reason
                    )
                })
                .unwrap_or_default();
            vec![
                c.id.to_string(),
                c.external_id.clone(),
                c.name.trim().to_owned(),
                state,
                opt(&c.tenant_name),
                c.provenance
                    .as_ref()
                    .map(|p| p.source.clone())
                    .unwrap_or_default(),
                if c.vanished_at.is_some() {
                    "yes".into()
                } else {
                    String::new()
                },
                suggestion,
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "EXTERNAL",
            "NAME",
            "STATE",
            "TENANT",
            "BY",
            "VANISHED",
            "SUGGESTION",
        ],
        &body,
    )
}

pub async fn run(settings: Settings, a: ClientsArgs) -> anyhow::Result<()> {
    let id = a.integration.ok_or_else(|| {
        anyhow::anyhow!("--integration <id> is required (see `rmmbridge integration list`)")
    })?;
    let services = open_services(&settings).await?;
    let m = ClientMapping {
        db: &services.db,
        connectors: &services.connectors,
        sync: &services.sync,
    };
    let actor = Actor::cli();
    let json = a.json;
    let one = |row: ClientRow| -> anyhow::Result<()> {
        if json {
            return print_json(&row);
        }
        println!("{}", client_rows(&[row]));
        Ok(())
    };
    match a.cmd {
        ClientsCommand::List { view } => {
            let list = m.list(id, view, &TenantScope::All).await?;
            if json {
                return print_json(&list);
            }
            println!("{}", client_rows(&list.clients));
            let c = &list.counts;
            println!(
                "\n{} clients: {} unmatched, {} matched, {} excluded; {} pending (see `clients preview`){}",
                c.all,
                c.unmatched,
                c.matched,
                c.excluded,
                c.pending,
                if list.sites_as_clients {
                    ""
                } else {
                    "; sites are folded into their company"
                }
            );
        }
        ClientsCommand::Refresh => {
            let r = m.refresh(id, &actor).await?;
            if json {
                return print_json(&r);
            }
            println!(
                "{} added, {} renamed, {} reshaped, {} vanished, {} returned, {} unchanged",
                r.added.len(),
                r.renamed.len(),
                r.reshaped.len(),
                r.vanished.len(),
                r.returned.len(),
                r.unchanged
            );
            for x in &r.renamed {
                println!(
                    "  renamed {}: {:?} -> {:?}",
                    x.external_id, x.old_name, x.new_name
                );
            }
        }
        ClientsCommand::AutoMatch | ClientsCommand::CreateUnmatched => {
            let r = if matches!(a.cmd, ClientsCommand::AutoMatch) {
                m.auto_match(id, &actor).await?
            } else {
                m.create_unmatched(id, &actor).await?
            };
            if json {
                return print_json(&r);
            }
            if !r.clients.is_empty() {
                println!("{}\n", client_rows(&r.clients));
            }
            println!(
                "{} clients changed (pending until `clients apply`)",
                r.changed
            );
        }
        ClientsCommand::Match { client, tenant } => one(m
            .set(
                id,
                client,
                ClientAction::Match { tenant_id: tenant },
                &actor,
            )
            .await?)?,
        ClientsCommand::Create { client } => {
            one(m.set(id, client, ClientAction::Create, &actor).await?)?
        }
        ClientsCommand::Exclude { client } => {
            one(m.set(id, client, ClientAction::Exclude, &actor).await?)?
        }
        ClientsCommand::Include { client } => {
            one(m.set(id, client, ClientAction::Include, &actor).await?)?
        }
        ClientsCommand::Preview => {
            let p = m.preview(id, &TenantScope::All).await?;
            if json {
                return print_json(&p);
            }
            let rows: Vec<Vec<String>> = [
                ("create", &p.to_create),
                ("match", &p.to_match),
                ("exclude", &p.to_exclude),
                ("unmatch", &p.to_unmatch),
            ]
            .into_iter()
            .flat_map(|(what, rows)| {
                rows.iter().map(move |r| {
                    let tenant = match (&r.tenant_name, r.reuses_tenant) {
                        (Some(t), true) => format!("{t} (existing)"),
                        (t, _) => opt(t),
                    };
                    vec![
                        what.to_owned(),
                        r.client_id.to_string(),
                        r.name.trim().to_owned(),
                        r.from_state.clone(),
                        tenant,
                    ]
                })
            })
            .collect();
            println!(
                "{}",
                table(&["ACTION", "ID", "NAME", "FROM", "TENANT"], &rows)
            );
            let c = &p.counts;
            println!(
                "\nto create {}, to match {}, to exclude {}, to unmatch {}, unchanged {}",
                c.to_create, c.to_match, c.to_exclude, c.to_unmatch, c.unchanged
            );
        }
        ClientsCommand::Apply { sync } => {
            let r = m.apply(id, &actor, SyncAfter::Caller).await?;
            let run_sync = sync && !r.newly_mapped_client_ids.is_empty();
            if json && !run_sync {
                return print_json(&r);
            }
            if !json {
                let c = &r.applied;
                println!(
                    "applied: {} tenants created ({} existing reused), {} matched, {} excluded, {} unmatched, {} unchanged",
                    c.created_tenants,
                    c.reused_tenants,
                    c.matched,
                    c.excluded,
                    c.unmatched,
                    c.unchanged
                );
                if let Some(note) = &r.sync_note
                    && !run_sync
                {
                    println!("{note}");
                }
            }
            if run_sync {
                let out = services.sync.run(id, "cli", &|_| {}).await?;
                if json {
                    return print_json(&serde_json::json!({
                        "apply": r,
                        "sync": {"run_id": out.run.id, "state": out.run.state.to_string(), "counts": out.counts},
                    }));
                }
                super::sync::print_outcome(&out, false)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_to_the_widest_cell() {
        let t = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "Acme Dental".into()],
                vec!["100".into(), "Bö".into()],
            ],
        );
        assert_eq!(t, "ID   NAME\n1    Acme Dental\n100  Bö");
    }
}
