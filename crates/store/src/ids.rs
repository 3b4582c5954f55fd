//! Agent and computer ids reserved ahead of the insert. A sync identifies a new Agent, and picks
//! the id of its new computer, before either row exists; both are then written in one multi-row
//! statement each, with no `RETURNING` and no second pass to link them.
//!
//! SQLite keeps the next free id per table in `id_blocks`; PostgreSQL takes them from the tables'
//! identity sequences. Every insert into `agents` and `computers` uses reserved ids, so two
//! writers (two syncs, a sync and a resolved decision, two processes) never pick the same one.
//! A reserved id that is never used is a harmless gap.
use crate::batch::WriteTxn;
use crate::{Db, StoreResult};

/// The tables whose ids are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Agents,
    Computers,
}

impl IdKind {
    fn table(self) -> &'static str {
        match self {
            IdKind::Agents => "agents",
            IdKind::Computers => "computers",
        }
    }
}

/// Reserves `n` ids inside `tx`; on SQLite the block is taken under the transaction's write lock.
pub(crate) async fn reserve_in(tx: &mut WriteTxn, kind: IdKind, n: usize) -> StoreResult<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let table = kind.table();
    let n = n as i64;
    Ok(match tx {
        WriteTxn::Sqlite(t) => {
            // The MAX guard keeps the block above rows written without a reservation (a database
            // restored from an older backup, a row added by hand).
            let sql = format!(
                "UPDATE id_blocks SET next_id = MAX(next_id, (SELECT COALESCE(MAX(id), 0) + 1 FROM {table})) + $1
                 WHERE name = '{table}' RETURNING next_id"
            );
            let end: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(n)
                .fetch_one(&mut **t)
                .await?;
            (end - n..end).collect()
        }
        WriteTxn::Postgres(t) => {
            let sql = format!(
                "SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, $1)"
            );
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(n)
                .fetch_all(&mut **t)
                .await?
        }
    })
}

impl Db {
    /// Reserves `n` ids of `kind` for rows the caller will insert (in any order, any time).
    pub async fn reserve_ids(&self, kind: IdKind, n: usize) -> StoreResult<Vec<i64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write_txn().await?;
        let ids = reserve_in(&mut tx, kind, n).await?;
        tx.commit().await?;
        Ok(ids)
    }
}
