//! One batch of a sync's devices stage, written in one transaction: the new computers, the new
//! Agents already linked to their computers, the changed Agents, the other links, every link's
//! evidence and the batch's plan items. The sync identifies new Agents before they are stored
//! (their ids and their computers' ids are reserved, [`crate::ids`]), so a new Agent is one
//! INSERT with its link, not an INSERT and a later UPDATE, and nothing is read back.
use crate::agents::{
    AgentLink, AgentUpsert, AgentWrite, agent_values, client_ids_in, computer_fk_error,
    insert_evidence_in, link_agents_in, upsert_agents_in,
};
use crate::batch::{Arg, Sql, WriteTxn, rows_per_chunk};
use crate::computers::{NewComputer, insert_computers_with_ids_in};
use crate::ids::{IdKind, reserve_in};
use crate::sync_runs::{NewPlanItem, add_plan_items_in};
use crate::{Db, StoreError, StoreResult};
use rmmbridge_core::Timestamp;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// What one batch writes. Ids of new rows come from [`Db::reserve_ids`] (or an earlier batch's
/// `reserve_*`).
#[derive(Debug, Default)]
pub struct SyncBatch {
    pub computers: Vec<(i64, NewComputer)>,
    pub new_agents: Vec<(i64, AgentWrite)>,
    /// Agents stored before whose reported facts changed.
    pub changed_agents: Vec<AgentWrite>,
    /// Identification's links. A new Agent's link is written with its row; the others update
    /// theirs. Every link that changes something gets its evidence row.
    pub links: Vec<AgentLink>,
    /// Plan items of changed Agents; every new Agent gets its "new" item without one here.
    pub plan_items: Vec<NewPlanItem>,
    /// Ids to reserve in the same transaction, for later batches.
    pub reserve_agents: usize,
    pub reserve_computers: usize,
}

/// What [`Db::write_sync_batch`] did.
#[derive(Debug, Default)]
pub struct SyncBatchWritten {
    pub rows_written: u64,
    pub changed: AgentUpsert,
    pub agent_ids: Vec<i64>,
    pub computer_ids: Vec<i64>,
    /// Wall time of each step, for `bench sync`.
    pub ms: Vec<(&'static str, u64)>,
}

impl Db {
    /// Writes one batch in one transaction; on any error nothing of it is stored.
    pub async fn write_sync_batch(
        &self,
        integration_id: i64,
        run_id: i64,
        batch: &SyncBatch,
        now: Timestamp,
    ) -> StoreResult<SyncBatchWritten> {
        let mut out = SyncBatchWritten::default();
        let mut tx = self.begin_write_txn().await?;
        let mut clock = Instant::now();
        let mut lap = |out: &mut SyncBatchWritten, step: &'static str| {
            out.ms.push((step, clock.elapsed().as_millis() as u64));
            clock = Instant::now();
        };

        let computers: Vec<(i64, &NewComputer)> =
            batch.computers.iter().map(|(id, c)| (*id, c)).collect();
        insert_computers_with_ids_in(&mut tx, &computers, now).await?;
        out.rows_written += computers.len() as u64;
        lap(&mut out, "write.computers");

        let clients = client_ids_in(&mut tx, integration_id).await?;
        let new_ids: HashMap<i64, usize> = batch
            .new_agents
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let mut link_of: Vec<Option<&AgentLink>> = vec![None; batch.new_agents.len()];
        let mut other_links: Vec<AgentLink> = Vec::new();
        for l in &batch.links {
            match new_ids.get(&l.agent_id) {
                // The last decision for an Agent wins, as in `link_agents`.
                Some(&i) => link_of[i] = Some(l),
                None => other_links.push(l.clone()),
            }
        }
        insert_new_agents_in(
            &mut tx,
            integration_id,
            &clients,
            &batch.new_agents,
            &link_of,
            now,
        )
        .await?;
        out.rows_written += batch.new_agents.len() as u64;
        lap(&mut out, "write.agents");

