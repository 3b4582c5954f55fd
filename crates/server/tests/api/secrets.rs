use crate::helpers::*;
use rmmbridge_core::IntegrationKind;
use rmmbridge_core::secret::SecretString;
use rmmbridge_server::state::now;
use rmmbridge_store::NewIntegration;

const PLAINTEXT: &str = "eyJhbGciOiJIUzI1NiJ9.PLAINTEXT-CANARY-7f3a9c.signature";

async fn store_a_secret(app: &TestApp) -> i64 {
    let integration = app
        .state
        .db
        .create_integration(&NewIntegration {
            kind: IntegrationKind::Ncentral,
            name: "Main N-central".into(),
            settings: serde_json::json!({"server_url": "https://ncentral.example.com"}),
            options: serde_json::json!({}),
            now: now(),
        })
        .await
        .unwrap();
    app.state
        .vault
        .put(integration.id, "jwt", &SecretString::new(PLAINTEXT), now())
        .await
        .unwrap();
    let back = app
        .state
        .vault
        .get(integration.id, "jwt")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.expose(), PLAINTEXT);
    integration.id
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_sqlite_file_holds_no_plaintext_secret() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    store_a_secret(&app).await;
    let db_path = app.test_db.sqlite_path().unwrap().to_owned();
    // Look at every file SQLite writes: the database, its write-ahead log and shared memory.
    let mut checked = 0;
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db_path.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            checked += bytes.len();
            assert!(
                !contains(&bytes, PLAINTEXT.as_bytes()),
                "plaintext found in {}",
                path.display()
            );
            assert!(
                !contains(&bytes, b"PLAINTEXT-CANARY"),
                "part of the secret found in {}",
                path.display()
            );
        }
    }
    assert!(checked > 0, "the database files were read");
    // And the sealed value is really there: the check above would pass on an empty table too.
    assert_eq!(app.state.db.count_sealed_secrets().await.unwrap(), 1);
}

#[tokio::test]
async fn the_postgres_tables_hold_no_plaintext_secret() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    store_a_secret(&app).await;
    let rows = app.test_db.dump_all_rows_as_text().await;
    assert!(
        rows.iter().any(|r| r.contains("v1:")),
        "the sealed secret is stored"
    );
    for row in rows {
        assert!(
            !row.contains("PLAINTEXT-CANARY"),
            "plaintext found in row {row}"
        );
    }
}

#[tokio::test]
async fn a_sealed_secret_moved_to_another_integration_does_not_open() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let first = store_a_secret(&app).await;
    let second = app
        .state
        .db
        .create_integration(&NewIntegration {
            kind: IntegrationKind::Ninjaone,
            name: "NinjaOne".into(),
            settings: serde_json::json!({}),
            options: serde_json::json!({}),
            now: now(),
        })
        .await
        .unwrap();
    let sealed = app
        .state
        .db
        .get_secret(first, "jwt")
        .await
        .unwrap()
        .unwrap();
    app.state
        .db
        .put_secret(second.id, "jwt", &sealed, now())
        .await
        .unwrap();
    let err = app.state.vault.get(second.id, "jwt").await.unwrap_err();
    assert!(err.to_string().contains("altered, or copied"), "{err}");
}
