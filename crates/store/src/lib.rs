//! rmmbridge storage: one [`Db`] over SQLite (the default, embedded) and PostgreSQL.
//!
//! Every repository method is written once: SQL uses `$1`-style placeholders, which both
//! backends understand, and [`with_db!`] runs the same code against whichever pool is open.
//! Timestamps are Unix milliseconds in `BIGINT`/`INTEGER` columns on both backends.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Runs `$body` with `$pool` bound to the open pool, whichever backend it is.
macro_rules! with_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}

#[macro_use]
mod batch;

pub mod agents;
pub mod api_tokens;
pub mod audit;
pub mod computers;
pub mod credentials;
pub mod decisions;
pub mod ids;
pub mod integrations;
pub mod meta;
pub mod rmm_clients;
pub mod sessions;
pub mod sync_batch;
pub mod sync_runs;
pub mod tenants;
pub mod testing;
pub mod users;

pub use agents::{
    AgentLink, AgentSnapshot, AgentState, AgentUpsert, AgentWrite, ComputerAgent, Evidence,
    IdentityRow,
};
pub use api_tokens::{ApiToken, NewApiToken};
pub use audit::{AuditEntry, AuditQuery, NewAuditEntry};
pub use computers::{
    ComputerCursor, ComputerQuery, ComputerRow, ComputerUpdate, NewComputer, Page,
};
pub use credentials::{ConsentState, CredentialHealth, HealthEvent};
pub use decisions::{DecisionEffect, DecisionFilter, DecisionRow, NewDecision, Resolution};
pub use ids::IdKind;
pub use integrations::{Integration, IntegrationChange, NewIntegration};
pub use rmm_clients::{
    AppliedLinkChange, AppliedLinks, ClientEvidence, ClientLinkChange, ClientLinkRow,
    ClientLinkState, ClientRefresh, ClientRename, CreatedTenant, MappedClient, Provenance,
};
pub use sessions::Session;
pub use sync_batch::{SyncBatch, SyncBatchWritten};
pub use sync_runs::{NewPlanItem, PlanItem, SyncRun, SyncRunState};
pub use tenants::{Tenant, TenantScope};
pub use users::{NewUser, User};

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A handle on the database; cheap to clone (it is a connection pool).
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) pool: Pool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{what}")]
    Conflict { what: String },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict {
                what: format!(
                    "already exists ({})",
                    db.constraint().unwrap_or("unique key")
                ),
            };
        }
        StoreError::Database(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Opens `sqlite://path`, `sqlite::memory:` or `postgres://...`. Does not migrate.
    pub async fn connect(url: &str) -> StoreResult<Db> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url:?}: {e}")))?;
            Self::connect_sqlite(opts.create_if_missing(true)).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| {
                    StoreError::Config(format!("invalid PostgreSQL URL {}: {e}", redact_url(url)))
                })?
                // A first import grows tables from empty faster than autovacuum analyzes them; a
                // cached generic plan made on the empty table keeps scanning it (quadratic at
                // 100,000 agents). Planning our statements anew each time costs microseconds.
                .options([("plan_cache_mode", "force_custom_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|e| {
                    StoreError::Config(format!(
                        "cannot connect to PostgreSQL at {}: {e}; check RMMBRIDGE_DATABASE_URL and that the server is running",
                        redact_url(url)
                    ))
                })?;
            Ok(Db {
                pool: Pool::Postgres(pool),
            })
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL {}: use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            )))
        }
    }

    /// A SQLite file with write-ahead logging, foreign keys and a busy timeout.
    pub async fn connect_sqlite_file(path: &std::path::Path) -> StoreResult<Db> {
        Self::connect_sqlite(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
    }

    async fn connect_sqlite(opts: SqliteConnectOptions) -> StoreResult<Db> {
        let opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Every pooled connection fills its own page cache in time (the pool hands them out
            // in turn): 4 MiB each for reads and small writes. A sync's bulk writes go through
            // [`Db::dedicated_writer`], whose cache is bigger.
            .pragma("cache_size", "-4096")
            // A checkpoint copies every page the WAL holds back into the database file; every
            // 40 MiB of WAL rather than every 4 MiB, a page that many commits of a sync touch (an
            // index's) is copied once instead of again and again (2,000-row commits of 100,000
            // computers: 1.9 s with the default, 1.5 s with this; 10,000-row commits: 1.2 / 0.8 s).
            .pragma("wal_autocheckpoint", "10000")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Config(format!("cannot open the SQLite database: {e}")))?;
        Ok(Db {
            pool: Pool::Sqlite(pool),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies pending migrations; safe to run at every start.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    pub async fn ping(&self) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        with_db!(self, |p| p.close().await)
    }

    /// A handle for one task's sequence of writes (a sync run's writer). On SQLite it is a
    /// connection of its own: SQLite drops a connection's whole page cache when another connection
    /// changed the file, and the pool hands its connections out in turn, so writes spread over the
    /// pool start cold every time. On PostgreSQL it is the shared pool. Release it with
    /// [`Db::release_writer`].
    pub async fn dedicated_writer(&self) -> StoreResult<Db> {
        match &self.pool {
            Pool::Sqlite(p) => {
                let opts = (*p.connect_options()).clone();
                if opts.get_filename() == std::path::Path::new(":memory:") {
                    return Ok(self.clone());
                }
                // SQLite's default 2 MiB page cache makes index inserts spill to the WAL again and
                // again once a table holds ~100,000 rows; 16 MiB keeps a sync's working set.
                let opts = opts.pragma("cache_size", "-16384");
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(|e| {
                        StoreError::Config(format!("cannot open the SQLite database: {e}"))
                    })?;
                Ok(Db {
                    pool: Pool::Sqlite(pool),
                })
            }
            Pool::Postgres(_) => Ok(self.clone()),
        }
    }

    /// Closes a handle from [`Db::dedicated_writer`] (a no-op for a shared pool).
    pub async fn release_writer(self, shared: &Db) {
        if let (Pool::Sqlite(mine), Pool::Sqlite(theirs)) = (&self.pool, &shared.pool)
            && !std::sync::Arc::ptr_eq(&mine.connect_options(), &theirs.connect_options())
        {
            mine.close().await;
        }
    }
}

/// A database URL fit for logs and errors: any password is replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

/// Converts a stored enum text back, naming the column when it is not valid.
pub(crate) fn parse_col<T: FromStr>(column: &'static str, text: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} holds {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        let r = redact_url("postgres://app:hunter2@db.example/rmm");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("db.example"));
        assert_eq!(redact_url("not a url"), "(unparseable URL)");
    }
}
