//! Connectors built from stored integrations, kept per integration so that tokens bought once are
//! reused across requests and syncs; rebuilt when the settings or a secret change.
use super::settings::{IntegrationSettings, NinjaGrantKind, REFRESH_TOKEN};
use crate::state::now;
use crate::vault::SecretVault;
use rmmbridge_core::Timestamp;
use rmmbridge_core::secret::SecretString;
use rmmbridge_rmm::ncentral::{NcentralConnector, NcentralCredentials, NcentralSettings};
use rmmbridge_rmm::ninjaone::{
    NinjaConnector, NinjaGrant, NinjaSettings, StoreFuture, TokenSet, TokenStore,
};
use rmmbridge_rmm::{Connector, RmmError, TokenReport};
use rmmbridge_store::{Db, HealthEvent, Integration};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

struct Cached {
    key: String,
    connector: Arc<dyn Connector>,
    recorded: TokenReport,
}

pub struct Connectors {
    db: Db,
    vault: Arc<SecretVault>,
    cache: Mutex<HashMap<i64, Cached>>,
}

/// Persists every NinjaOne token response before the connector uses it (DESIGN.md §3 item 3).
pub struct DbTokenStore {
    db: Db,
    vault: Arc<SecretVault>,
    integration_id: i64,
}

impl TokenStore for DbTokenStore {
    fn save<'a>(&'a self, tokens: &'a TokenSet) -> StoreFuture<'a> {
        Box::pin(async move {
            let t = now();
            if let Some(rt) = &tokens.refresh_token {
                self.vault
                    .put(self.integration_id, REFRESH_TOKEN, rt, t)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            self.db
                .record_health(
                    self.integration_id,
                    &HealthEvent {
                        token_at: Some(t),
                        access_expires_at: Some(t.plus_secs(tokens.expires_in as i64)),
                        refresh_token_issued_at: tokens.refresh_token.as_ref().map(|_| t),
                        ..Default::default()
                    },
                    t,
                )
                .await
                .map_err(|e| e.to_string())
        })
    }
}

pub fn ncentral_settings(s: &IntegrationSettings) -> NcentralSettings {
    let url = match s {
        IntegrationSettings::Ncentral(f) => f.server_url.as_str(),
        IntegrationSettings::Ninjaone(_) => "",
    };
    let mut n = NcentralSettings::new(url);
    n.tls = s.tls();
    n.http = s.http();
    n.asset_concurrency = n.http.max_in_flight.max(1);
    n
}

pub fn ninja_settings(s: &IntegrationSettings) -> NinjaSettings {
    let (instance, client_id, script_id) = match s {
        IntegrationSettings::Ninjaone(f) => {
            (f.instance.clone(), f.client_id.clone(), f.script_id.clone())
        }
        IntegrationSettings::Ncentral(_) => Default::default(),
    };
    NinjaSettings {
        instance,
        client_id,
        script_id,
        tls: s.tls(),
        http: s.http(),
    }
}

pub fn build_ncentral(
    s: &IntegrationSettings,
    jwt: Option<SecretString>,
    password: Option<SecretString>,
) -> Result<NcentralConnector, RmmError> {
    let IntegrationSettings::Ncentral(f) = s else {
        return Err(RmmError::Config("not an N-central integration".into()));
    };
    let jwt = jwt.ok_or_else(|| RmmError::Config("the User-API token (JWT) is not set".into()))?;
    let mut creds = NcentralCredentials::jwt(jwt);
    if let (Some(user), Some(pass)) = (&f.username, password) {
        creds.login = Some((user.clone(), pass));
    }
    NcentralConnector::new(&ncentral_settings(s), creds)
}

pub fn build_ninja<S: TokenStore>(
    s: &IntegrationSettings,
    client_secret: SecretString,
    refresh_token: Option<SecretString>,
    store: Option<S>,
) -> Result<NinjaConnector<TokenSink<S>>, RmmError> {
    let IntegrationSettings::Ninjaone(f) = s else {
        return Err(RmmError::Config("not a NinjaOne integration".into()));
    };
    let grant = match f.grant {
        NinjaGrantKind::ClientCredentials => NinjaGrant::ClientCredentials,
        NinjaGrantKind::AuthorizationCode => {
            NinjaGrant::RefreshToken(refresh_token.ok_or_else(|| {
                RmmError::NeedsConsent("no consent has been given for this integration yet".into())
            })?)
        }
    };
    NinjaConnector::new(&ninja_settings(s), client_secret, grant, TokenSink(store))
}

/// A token store that may be absent (verifying unsaved settings stores nothing).
pub struct TokenSink<S>(Option<S>);

impl<S: TokenStore> TokenStore for TokenSink<S> {
    fn save<'a>(&'a self, tokens: &'a TokenSet) -> StoreFuture<'a> {
        match &self.0 {
            Some(s) => s.save(tokens),
            None => Box::pin(async { Ok(()) }),
        }
    }
}

impl Connectors {
    pub fn new(db: Db, vault: Arc<SecretVault>) -> Connectors {
        Connectors {
            db,
            vault,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// What a connector depends on; the refresh token is left out, since the connector itself rotates it.
    async fn key(&self, i: &Integration) -> Result<String, RmmError> {
        let fields = self
            .db
            .secret_fields(i.id)
            .await
            .map_err(|e| RmmError::Config(e.to_string()))?;
        let mut key = i.settings.to_string();
        for (f, t) in fields.iter().filter(|(f, _)| f != REFRESH_TOKEN) {
            key.push_str(&format!("|{f}@{}", t.0));
        }
        if !fields.iter().any(|(f, _)| f == REFRESH_TOKEN) {
            key.push_str("|no-consent");
        }
        Ok(key)
    }

    async fn secret(&self, id: i64, field: &str) -> Result<Option<SecretString>, RmmError> {
        self.vault
            .get(id, field)
            .await
            .map_err(|e| RmmError::Config(format!("{e}; was the master key changed?")))
    }

    pub async fn get(&self, i: &Integration) -> Result<Arc<dyn Connector>, RmmError> {
        let key = self.key(i).await?;
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&i.id)
            && c.key == key
        {
            return Ok(c.connector.clone());
        }
        let parsed = IntegrationSettings::parse(i.kind, &i.settings).map_err(RmmError::Config)?;
        let connector: Arc<dyn Connector> = match &parsed {
            IntegrationSettings::Ncentral(_) => Arc::new(build_ncentral(
                &parsed,
                self.secret(i.id, "jwt").await?,
                self.secret(i.id, "password").await?,
            )?),
            IntegrationSettings::Ninjaone(_) => {
                let secret = self
                    .secret(i.id, "client_secret")
                    .await?
                    .ok_or_else(|| RmmError::Config("the client secret is not set".into()))?;
                let store = DbTokenStore {
                    db: self.db.clone(),
                    vault: self.vault.clone(),
                    integration_id: i.id,
                };
                Arc::new(build_ninja(
                    &parsed,
                    secret,
                    self.secret(i.id, REFRESH_TOKEN).await?,
                    Some(store),
                )?)
            }
        };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            i.id,
            Cached {
                key,
                connector: connector.clone(),
                recorded: TokenReport::default(),
            },
        );
        Ok(connector)
    }

    pub fn forget(&self, id: i64) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Folds the connector's token counters since the last call into the health record.
    pub async fn record_tokens(&self, id: i64, c: &dyn Connector) {
        let report = c.token_report();
        let before = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get_mut(&id) {
                Some(entry) => std::mem::replace(&mut entry.recorded, report.clone()),
                None => TokenReport::default(),
            }
        };
        let t = now();
        let bought =
            report.authentications > before.authentications || report.refreshes > before.refreshes;
        let at = |s: Option<u64>| s.map(|s| Timestamp(t.0 + s as i64 * 1000));
        let e = HealthEvent {
            token_at: bought.then_some(t),
            access_expires_at: at(report.access_expires_in_s),
            refresh_expires_at: at(report.refresh_expires_in_s),
            authentications: report
                .authentications
                .saturating_sub(before.authentications) as i64,
            refreshes: report.refreshes.saturating_sub(before.refreshes) as i64,
            rotations: report.rotations.saturating_sub(before.rotations) as i64,
            ..Default::default()
        };
        if let Err(err) = self.db.record_health(id, &e, t).await {
            tracing::warn!(integration = id, error = %err, "cannot record credential health");
        }
    }
}
