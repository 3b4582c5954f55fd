use crate::helpers::{self, Backend};
use rmmbridge_core::secret::{MasterKey, SecretString};
use rmmbridge_server::Application;
use rmmbridge_server::keys::{KeyError, KeySource};
use rmmbridge_server::startup::StartError;
use rmmbridge_store::testing::TestDb;

async fn test_db(backend: Backend) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => Some(TestDb::sqlite().await),
        Backend::Postgres => TestDb::postgres().await,
    }
}

async fn key_lifecycle(backend: Backend) {
    let Some(tdb) = test_db(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = helpers::settings(dir.path());
    settings.master_key = None;

    // First start: a key file is created, readable by its owner only.
    let app = Application::build_with_db(settings.clone(), tdb.db.clone())
        .await
        .unwrap();
    assert_eq!(
        app.key_source,
        KeySource::Created(settings.master_key_file.clone())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&settings.master_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let integration = tdb
        .db
        .create_integration(&rmmbridge_store::NewIntegration {
            kind: rmmbridge_core::IntegrationKind::Ncentral,
            name: "N-central".into(),
            settings: serde_json::json!({}),
            options: serde_json::json!({}),
            now: rmmbridge_server::state::now(),
        })
        .await
        .unwrap();
    app.state
        .vault
        .put(
            integration.id,
            "jwt",
            &SecretString::new("eyJ-the-jwt"),
            rmmbridge_server::state::now(),
        )
        .await
        .unwrap();
    drop(app);

    // Second start: the same key is read back and opens the secret.
    let app = Application::build_with_db(settings.clone(), tdb.db.clone())
        .await
        .unwrap();
    assert_eq!(
        app.key_source,
        KeySource::File(settings.master_key_file.clone())
    );
    let value = app
        .state
        .vault
        .get(integration.id, "jwt")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value.expose(), "eyJ-the-jwt");
    drop(app);

    // A different key is named as wrong, not treated as corruption.
    let mut wrong = settings.clone();
    wrong.master_key = Some(SecretString::new(
        MasterKey::generate().unwrap().to_base64(),
    ));
    match Application::build_with_db(wrong, tdb.db.clone()).await {
        Err(StartError::Key(KeyError::Wrong { .. })) => {}
        Err(other) => panic!("expected a wrong-key error, got {other}"),
        Ok(_) => panic!("a wrong key must not start"),
    }

    // A lost key file is an error, and no new key is generated over the sealed data.
    std::fs::remove_file(&settings.master_key_file).unwrap();
    match Application::build_with_db(settings.clone(), tdb.db.clone()).await {
        Err(StartError::Key(e @ KeyError::Missing { .. })) => {
            assert!(e.to_string().contains("RMMBRIDGE_MASTER_KEY"), "{e}");
        }
        Err(other) => panic!("expected a missing-key error, got {other}"),
        Ok(_) => panic!("a missing key must not start"),
    }
    assert!(!settings.master_key_file.exists());
}

#[tokio::test]
async fn key_lifecycle_sqlite() {
    key_lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn key_lifecycle_postgres() {
    key_lifecycle(Backend::Postgres).await;
}

#[tokio::test]
async fn a_malformed_key_is_explained() {
    let tdb = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = helpers::settings(dir.path());
    settings.master_key = Some(SecretString::new("too-short"));
    let err = Application::build_with_db(settings, tdb.db.clone())
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("RMMBRIDGE_MASTER_KEY") && text.contains("32 bytes"),
        "{text}"
    );
}
