use rmmbridge_core::Role;
use rmmbridge_core::secret::{MasterKey, SecretString};
use rmmbridge_server::Application;
use rmmbridge_server::config::{Overrides, Settings};
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::{tokens, users};
use rmmbridge_server::state::AppState;
use rmmbridge_store::testing::TestDb;
use std::net::SocketAddr;

pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub test_db: TestDb,
    /// Held so the directory lives as long as the app.
    _data_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn settings(data_dir: &std::path::Path) -> Settings {
    Settings::resolve(Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_owned()),
        master_key: Some(SecretString::new(
            MasterKey::generate().unwrap().to_base64(),
        )),
        ..Default::default()
    })
    .unwrap()
}

/// `None` only when PostgreSQL is unreachable outside CI (the store harness prints why).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let test_db = match backend {
        Backend::Sqlite => TestDb::sqlite().await,
        Backend::Postgres => TestDb::postgres().await?,
    };
    let data_dir = tempfile::tempdir().unwrap();
    let app = Application::build_with_db(settings(data_dir.path()), test_db.db.clone())
        .await
        .expect("the app starts");
    let addr = app.local_addr();
    let state = app.state.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    Some(TestApp {
        addr,
        state,
        test_db,
        _data_dir: data_dir,
        shutdown: Some(tx),
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client that keeps cookies (a browser) but never follows redirects, so tests see them.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn add_user(&self, name: &str, role: Role) -> i64 {
        users::create_user(&self.state.db, &Actor::cli(), name, role, PASSWORD)
            .await
            .unwrap()
            .id
    }

    /// A user and a Bearer token acting as them.
    pub async fn user_with_token(&self, name: &str, role: Role) -> (i64, String) {
        let id = self.add_user(name, role).await;
        let created = tokens::create_token(&self.state.db, &Actor::cli(), id, "test", None)
            .await
            .unwrap();
        (id, created.token)
    }

    pub fn api(&self, token: &str) -> ApiClient {
        ApiClient {
            base: self.url(""),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Signs in through the real login form; returns the browser and the session's CSRF token.
    pub async fn sign_in(&self, username: &str, password: &str) -> (reqwest::Client, String) {
        let browser = self.browser();
        let csrf = login_form_csrf(&browser, &self.url("/login")).await;
        let res = browser
            .post(self.url("/login"))
            .form(&[
                ("username", username),
                ("password", password),
                ("csrf_token", &csrf),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "sign-in should redirect");
        let page = browser
            .get(self.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let session_csrf =
            hidden_value(&page, "csrf_token").expect("signed-in pages carry the CSRF token");
        (browser, session_csrf)
    }
}

pub async fn login_form_csrf(browser: &reqwest::Client, url: &str) -> String {
    let page = browser.get(url).send().await.unwrap().text().await.unwrap();
    hidden_value(&page, "csrf_token").expect("the login form has a CSRF field")
}

/// The value of `<input type="hidden" name="NAME" value="...">` in a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::GET, path)
    }
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::POST, path)
    }
}

/// Runs one async test body on both backends: `both!(name, |app| async move { ... })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite)
                    .await
                    .unwrap();
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) =
                    $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await
                else {
                    return;
                };
                ($body)(app).await;
            }
        }
    };
}

impl TestApp {
    /// An N-central integration pointing at a simulator, created as the CLI would.
    pub async fn ncentral_integration(
        &self,
        nc: &rmmbridge_sim::ncentral::NcentralSim,
        name: &str,
        options: serde_json::Value,
    ) -> i64 {
        let info = nc.connection_info();
        self.create_integration(rmmbridge_server::services::integrations::IntegrationInput {
            kind: rmmbridge_core::IntegrationKind::Ncentral,
            name: name.into(),
            settings: serde_json::json!({"server_url": nc.url()}),
            secrets: serde_json::json!({"jwt": info["jwt"]})
                .as_object()
                .cloned()
                .unwrap(),
            options,
        })
        .await
    }

    /// A NinjaOne integration pointing at a simulator, with the client-credentials grant (no
    /// consent needed).
    pub async fn ninjaone_integration(
        &self,
        nj: &rmmbridge_sim::ninjaone::NinjaSim,
        name: &str,
        options: serde_json::Value,
    ) -> i64 {
        let info = nj.connection_info();
        self.create_integration(rmmbridge_server::services::integrations::IntegrationInput {
            kind: rmmbridge_core::IntegrationKind::Ninjaone,
            name: name.into(),
            settings: serde_json::json!({"instance": nj.url(), "client_id": info["client_id"],
                "grant": "client_credentials"}),
            secrets: serde_json::json!({"client_secret": info["client_secret"]})
                .as_object()
                .cloned()
                .unwrap(),
            options,
        })
        .await
    }

    async fn create_integration(
        &self,
        input: rmmbridge_server::services::integrations::IntegrationInput,
    ) -> i64 {
        rmmbridge_server::services::integrations::create(
            &self.state.db,
            &self.state.vault,
            &Actor::cli(),
            &input,
        )
        .await
        .unwrap()
        .id
    }

    /// Every company of an integration onto a tenant of its own name, applied (Finish) straight
    /// in the store, as "Create unmatched" would: companies of both RMMs with the same name land in
    /// the same tenant. The client list must have been refreshed (a sync does that first).
    pub async fn map_every_company(&self, integration_id: i64) {
        use rmmbridge_store::{ClientLinkChange, ClientLinkState, Provenance};
        let db = &self.state.db;
        let t = rmmbridge_server::state::now();
        let changes: Vec<(i64, ClientLinkChange)> = db
            .list_client_links(integration_id)
            .await
            .unwrap()
            .iter()
            .filter(|l| l.kind == rmmbridge_core::rmm::RmmClientKind::Company)
            .map(|l| {
                (
                    l.id,
                    ClientLinkChange {
                        state: ClientLinkState::Create,
                        tenant_id: None,
                        provenance: Provenance::Manual,
                        decided_by: Some("test".into()),
                        reason: None,
                    },
                )
            })
            .collect();
        db.set_client_links(&changes, t).await.unwrap();
        db.apply_client_links(integration_id, "test", t)
            .await
            .unwrap();
    }
}
