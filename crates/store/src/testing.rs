//! Test databases for this crate's tests and for other crates' tests: a fresh SQLite file or a
//! fresh PostgreSQL database per test, migrated, removed afterwards.
//!
//! PostgreSQL comes from `RMMBRIDGE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! When it is unreachable the PostgreSQL half of a test is skipped with a note, except under
//! `CI=true`, where that is a failure: CI must run every store test on both backends.
use crate::{Backend, Db};
use sqlx::{AssertSqlSafe, Connection};
use std::path::{Path, PathBuf};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDb {
    pub db: Db,
    sqlite: Option<(tempfile::TempDir, PathBuf)>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A migrated SQLite database in a fresh temporary file.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("test.db");
        let db = Db::connect_sqlite_file(&path).await.expect("SQLite opens");
        db.migrate().await.expect("SQLite migrations apply");
        TestDb {
            db,
            sqlite: Some((dir, path)),
            pg: None,
        }
    }

    /// A migrated, freshly created PostgreSQL database, or `None` when PostgreSQL is unreachable
    /// outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url =
            std::env::var("RMMBRIDGE_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => {
                let msg = format!(
                    "PostgreSQL is unreachable at {} ({e}); set RMMBRIDGE_TEST_PG_URL or start it (.ci/ensure-postgres)",
                    crate::redact_url(&admin_url)
                );
                if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                    panic!("{msg}");
                }
                eprintln!("skipping the PostgreSQL half of this test: {msg}");
                return None;
            }
        };
        let name = format!("rmmbridge_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("a PostgreSQL URL");
        url.set_path(&name);
        let db = Db::connect(url.as_str())
            .await
            .expect("the test database opens");
        db.migrate().await.expect("PostgreSQL migrations apply");
        Some(TestDb {
            db,
            sqlite: None,
            pg: Some((admin_url, name)),
        })
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite.as_ref().map(|(_, p)| p.as_path())
    }

    /// Every row of every table as text, to prove what is (not) stored anywhere.
    pub async fn dump_all_rows_as_text(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.db.pool {
            crate::Pool::Postgres(p) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                )
                .fetch_all(p)
                .await
                .expect("list tables");
                for t in tables {
                    let rows: Vec<String> =
                        sqlx::query_scalar(AssertSqlSafe(format!("SELECT t::text FROM \"{t}\" t")))
                            .fetch_all(p)
                            .await
                            .expect("dump a table");
                    out.extend(rows.into_iter().map(|r| format!("{t}: {r}")));
                }
            }
            crate::Pool::Sqlite(p) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .fetch_all(p)
                .await
                .expect("list tables");
                for t in tables {
                    let cols: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                        "SELECT name FROM pragma_table_info('{t}')"
                    )))
                    .fetch_all(p)
                    .await
                    .expect("list columns");
                    let expr = cols
                        .iter()
                        .map(|c| format!("quote(\"{c}\")"))
                        .collect::<Vec<_>>()
                        .join(" || ',' || ");
                    let rows: Vec<String> =
                        sqlx::query_scalar(AssertSqlSafe(format!("SELECT {expr} FROM \"{t}\"")))
                            .fetch_all(p)
                            .await
                            .expect("dump a table");
                    out.extend(rows.into_iter().map(|r| format!("{t}: {r}")));
                }
            }
        }
        out
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg.take() else {
            return;
        };
        // Drop cannot await, and the test's runtime is busy dropping us: a short-lived runtime on
        // its own thread does the cleanup. FORCE ends the pool's connections server-side.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

impl Db {
    /// Runs raw SQL; for tests that prove the schema refuses something.
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&self, sql: &str) -> crate::StoreResult<u64> {
        Ok(with_db!(self, |p| sqlx::query(AssertSqlSafe(
            sql.to_owned()
        ))
        .execute(p)
        .await?
        .rows_affected()))
    }
}