        if !batch.changed_agents.is_empty() {
            out.changed = upsert_agents_in(
                &mut tx,
                integration_id,
                &clients,
                &batch.changed_agents,
                now,
            )
            .await?;
            out.rows_written += out.changed.rows_written();
        }
        if !other_links.is_empty() {
            let changed: HashSet<i64> = link_agents_in(&mut tx, &other_links, now)
                .await?
                .into_iter()
                .collect();
            // A new computer whose stored agent is gone (its integration deleted meanwhile)
            // would be an orphan: the batch is refused and rolled back, as `create_and_link_in`
            // does for a single computer.
            let created: HashSet<i64> = batch.computers.iter().map(|(id, _)| *id).collect();
            if other_links
                .iter()
                .any(|l| created.contains(&l.computer_id) && !changed.contains(&l.agent_id))
            {
                return Err(StoreError::NotFound { what: "agent" });
            }
            // A link and its evidence row.
            out.rows_written += 2 * changed.len() as u64;
        }
        lap(&mut out, "write.changed");

        let linked: Vec<&AgentLink> = link_of.iter().flatten().copied().collect();
        insert_evidence_in(&mut tx, &linked, now).await?;
        out.rows_written += linked.len() as u64;
        lap(&mut out, "write.evidence");

        out.rows_written += add_plan_items_in(&mut tx, run_id, &batch.plan_items).await?;
        let new: Vec<i64> = batch.new_agents.iter().map(|(id, _)| *id).collect();
        out.rows_written += plan_new_agents_in(&mut tx, run_id, &new).await?;
        lap(&mut out, "write.plan");

        out.agent_ids = reserve_in(&mut tx, IdKind::Agents, batch.reserve_agents).await?;
        out.computer_ids = reserve_in(&mut tx, IdKind::Computers, batch.reserve_computers).await?;
        tx.commit().await?;
        lap(&mut out, "write.commit");
        Ok(out)
    }
}

/// The plan items of the batch's new Agents ("new", no diffs), read back from the rows just
/// written rather than bound a row each.
async fn plan_new_agents_in(tx: &mut WriteTxn, run_id: i64, ids: &[i64]) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(match tx {
        WriteTxn::Sqlite(t) => sqlx::query(
            "INSERT INTO sync_plan_items (run_id, external_id, agent_id, action, diffs)
             SELECT $1, external_id, id, 'new', '[]' FROM agents
             WHERE id IN (SELECT value FROM json_each($2)) ORDER BY id",
        )
        .bind(run_id)
        .bind(serde_json::to_string(ids).unwrap_or_default())
        .execute(&mut **t)
        .await?
        .rows_affected(),
        WriteTxn::Postgres(t) => sqlx::query(
            "INSERT INTO sync_plan_items (run_id, external_id, agent_id, action, diffs)
             SELECT $1, external_id, id, 'new', '[]'::jsonb FROM agents
             WHERE id = ANY($2) ORDER BY id",
        )
        .bind(run_id)
        .bind(ids)
        .execute(&mut **t)
        .await?
        .rows_affected(),
    })
}

/// Inserts new Agents under reserved ids, each with its link (computer and clone flag) if it has
/// one. An external id stored already is a conflict: the caller's snapshot of the integration's
/// Agents was not current.
async fn insert_new_agents_in(
    tx: &mut WriteTxn,
    integration_id: i64,
    clients: &HashMap<String, i64>,
    agents: &[(i64, AgentWrite)],
    links: &[Option<&AgentLink>],
    now: Timestamp,
) -> StoreResult<()> {
    let overriding = crate::batch::overriding_identity(tx);
    with_tx!(tx, |t| {
        let per = rows_per_chunk(&*t, 13);
        for (chunk, links) in agents.chunks(per).zip(links.chunks(per)) {
            let mut sql = Sql::new(
                "INSERT INTO agents (id, integration_id, external_id, rmm_client_id, hostname, serial,
                 smbios_uuid, macs, os, device_class, last_contact_at, fingerprint, computer_id,
                 clone_of, first_seen_at, updated_at)",
            );
            sql.push(overriding).push(" VALUES ");
            sql.args.push(Arg::Int(integration_id));
            sql.args.push(Arg::Int(now.0));
            for (i, ((id, a), link)) in chunk.iter().zip(links).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(*id)).push(", $1, ");
                sql.bind(Arg::Text(&a.external_id)).push(", ");
                agent_values(&mut sql, a, clients);
                sql.push(", ");
                sql.bind(Arg::OptInt(link.map(|l| l.computer_id)))
                    .push(", ");
                sql.bind(Arg::OptText(link.and_then(|l| l.clone_of.as_deref())))
                    .push(", $2, $2)");
            }
            bind_args!(&*t, sqlx::query, sql)
                .execute(&mut **t)
                .await
                .map_err(computer_fk_error)?;
        }
        Ok(())
    })
}
