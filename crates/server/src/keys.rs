//! Finding the master key that seals integration secrets, with the rules of issue 2 item 3: a missing or
//! wrong key stops the start with a clear error, and a new key is never generated over sealed data.

use crate::config::Settings;
use rmmbridge_core::secret::{MasterKey, SecretError};
use rmmbridge_store::{Db, StoreError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The database remembers the id (a fingerprint, not the key) of the key its secrets are sealed with.
const META_KEY_ID: &str = "master_key_id";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RMMBRIDGE_MASTER_KEY is not usable: {0}")]
    BadEnvKey(SecretError),
    #[error("the master key file {path} is not usable: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error(
        "no master key found: the database holds secrets sealed with key {key_id}, but neither RMMBRIDGE_MASTER_KEY nor the key file {path} is present. Restore the key file or set RMMBRIDGE_MASTER_KEY; a new key cannot open the existing secrets, so none is generated"
    )]
    Missing { key_id: String, path: PathBuf },
    #[error(
        "wrong master key: the database's secrets are sealed with key {expected}, the configured key is {found}. Start rmmbridge with the original key (RMMBRIDGE_MASTER_KEY or {path})"
    )]
    Wrong {
        expected: String,
        found: String,
        path: PathBuf,
    },
    #[error("cannot create the master key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the key came from, for the start-up log line (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    Created(PathBuf),
}

pub async fn load_master_key(
    settings: &Settings,
    db: &Db,
) -> Result<(MasterKey, KeySource), KeyError> {
    let recorded = db.get_meta(META_KEY_ID).await?;
    let path = &settings.master_key_file;
    let (key, source) = if let Some(text) = &settings.master_key {
        let key = MasterKey::from_base64(text.expose()).map_err(KeyError::BadEnvKey)?;
        (key, KeySource::Environment)
    } else if path.exists() {
        (read_key_file(path)?, KeySource::File(path.clone()))
    } else {
        // Once a key id is recorded, or anything is sealed, a fresh key could only orphan those secrets.
        if let Some(key_id) = recorded {
            return Err(KeyError::Missing {
                key_id,
                path: path.clone(),
            });
        }
        if db.count_sealed_secrets().await? > 0 {
            return Err(KeyError::Missing {
                key_id: "unknown".into(),
                path: path.clone(),
            });
        }
        let key = MasterKey::generate().map_err(KeyError::BadEnvKey)?;
        write_new_key_file(path, &key)?;
        (key, KeySource::Created(path.clone()))
    };
    match recorded {
        Some(expected) if expected != key.key_id() => {
            return Err(KeyError::Wrong {
                expected,
                found: key.key_id(),
                path: path.clone(),
            });
        }
        Some(_) => {}
        None => db.set_meta(META_KEY_ID, &key.key_id()).await?,
    }
    Ok((key, source))
}

fn read_key_file(path: &Path) -> Result<MasterKey, KeyError> {
    let bad = |reason: String| KeyError::BadFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the master key file is readable by other users; run `chmod 600` on it");
        }
    }
    MasterKey::from_base64(&text).map_err(|e| bad(e.to_string()))
}

fn write_new_key_file(path: &Path, key: &MasterKey) -> Result<(), KeyError> {
    let create = |source| KeyError::Create {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(create)?;
    }
    let mut options = std::fs::OpenOptions::new();
    // create_new: never overwrite a key that appeared since we looked.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(create)?;
    file.write_all(format!("{}\n", key.to_base64()).as_bytes())
        .map_err(create)?;
    file.sync_all().map_err(create)?;
    Ok(())
}
