//! What both simulators share: the HTTP listener, the simulated clock, fault injection and the
//! admin endpoints under `/_sim` that change the fleet over time.
use crate::fleet::{Change, Fleet, FleetError, Overrides};
use crate::universe::mix;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The simulator's notion of now: real time plus an offset that `advance` moves forward, so tests
/// can expire tokens without waiting.
#[derive(Debug, Default)]
pub struct SimClock {
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        real + self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn now_s(&self) -> i64 {
        self.now_ms() / 1000
    }

    pub fn advance(&self, secs: i64) {
        self.offset_ms.fetch_add(secs * 1000, Ordering::Relaxed);
    }
}

/// Fault injection. Decisions are drawn from the seed, the request (method, path and query) and
/// how often that request was seen, so a run with the same requests sees the same faults, and a
/// client that retries gets a fresh draw.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of data requests answered 429.
    pub rate_limit: f64,
    /// Seconds in `Retry-After` on a 429; none when unset (neither RMM documents the header).
    pub retry_after_s: Option<u32>,
    /// Share of data requests that start a burst of 5xx answers.
    pub server_errors: f64,
    /// How many consecutive requests a 5xx burst lasts (at least 1).
    pub burst: u32,
    /// Share of requests delayed by `slow_ms`.
    pub slow: f64,
    pub slow_ms: u64,
    /// Share of requests whose connection breaks after the headers.
    pub resets: f64,
    /// This page of the device list is served malformed every time (N-central: `pageNumber`;
    /// NinjaOne: the n-th page of a scan, counted from 1 by `after`).
    pub malformed_page: Option<u32>,
    /// After this many authenticated data requests, the access token in use expires (once).
    pub expire_token_after: Option<u32>,
    /// N-central: share of data requests answered 200 with an error message inside.
    pub error_in_200: f64,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }
}

/// What a fault check decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Injected {
    RateLimited,
    ServerError,
    Reset,
    ErrorIn200,
}

/// Shared state every simulator carries.
#[derive(Debug)]
pub struct Common {
    pub seed: u64,
    pub fleet: RwLock<Fleet>,
    pub clock: SimClock,
    pub faults: RwLock<Faults>,
    attempts: Mutex<HashMap<String, u32>>,
    burst_left: AtomicU64,
    pub data_requests: AtomicU64,
    /// How many requests each path template served; benchmarks and tests read it.
    pub requests: AtomicU64,
}

