//! Settings: built-in defaults, then an optional TOML file, then `RMMBRIDGE_*` environment variables and flags
//! (clap merges those two before they reach [`Overrides`]). Zero configuration works: SQLite in
//! `./rmmbridge-data`, listening on 127.0.0.1:8080.

use rmmbridge_core::secret::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "rmmbridge-data";
pub const KEY_FILE_NAME: &str = "master.key";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?}; use text or json")),
        }
    }
}

/// The resolved configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The address people and RMMs reach this server at (OAuth redirect URI, links in messages).
    pub public_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub master_key: Option<SecretString>,
    pub master_key_file: PathBuf,
    pub log_filter: String,
    pub log_format: LogFormat,
}

/// The TOML file: every key optional, unknown keys refused so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub log: Option<String>,
    pub log_format: Option<LogFormat>,
}

/// Values given by flags or environment variables; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
    pub log_filter: Option<String>,
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("public URL {0:?} must start with http:// or https://")]
    PublicUrl(String),
}

impl Settings {
    pub fn resolve(o: Overrides) -> Result<Settings, ConfigError> {
        let file = match &o.config_file {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let listen = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let data_dir = o
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = o
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| sqlite_url(&data_dir.join("rmmbridge.db")));
        let public_url = o
            .public_url
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::PublicUrl(public_url));
        }
        let master_key_file = o
            .master_key_file
            .or(file.master_key_file)
            .unwrap_or_else(|| data_dir.join(KEY_FILE_NAME));
        Ok(Settings {
            listen,
            public_url,
            data_dir,
            database_url,
            master_key: o.master_key,
            master_key_file,
            log_filter: o.log_filter.or(file.log).unwrap_or_else(|| "info".into()),
            log_format: o.log_format.or(file.log_format).unwrap_or_default(),
        })
    }

    /// Cookies get the `Secure` attribute only when people reach us over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn uses_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_configuration_gives_working_defaults() {
        let s = Settings::resolve(Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("rmmbridge-data"));
        assert_eq!(s.database_url, "sqlite://rmmbridge-data/rmmbridge.db");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(
            s.master_key_file,
            PathBuf::from("rmmbridge-data/master.key")
        );
        assert!(!s.secure_cookies());
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rmmbridge.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/rmm\"\npublic_url = \"https://rmm.example.com/\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let s = Settings::resolve(Overrides {
            config_file: Some(path.clone()),
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(s.data_dir, PathBuf::from("/srv/rmm"));
        assert_eq!(s.database_url, "sqlite:///srv/rmm/rmmbridge.db");
        assert_eq!(s.public_url, "https://rmm.example.com");
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.secure_cookies());
    }

    #[test]
    fn a_typo_in_the_file_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listn = \"0.0.0.0:9000\"\n").unwrap();
        let err = Settings::resolve(Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bad.toml") && text.contains("listn"),
            "{text}"
        );
    }
}
