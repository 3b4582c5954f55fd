//! Integration secrets: sealed before they reach the store, opened only where a connector needs them.
//! The store never sees plaintext, and nothing here logs or serializes a value.

use rmmbridge_core::Timestamp;
use rmmbridge_core::secret::{SecretAad, SecretCipher, SecretError, SecretString};
use rmmbridge_store::{Db, StoreError};

const TABLE: &str = "integration_secrets";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("secret {field:?} of integration {integration_id} cannot be opened: {source}")]
    Open {
        integration_id: i64,
        field: String,
        source: SecretError,
    },
    #[error("sealing a secret failed: {0}")]
    Seal(SecretError),
}

#[derive(Debug)]
pub struct SecretVault {
    db: Db,
    cipher: SecretCipher,
}

impl SecretVault {
    pub fn new(db: Db, cipher: SecretCipher) -> Self {
        SecretVault { db, cipher }
    }

    fn aad(integration_id: i64, field: &str) -> SecretAad<'_> {
        SecretAad {
            table: TABLE,
            row: integration_id,
            field,
        }
    }

    pub async fn put(
        &self,
        integration_id: i64,
        field: &str,
        value: &SecretString,
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let sealed = self
            .cipher
            .seal(value, Self::aad(integration_id, field))
            .map_err(VaultError::Seal)?;
        self.db
            .put_secret(integration_id, field, &sealed, now)
            .await?;
        Ok(())
    }

    pub async fn get(
        &self,
        integration_id: i64,
        field: &str,
    ) -> Result<Option<SecretString>, VaultError> {
        let Some(sealed) = self.db.get_secret(integration_id, field).await? else {
            return Ok(None);
        };
        self.cipher
            .open(&sealed, Self::aad(integration_id, field))
            .map(Some)
            .map_err(|source| VaultError::Open {
                integration_id,
                field: field.to_owned(),
                source,
            })
    }

    /// Seals a value that lives outside `integration_secrets` (e.g. a PKCE verifier), bound to
    /// its own table, row and field.
    pub fn seal_for(
        &self,
        table: &str,
        row: i64,
        field: &str,
        value: &SecretString,
    ) -> Result<String, VaultError> {
        self.cipher
            .seal(value, SecretAad { table, row, field })
            .map_err(VaultError::Seal)
    }

    pub fn open_for(
        &self,
        table: &str,
        row: i64,
        field: &str,
        sealed: &str,
    ) -> Result<SecretString, VaultError> {
        self.cipher
            .open(sealed, SecretAad { table, row, field })
            .map_err(|source| VaultError::Open {
                integration_id: row,
                field: field.to_owned(),
                source,
            })
    }
}