impl Common {
    pub fn new(seed: u64, fleet: Fleet, faults: Faults) -> Common {
        Common {
            seed,
            fleet: RwLock::new(fleet),
            clock: SimClock::default(),
            faults: RwLock::new(faults),
            attempts: Mutex::new(HashMap::new()),
            burst_left: AtomicU64::new(0),
            data_requests: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn fleet(&self) -> std::sync::RwLockReadGuard<'_, Fleet> {
        self.fleet.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fleet_mut(&self) -> std::sync::RwLockWriteGuard<'_, Fleet> {
        self.fleet.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides the fault, if any, for one data request identified by `key`.
    pub fn draw_fault(&self, key: &str) -> Option<Injected> {
        let f = self.faults();
        let attempt = {
            let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(key.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let draw = |stream: u64| {
            (mix(self.seed ^ h, stream, u64::from(attempt)) >> 11) as f64 / (1u64 << 53) as f64
        };
        if self.burst_left.load(Ordering::Relaxed) > 0 {
            self.burst_left.fetch_sub(1, Ordering::Relaxed);
            return Some(Injected::ServerError);
        }
        if draw(1) < f.rate_limit {
            return Some(Injected::RateLimited);
        }
        if draw(2) < f.server_errors {
            self.burst_left
                .store(u64::from(f.burst.max(1) - 1), Ordering::Relaxed);
            return Some(Injected::ServerError);
        }
        if draw(3) < f.resets {
            return Some(Injected::Reset);
        }
        if draw(4) < f.error_in_200 {
            return Some(Injected::ErrorIn200);
        }
        None
    }

    /// A slow answer, when the draw says so.
    pub async fn maybe_slow(&self, key: &str) {
        let f = self.faults();
        if f.slow > 0.0 && f.slow_ms > 0 {
            let h = key.len() as u64;
            let n = self.data_requests.load(Ordering::Relaxed);
            if (mix(self.seed, 77 + h, n) >> 11) as f64 / (1u64 << 53) as f64 > f.slow {
                return;
            }
            tokio::time::sleep(Duration::from_millis(f.slow_ms)).await;
        }
    }

    /// Counts an authenticated data request; true when this one should find its token expired.
    pub fn count_data_request(&self) -> bool {
        let n = self.data_requests.fetch_add(1, Ordering::Relaxed) + 1;
        let mut f = self.faults.write().unwrap_or_else(|e| e.into_inner());
        match f.expire_token_after {
            Some(after) if n >= u64::from(after) => {
                f.expire_token_after = None;
                true
            }
            _ => false,
        }
    }
}

/// A response whose body breaks off after the headers: the client sees a broken connection.
pub fn reset_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated connection reset",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// Counts every request; used by the standalone simulator's stats and benchmarks.
pub async fn count_requests(
    State(common): State<Arc<Common>>,
    req: Request,
    next: Next,
) -> Response {
    common.requests.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

/// A running simulator bound to a local port.
pub struct SimServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimServer {
    pub async fn serve(listen: SocketAddr, app: Router) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (ctrl-c for the standalone simulator).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Receives fleet changes, so a simulator can turn them into webhooks and activities.
pub type ChangeSink = Arc<dyn Fn(&[Change]) + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    common: Arc<Common>,
    sink: ChangeSink,
}

/// `/_sim/...`: change the fleet, the clock and the faults. Not part of either RMM's API.
pub fn admin_router(common: Arc<Common>, sink: ChangeSink) -> Router {
    Router::new()
        .route("/_sim/devices", post(add_device))
        .route(
            "/_sim/devices/{id}",
            axum::routing::patch(change_device).delete(delete_device),
        )
        .route("/_sim/devices/{id}/move", post(move_device))
        .route("/_sim/devices/{id}/clone", post(clone_device))
        .route("/_sim/devices/{id}/reinstall", post(reinstall_device))
        .route("/_sim/clients", post(add_client))
        .route(
            "/_sim/clients/{id}",
            axum::routing::patch(rename_client).delete(delete_client),
        )
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/stats", get(stats))
        .with_state(AdminState { common, sink })
}

fn fleet_error(e: FleetError) -> Response {
    let status = match e {
        FleetError::NoDevice(_) | FleetError::NoClient(_) => StatusCode::NOT_FOUND,
        FleetError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    (status, axum::Json(json!({"error": e.to_string()}))).into_response()
}

fn changed(s: &AdminState, changes: Vec<Change>, body: serde_json::Value) -> Response {
    (s.sink)(&changes);
    axum::Json(body).into_response()
}

#[derive(Deserialize)]
pub struct AddDevice {
    pub client_id: i64,
    pub site_id: Option<i64>,
}

async fn add_device(State(s): State<AdminState>, axum::Json(b): axum::Json<AddDevice>) -> Response {
    let now = s.common.clock.now_s();
    let r = s.common.fleet_mut().add_device(b.client_id, b.site_id, now);
    match r {
        Ok((id, ch)) => changed(&s, vec![ch], json!({"id": id})),
        Err(e) => fleet_error(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeviceChange {
    pub hostname: Option<String>,
    pub os_name: Option<String>,
    /// `""` clears the serial.
    pub serial: Option<String>,
    pub offline: Option<bool>,
}

async fn change_device(
    State(s): State<AdminState>,
    Path(id): Path<i64>,
    axum::Json(b): axum::Json<DeviceChange>,
) -> Response {
    let now = s.common.clock.now_s();
    let ov = Overrides {
        hostname: b.hostname,
        os_name: b.os_name,
        serial: b.serial.map(|v| (!v.is_empty()).then_some(v)),
        last_contact_s: b
            .offline
            .map(|off| if off { now - 3 * 86_400 } else { now }),
        offline: b.offline,
    };
    let r = s.common.fleet_mut().change_device(id, ov, now);
    match r {
        Ok(ch) => changed(&s, vec![ch], json!({"id": id})),
        Err(e) => fleet_error(e),
    }
}

async fn delete_device(State(s): State<AdminState>, Path(id): Path<i64>) -> Response {
    let r = s.common.fleet_mut().delete_device(id);
    match r {
        Ok(ch) => changed(&s, vec![ch], json!({"deleted": id})),
        Err(e) => fleet_error(e),
    }
}

async fn move_device(
    State(s): State<AdminState>,
    Path(id): Path<i64>,
    axum::Json(b): axum::Json<AddDevice>,
) -> Response {
    let now = s.common.clock.now_s();
    let r = s
        .common
        .fleet_mut()
        .move_device(id, b.client_id, b.site_id, now);
    match r {
        Ok(ch) => changed(&s, vec![ch], json!({"id": id})),
        Err(e) => fleet_error(e),
    }
}

async fn clone_device(State(s): State<AdminState>, Path(id): Path<i64>) -> Response {
    let now = s.common.clock.now_s();
    let r = s.common.fleet_mut().clone_device(id, now);
    match r {
        Ok((new_id, ch)) => changed(&s, vec![ch], json!({"id": new_id})),
        Err(e) => fleet_error(e),
    }
}

async fn reinstall_device(State(s): State<AdminState>, Path(id): Path<i64>) -> Response {
    let now = s.common.clock.now_s();
    let r = s.common.fleet_mut().reinstall_device(id, now);
    match r {
        Ok((new_id, chs)) => changed(&s, chs, json!({"id": new_id, "replaces": id})),
        Err(e) => fleet_error(e),
    }
}

#[derive(Deserialize)]
pub struct AddClient {
    pub name: String,
    pub parent_id: Option<i64>,
}

async fn add_client(State(s): State<AdminState>, axum::Json(b): axum::Json<AddClient>) -> Response {
    let now = s.common.clock.now_s();
    let r = s.common.fleet_mut().add_client(&b.name, b.parent_id, now);
    match r {
        Ok((id, ch)) => changed(&s, vec![ch], json!({"id": id})),
        Err(e) => fleet_error(e),
    }
}

#[derive(Deserialize)]
pub struct RenameClient {
    pub name: String,
}

async fn rename_client(
    State(s): State<AdminState>,
    Path(id): Path<i64>,
    axum::Json(b): axum::Json<RenameClient>,
) -> Response {
    let now = s.common.clock.now_s();
    let r = s.common.fleet_mut().rename_client(id, &b.name, now);
    match r {
        Ok(ch) => changed(&s, vec![ch], json!({"id": id})),
        Err(e) => fleet_error(e),
    }
}

async fn delete_client(State(s): State<AdminState>, Path(id): Path<i64>) -> Response {
    let r = s.common.fleet_mut().delete_client(id);
    match r {
        Ok(chs) => {
            let n = chs.len();
            changed(&s, chs, json!({"deleted": id, "changes": n}))
        }
        Err(e) => fleet_error(e),
    }
}

#[derive(Deserialize)]
pub struct Advance {
    pub seconds: i64,
}

async fn advance_clock(
    State(s): State<AdminState>,
    axum::Json(b): axum::Json<Advance>,
) -> Response {
    s.common.clock.advance(b.seconds);
    axum::Json(json!({"now_ms": s.common.clock.now_ms()})).into_response()
}

async fn get_faults(State(s): State<AdminState>) -> Response {
    axum::Json(s.common.faults()).into_response()
}

async fn put_faults(State(s): State<AdminState>, axum::Json(f): axum::Json<Faults>) -> Response {
    *s.common.faults.write().unwrap_or_else(|e| e.into_inner()) = f.clone();
    axum::Json(f).into_response()
}

async fn stats(State(s): State<AdminState>) -> Response {
    let fleet = s.common.fleet();
    axum::Json(json!({
        "devices": fleet.device_count(),
        "clients": fleet.clients().count(),
        "requests": s.common.requests.load(Ordering::Relaxed),
        "data_requests": s.common.data_requests.load(Ordering::Relaxed),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetConfig;
    use crate::universe::Side;

    fn common(f: Faults) -> Common {
        Common::new(
            3,
            Fleet::generate(
                Side::Ncentral,
                FleetConfig {
                    devices: 10,
                    ..Default::default()
                },
            ),
            f,
        )
    }

    #[test]
    fn faults_are_reproducible_and_retries_get_a_fresh_draw() {
        let f = Faults {
            rate_limit: 0.5,
            ..Faults::none()
        };
        let a: Vec<_> = (0..40)
            .map(|i| common(f.clone()).draw_fault(&format!("GET /x?p={i}")))
            .collect();
        let b: Vec<_> = (0..40)
            .map(|i| common(f.clone()).draw_fault(&format!("GET /x?p={i}")))
            .collect();
        assert_eq!(a, b);
        let limited = a
            .iter()
            .filter(|x| **x == Some(Injected::RateLimited))
            .count();
        assert!((10..30).contains(&limited), "{limited}");
        let c = common(f);
        let tries = (0..30)
            .take_while(|_| c.draw_fault("GET /same").is_some())
            .count();
        assert!(tries < 30, "a retried request eventually passes");
    }

    #[test]
    fn a_server_error_burst_lasts_its_length() {
        let c = common(Faults {
            server_errors: 1.0,
            burst: 3,
            ..Faults::none()
        });
        assert_eq!(c.draw_fault("a"), Some(Injected::ServerError));
        c.faults.write().unwrap().server_errors = 0.0;
        assert_eq!(c.draw_fault("b"), Some(Injected::ServerError));
        assert_eq!(c.draw_fault("c"), Some(Injected::ServerError));
        assert_eq!(c.draw_fault("d"), None);
    }

    #[test]
    fn the_token_expires_once_after_the_configured_requests() {
        let c = common(Faults {
            expire_token_after: Some(3),
            ..Faults::none()
        });
        assert_eq!(
            (0..6).map(|_| c.count_data_request()).collect::<Vec<_>>(),
            [false, false, true, false, false, false]
        );
    }
}
