//! Computers: the hub's single record of a machine, linked to one or more agents, in one tenant.
//!
//! Search is case-insensitive on name and serial (prefix or substring). Lowercased copies
//! (`search_name`, `search_serial`) are kept next to the originals, and pages walk an index in
//! name order (`computers_search`, `computers_tenant_search`) so a page stops at its LIMIT.
use crate::batch::WriteTx;
use crate::batch::{Arg, Sql, WriteTxn, like_substring, rows_per_chunk};
use crate::{Db, StoreError, StoreResult, TenantScope};
use rmmbridge_core::Timestamp;
use serde_json::json;
use sqlx::AssertSqlSafe;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewComputer {
    pub tenant_id: i64,
    pub name: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub os: Option<String>,
    pub last_contact_at: Option<Timestamp>,
}

/// The whole row as it should be (tenant move, rename, new facts); a row already equal is not
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputerUpdate {
    pub id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub os: Option<String>,
    pub last_contact_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputerRow {
    pub id: i64,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub name: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub os: Option<String>,
    pub last_contact_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    /// Agents that are not retired.
    pub agent_count: i64,
}

/// Where the next page starts (keyset paging: stable while rows are added).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputerCursor {
    /// The lowercased name of the last row of the previous page.
    pub name: String,
    pub id: i64,
}

#[derive(Clone, Debug)]
pub struct ComputerQuery {
    pub scope: TenantScope,
    pub tenant_id: Option<i64>,
    /// Name or serial, prefix or substring, case-insensitive. Blank means every computer.
    pub q: Option<String>,
    pub include_retired: bool,
    /// Only retired computers (wins over `include_retired`).
    pub retired_only: bool,
    /// Clamped to 1..=500.
    pub limit: i64,
    /// Rows to skip (after the cursor, when there is one).
    pub offset: i64,
    pub after: Option<ComputerCursor>,
}

impl Default for ComputerQuery {
    fn default() -> Self {
        ComputerQuery {
            scope: TenantScope::All,
            tenant_id: None,
            q: None,
            include_retired: false,
            retired_only: false,
            limit: 50,
            offset: 0,
            after: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Every row matching the filter, on all pages.
    pub total: i64,
    /// Set when there may be another page.
    pub next: Option<ComputerCursor>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    tenant_id: i64,
    tenant_name: String,
    name: String,
    serial: Option<String>,
    smbios_uuid: Option<String>,
    os: Option<String>,
    last_contact_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    retired_at: Option<i64>,
    search_name: String,
    agent_count: i64,
}

impl From<Row> for ComputerRow {
    fn from(r: Row) -> Self {
        ComputerRow {
            id: r.id,
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name,
            name: r.name,
            serial: r.serial,
            smbios_uuid: r.smbios_uuid,
            os: r.os,
            last_contact_at: r.last_contact_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            retired_at: r.retired_at.map(Timestamp),
            agent_count: r.agent_count,
        }
    }
}

const ROW_SELECT: &str = "SELECT c.id, c.tenant_id,
        (SELECT t.name FROM tenants t WHERE t.id = c.tenant_id) AS tenant_name,
        c.name, c.serial, c.smbios_uuid, c.os, c.last_contact_at, c.created_at, c.updated_at,
        c.retired_at, c.search_name,
        (SELECT COUNT(*) FROM agents a WHERE a.computer_id = c.id AND a.state <> 'retired') AS agent_count
     FROM computers c";

fn search_key(s: &str) -> String {
    s.trim().to_lowercase()
}

struct SearchSql<'a> {
    page: Sql<'a>,
    count: Sql<'a>,
    limit: i64,
}

/// The filter shared by a page and its count; the cursor only narrows the page.
/// The lowercased name and serial a computer is searched by.
fn search_keys(name: &str, serial: Option<&str>) -> (String, String) {
    (search_key(name), search_key(serial.unwrap_or("")))
}

fn filter<'a>(sql: &mut Sql<'a>, q: &'a ComputerQuery, pattern: Option<&'a str>) {
    sql.push(" WHERE 1 = 1");
    if q.retired_only {
        sql.push(" AND c.retired_at IS NOT NULL");
    } else if !q.include_retired {
        sql.push(" AND c.retired_at IS NULL");
    }
    sql.scope("c.tenant_id", &q.scope);
    if let Some(t) = q.tenant_id {
        sql.push(" AND c.tenant_id = ").bind(Arg::Int(t));
    }
    if let Some(p) = pattern {
        sql.push(" AND (c.search_name LIKE ").bind(Arg::Text(p));
        let again = sql.placeholder_of(sql.args.len() - 1);
        sql.push(" ESCAPE '\\' OR c.search_serial LIKE ")
            .push(&again)
            .push(" ESCAPE '\\')");
    }
}

