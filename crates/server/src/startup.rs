//! Building and running the server: open and migrate the database, find the master key, bind the listener
//! (port 0 works, for tests), serve until a shutdown signal, then drain in-flight requests.

use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::keys::{self, KeyError, KeySource};
use crate::routes;
use crate::services::integrations::connectors::Connectors;
use crate::services::sync::SyncService;
use crate::state::AppState;
use crate::vault::SecretVault;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rmmbridge_core::secret::SecretCipher;
use rmmbridge_store::{Db, StoreError};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Database(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "cannot listen on {addr}: {source} (is another rmmbridge or program using that port? choose another with --listen)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the configured database, creating the data directory for SQLite, and applies migrations.
pub async fn open_database(settings: &Settings) -> Result<Db, StartError> {
    if settings.uses_sqlite() {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::DataDir {
            path: settings.data_dir.clone(),
            source,
        })?;
    }
    let db = Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    Ok(db)
}

/// The database, the vault and the connectors, for commands that work without the HTTP server.
pub async fn open_services(settings: &Settings) -> Result<Services, StartError> {
    let db = open_database(settings).await?;
    services_with_db(settings, db).await
}

/// [`open_services`] on an already opened and migrated database (the benchmark's fresh one).
pub async fn services_with_db(settings: &Settings, db: Db) -> Result<Services, StartError> {
    let (key, _) = keys::load_master_key(settings, &db).await?;
    let vault = Arc::new(SecretVault::new(db.clone(), SecretCipher::new(&key)));
    let connectors = Arc::new(Connectors::new(db.clone(), vault.clone()));
    let sync = Arc::new(SyncService::new(db.clone(), connectors.clone()));
    Ok(Services {
        db,
        vault,
        connectors,
        sync,
    })
}

/// What the CLI's offline commands work with.
pub struct Services {
    pub db: Db,
    pub vault: Arc<SecretVault>,
    pub connectors: Arc<Connectors>,
    pub sync: Arc<SyncService>,
}

/// The process-wide Prometheus recorder: the `metrics` facade is global by design, so it is installed once.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    pub state: AppState,
    pub key_source: KeySource,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let db = open_database(&settings).await?;
        Self::build_with_db(settings, db).await
    }

    /// Builds on an already opened and migrated database (tests hand in one per test).
    pub async fn build_with_db(settings: Settings, db: Db) -> Result<Application, StartError> {
        let (key, key_source) = keys::load_master_key(&settings, &db).await?;
        let vault = SecretVault::new(db.clone(), SecretCipher::new(&key));
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let mut settings = settings;
        // Port 0 (tests, the demo) is only known once bound; a defaulted public URL must follow it.
        if settings.listen.port() == 0
            && settings.public_url == format!("http://{}", settings.listen)
            && let Ok(addr) = listener.local_addr()
        {
            settings.public_url = format!("http://{addr}");
        }
        let vault = Arc::new(vault);
        let connectors = Arc::new(Connectors::new(db.clone(), vault.clone()));
        let sync = Arc::new(SyncService::new(db.clone(), connectors.clone()));
        let state = AppState {
            db,
            vault,
            connectors,
            sync,
            settings: Arc::new(settings),
            throttle: Arc::new(LoginThrottle::default()),
            metrics: metrics_handle(),
        };
        let router = router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
            key_source,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

pub fn router(state: AppState) -> Router {
    routes::table()
        .into_router(state)
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http())
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template, not the raw path: ids in paths would explode label cardinality.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("rmmbridge_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("rmmbridge_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
