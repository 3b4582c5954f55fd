//! Small process-wide facts, such as which master key sealed the stored secrets.
use crate::{Db, StoreResult};

impl Db {
    pub async fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(with_db!(self, |p| {
            sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(p)
            .await?;
        });
        Ok(())
    }
}