fn search_sql<'a>(q: &'a ComputerQuery, pattern: Option<&'a str>) -> SearchSql<'a> {
    let limit = q.limit.clamp(1, 500);
    let mut count = Sql::new("SELECT COUNT(*) FROM computers c");
    filter(&mut count, q, pattern);
    let mut page = Sql::new(ROW_SELECT);
    filter(&mut page, q, pattern);
    if let Some(c) = &q.after {
        page.push(" AND (c.search_name > ").bind(Arg::Text(&c.name));
        let again = page.placeholder_of(page.args.len() - 1);
        page.push(" OR (c.search_name = ")
            .push(&again)
            .push(" AND c.id > ")
            .bind(Arg::Int(c.id))
            .push("))");
    }
    page.push(" ORDER BY c.search_name, c.id LIMIT ")
        .bind(Arg::Int(limit + 1))
        .push(" OFFSET ")
        .bind(Arg::Int(q.offset.max(0)));
    SearchSql { page, count, limit }
}

impl Db {
    /// Creates computers with multi-row inserts; returns their ids in input order.
    pub async fn create_computers(
        &self,
        computers: &[NewComputer],
        now: Timestamp,
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.begin_write_txn().await?;
        let ids = insert_computers_in(&mut tx, computers, now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Writes changed computers (tenant moves, renames, new facts) in one transaction; returns
    /// the number of rows changed. Retirement is not touched.
    pub async fn update_computers(
        &self,
        updates: &[ComputerUpdate],
        now: Timestamp,
    ) -> StoreResult<u64> {
        let keys: Vec<(String, String)> = updates
            .iter()
            .map(|c| search_keys(&c.name, c.serial.as_deref()))
            .collect();
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let mut written = 0;
            let per = rows_per_chunk(p, 9);
            for (chunk, keys) in updates.chunks(per).zip(keys.chunks(per)) {
                let mut sql = Sql::new(
                    "UPDATE computers SET tenant_id = v.column2, name = v.column3, serial = v.column4,
                     smbios_uuid = v.column5, os = v.column6, last_contact_at = v.column7,
                     search_name = v.column8, search_serial = v.column9, updated_at = $1
                     FROM (VALUES ",
                );
                sql.args.push(Arg::Int(now.0));
                for (i, (c, k)) in chunk.iter().zip(keys).enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" });
                    sql.bind(Arg::Int(c.id)).push(", ");
                    sql.bind(Arg::Int(c.tenant_id)).push(", ");
                    sql.bind(Arg::Text(&c.name)).push(", ");
                    sql.bind(Arg::OptText(c.serial.as_deref())).push(", ");
                    sql.bind(Arg::OptText(c.smbios_uuid.as_deref())).push(", ");
                    sql.bind(Arg::OptText(c.os.as_deref())).push(", ");
                    sql.bind(Arg::OptInt(c.last_contact_at.map(|t| t.0)))
                        .push(", ");
                    sql.bind(Arg::Text(&k.0)).push(", ");
                    sql.bind(Arg::Text(&k.1)).push(")");
                }
                sql.push(
                    ") AS v WHERE computers.id = v.column1 AND (
                        computers.tenant_id IS DISTINCT FROM v.column2
                        OR computers.name IS DISTINCT FROM v.column3
                        OR computers.serial IS DISTINCT FROM v.column4
                        OR computers.smbios_uuid IS DISTINCT FROM v.column5
                        OR computers.os IS DISTINCT FROM v.column6
                        OR computers.last_contact_at IS DISTINCT FROM v.column7)",
                );
                written += bind_args!(p, sqlx::query, sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(tenant_fk_error)?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// Retires every unretired computer that has no agent left that is not retired.
    pub async fn retire_computers_without_live_agents(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(self, |p| {
            sqlx::query(
                "UPDATE computers SET retired_at = $1, updated_at = $1
                 WHERE retired_at IS NULL AND NOT EXISTS (
                     SELECT 1 FROM agents a WHERE a.computer_id = computers.id AND a.state <> 'retired')",
            )
            .bind(now.0)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// Brings back retired computers that have a live (not retired) agent again (rediscovery).
    pub async fn revive_computers_with_live_agents(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(self, |p| {
            sqlx::query(
                "UPDATE computers SET retired_at = NULL, updated_at = $1
                 WHERE retired_at IS NOT NULL AND EXISTS (
                     SELECT 1 FROM agents a WHERE a.computer_id = computers.id AND a.state <> 'retired')",
            )
            .bind(now.0)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// One page of computers in name order, with the total count of the filter.
    pub async fn search_computers(&self, q: &ComputerQuery) -> StoreResult<Page<ComputerRow>> {
        let pattern =
            q.q.as_deref()
                .map(search_key)
                .filter(|s| !s.is_empty())
                .map(|s| like_substring(&s));
        let s = search_sql(q, pattern.as_deref());
        let (total, mut rows) = with_db!(self, |p| {
            let total = bind_args!(p, sqlx::query_scalar::<_, i64>, s.count)
                .fetch_one(p)
                .await?;
            let rows = bind_args!(p, sqlx::query_as::<_, Row>, s.page)
                .fetch_all(p)
                .await?;
            (total, rows)
        });
        let more = rows.len() as i64 > s.limit;
        rows.truncate(s.limit as usize);
        let next = match (more, rows.last()) {
            (true, Some(r)) => Some(ComputerCursor {
                name: r.search_name.clone(),
                id: r.id,
            }),
            _ => None,
        };
        Ok(Page {
            items: rows.into_iter().map(ComputerRow::from).collect(),
            total,
            next,
        })
    }

    /// SQLite's plan for the page and count queries of a search (EXPLAIN QUERY PLAN details);
    /// empty on PostgreSQL. For tests and `bench`.
    #[doc(hidden)]
    pub async fn explain_computer_search(&self, q: &ComputerQuery) -> StoreResult<Vec<String>> {
        let crate::Pool::Sqlite(p) = &self.pool else {
            return Ok(Vec::new());
        };
        let pattern =
            q.q.as_deref()
                .map(search_key)
                .filter(|s| !s.is_empty())
                .map(|s| like_substring(&s));
        let s = search_sql(q, pattern.as_deref());
        let mut out = Vec::new();
        for (label, sql) in [("page", &s.page), ("count", &s.count)] {
            let explain = Sql {
                text: format!("EXPLAIN QUERY PLAN {}", sql.text),
                args: sql.args.clone(),
            };
            let rows: Vec<(i64, i64, i64, String)> =
                bind_args!(p, sqlx::query_as, explain).fetch_all(p).await?;
            out.extend(rows.into_iter().map(|r| format!("{label}: {}", r.3)));
        }
        Ok(out)
    }

    /// A computer, or `None` when it does not exist or is outside the scope.
    pub async fn computer_by_id(
        &self,
        id: i64,
        scope: &TenantScope,
    ) -> StoreResult<Option<ComputerRow>> {
        let sql = format!("{ROW_SELECT} WHERE c.id = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        Ok(row
            .filter(|r| scope.allows(r.tenant_id))
            .map(ComputerRow::from))
    }

    /// Computers in scope that are not retired.
    pub async fn count_computers(&self, scope: &TenantScope) -> StoreResult<i64> {
        let mut sql = Sql::new("SELECT COUNT(*) FROM computers c WHERE c.retired_at IS NULL");
        sql.scope("c.tenant_id", scope);
        Ok(with_db!(self, |p| {
            bind_args!(p, sqlx::query_scalar::<_, i64>, sql)
                .fetch_one(p)
                .await?
        }))
    }

    /// Computers in scope that are not retired, per tenant (one grouped count, for the tenant list).
    pub async fn count_computers_by_tenant(
        &self,
        scope: &TenantScope,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let mut sql =
            Sql::new("SELECT c.tenant_id, COUNT(*) FROM computers c WHERE c.retired_at IS NULL");
        sql.scope("c.tenant_id", scope);
        sql.push(" GROUP BY c.tenant_id");
        Ok(with_db!(self, |p| {
            bind_args!(p, sqlx::query_as::<_, (i64, i64)>, sql)
                .fetch_all(p)
                .await?
        }))
    }

    /// `(computer id, integration id)` for every integration with a non-retired agent on one of
    /// `computer_ids` (a page of a list: which RMMs report each row).
    pub async fn integrations_of_computers(
        &self,
        computer_ids: &[i64],
    ) -> StoreResult<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        // A page of a list: small, so the smaller (SQLite) limit serves both backends.
        for chunk in computer_ids.chunks(<sqlx::SqlitePool as crate::batch::ParamLimit>::MAX_PARAMS)
        {
            let mut sql = Sql::new(
                "SELECT DISTINCT a.computer_id, a.integration_id FROM agents a
                 WHERE a.state <> 'retired' AND a.computer_id IN (",
            );
            sql.bind_list(chunk.iter().map(|id| Arg::Int(*id)));
            sql.push(") ORDER BY a.computer_id, a.integration_id");
            let rows = with_db!(self, |p| {
                bind_args!(p, sqlx::query_as::<_, (i64, i64)>, sql)
                    .fetch_all(p)
                    .await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// Merges computer `from` into `into` (a ManualDecision "merge"): moves every agent, records
    /// a `manual_merge` evidence row for each, repoints open decisions, retires `from`. One
    /// transaction; returns the number of agents moved.
    pub async fn merge_computers(
        &self,
        from: i64,
        into: i64,
        decided_by: &str,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write_txn().await?;
        let moved = merge_computers_in(&mut tx, from, into, decided_by, now).await?;
        tx.commit().await?;
        Ok(moved)
    }
}

pub(crate) async fn merge_computers_in(
    tx: &mut WriteTxn,
    from: i64,
    into: i64,
    decided_by: &str,
    now: Timestamp,
) -> StoreResult<u64> {
    if from == into {
        return Err(StoreError::Conflict {
            what: "a computer cannot be merged into itself".into(),
        });
    }
    let evidence = json!({ "merged_from": from, "merged_into": into });
    with_tx!(tx, |t| {
        let found: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM computers WHERE id IN ($1, $2) AND (id = $1 OR retired_at IS NULL)",
            )
            .bind(from)
            .bind(into)
            .fetch_one(&mut **t)
            .await?;
        if found != 2 {
            return Err(StoreError::NotFound { what: "computer" });
        }
        let moved: Vec<i64> = sqlx::query_scalar(
                "UPDATE agents SET computer_id = $1, updated_at = $3 WHERE computer_id = $2 RETURNING id",
            )
            .bind(into)
            .bind(from)
            .bind(now.0)
            .fetch_all(&mut **t)
            .await?;
        for chunk in moved.chunks(rows_per_chunk(&*t, 1)) {
            let mut sql = Sql::new(
                    "INSERT INTO identification_evidence (agent_id, computer_id, rule, evidence, decided_by, at)
                     VALUES ",
                );
            sql.args.push(Arg::Int(into));
            sql.args.push(Arg::Json(&evidence));
            sql.args.push(Arg::Text(decided_by));
            sql.args.push(Arg::Int(now.0));
            for (i, id) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(*id))
                    .push(", $1, 'manual_merge', $2, $3, $4)");
            }
            bind_args!(&*t, sqlx::query, sql).execute(&mut **t).await?;
        }
        sqlx::query(
            "UPDATE manual_decisions SET candidate_computer_id = $1
                 WHERE candidate_computer_id = $2 AND resolved_at IS NULL",
        )
        .bind(into)
        .bind(from)
        .execute(&mut **t)
        .await?;
        sqlx::query(
                "UPDATE computers SET retired_at = COALESCE(retired_at, $2), updated_at = $2 WHERE id = $1",
            )
            .bind(from)
            .bind(now.0)
            .execute(&mut **t)
            .await?;
        Ok(moved.len() as u64)
    })
}

/// Inserts computers inside `tx`; returns their ids in input order.
pub(crate) async fn insert_computers_in(
    tx: &mut WriteTxn,
    computers: &[NewComputer],
    now: Timestamp,
) -> StoreResult<Vec<i64>> {
    let ids = crate::ids::reserve_in(tx, crate::ids::IdKind::Computers, computers.len()).await?;
    let rows: Vec<(i64, &NewComputer)> = ids.iter().copied().zip(computers).collect();
    insert_computers_with_ids_in(tx, &rows, now).await?;
    Ok(ids)
}

/// Inserts computers under ids reserved with [`crate::ids`]; nothing is read back.
pub(crate) async fn insert_computers_with_ids_in(
    tx: &mut WriteTxn,
    rows: &[(i64, &NewComputer)],
    now: Timestamp,
) -> StoreResult<()> {
    let overriding = crate::batch::overriding_identity(tx);
    with_tx!(tx, |t| {
        for chunk in rows.chunks(rows_per_chunk(&*t, 9)) {
            let keys: Vec<(String, String)> = chunk
                .iter()
                .map(|(_, c)| search_keys(&c.name, c.serial.as_deref()))
                .collect();
            let mut sql = Sql::new(
                "INSERT INTO computers (id, tenant_id, name, serial, smbios_uuid, os, last_contact_at,
                 search_name, search_serial, created_at, updated_at)",
            );
            sql.push(overriding).push(" VALUES ");
            sql.args.push(Arg::Int(now.0));
            for (i, ((id, c), k)) in chunk.iter().zip(&keys).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(*id)).push(", ");
                sql.bind(Arg::Int(c.tenant_id)).push(", ");
                sql.bind(Arg::Text(&c.name)).push(", ");
                sql.bind(Arg::OptText(c.serial.as_deref())).push(", ");
                sql.bind(Arg::OptText(c.smbios_uuid.as_deref())).push(", ");
                sql.bind(Arg::OptText(c.os.as_deref())).push(", ");
                sql.bind(Arg::OptInt(c.last_contact_at.map(|t| t.0)))
                    .push(", ");
                sql.bind(Arg::Text(&k.0)).push(", ");
                sql.bind(Arg::Text(&k.1)).push(", $1, $1)");
            }
            bind_args!(&*t, sqlx::query, sql)
                .execute(&mut **t)
                .await
                .map_err(tenant_fk_error)?;
        }
        Ok(())
    })
}

fn tenant_fk_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::NotFound { what: "tenant" }
        }
        _ => e.into(),
    }
}
