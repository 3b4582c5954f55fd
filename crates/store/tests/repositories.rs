//! Every repository test runs on SQLite and on PostgreSQL, each in a fresh database.
use rmmbridge_core::{IntegrationKind, Role, Timestamp};
use rmmbridge_store::testing::TestDb;
use rmmbridge_store::*;
use serde_json::json;

/// Declares `mod $name { sqlite; postgres }` running `$body(db)` on each backend.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let t = TestDb::sqlite().await;
                ($body)(t.db.clone()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some(t) = TestDb::postgres().await else {
                    return;
                };
                ($body)(t.db.clone()).await;
            }
        }
    };
}

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn user(db: &Db, name: &str) -> User {
    db.create_user(&NewUser {
        username: name.into(),
        role: Role::Technician,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        now: T0,
    })
    .await
    .unwrap()
}

both!(users_round_trip, |db: Db| async move {
    let u = user(&db, "alice").await;
    assert_eq!(u.role, Role::Technician);
    assert!(!u.disabled);
    assert_eq!(
        db.user_by_username("ALICE").await.unwrap().unwrap().id,
        u.id
    );
    assert!(db.user_by_id(u.id + 100).await.unwrap().is_none());
    let dup = db
        .create_user(&NewUser {
            username: "alice".into(),
            role: Role::Admin,
            password_hash: "x".into(),
            now: T0,
        })
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");
    assert!(dup.to_string().contains("alice"));

    db.set_user_role(u.id, Role::Admin, Timestamp(T0.0 + 1))
        .await
        .unwrap();
    db.set_user_disabled(u.id, true, Timestamp(T0.0 + 2))
        .await
        .unwrap();
    db.set_password_hash(u.id, "new-hash", Timestamp(T0.0 + 3))
        .await
        .unwrap();
    db.record_login(u.id, Timestamp(T0.0 + 4)).await.unwrap();
    let back = db.user_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(
        (back.role, back.disabled, back.password_hash.as_str()),
        (Role::Admin, true, "new-hash")
    );
    assert_eq!(back.updated_at, Timestamp(T0.0 + 3));
    assert_eq!(back.last_login_at, Some(Timestamp(T0.0 + 4)));
    assert!(matches!(
        db.set_user_role(9999, Role::Viewer, T0).await,
        Err(StoreError::NotFound { what: "user" })
    ));
    user(&db, "bob").await;
    assert_eq!(db.count_users().await.unwrap(), 2);
    let names: Vec<_> = db
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
});

both!(tenant_limits, |db: Db| async move {
    let u = user(&db, "carol").await;
    let a = db.create_tenant("Acme Inc", T0).await.unwrap();
    let b = db.create_tenant("Bravo LLC", T0).await.unwrap();
    assert!(matches!(
        db.create_tenant("Acme Inc", T0).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(db.user_tenants(u.id).await.unwrap().is_empty());
    db.set_user_tenants(u.id, &[b.id]).await.unwrap();
    assert_eq!(db.user_tenants(u.id).await.unwrap(), vec![b.id]);
    let seen = db
        .list_tenants(&TenantScope::Only(vec![b.id]))
        .await
        .unwrap();
    assert_eq!(seen.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    assert_eq!(db.list_tenants(&TenantScope::All).await.unwrap().len(), 2);
    // An unknown tenant leaves the earlier limits untouched.
    assert!(matches!(
        db.set_user_tenants(u.id, &[a.id, 424242]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(db.user_tenants(u.id).await.unwrap(), vec![b.id]);
    assert_eq!(
        db.tenant_by_id(a.id).await.unwrap().unwrap().name,
        "Acme Inc"
    );
});

both!(sessions_expire_and_end, |db: Db| async move {
    let u = user(&db, "dave").await;
    for (i, exp) in [(1, T0.0 + 10), (2, T0.0 + 1_000)] {
        db.create_session(&Session {
            id_hash: format!("hash{i}"),
            user_id: u.id,
            csrf_token: format!("csrf{i}"),
            created_at: T0,
            expires_at: Timestamp(exp),
            last_seen_at: T0,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        db.session_by_hash("hash1")
            .await
            .unwrap()
            .unwrap()
            .csrf_token,
        "csrf1"
    );
    db.touch_session("hash2", Timestamp(T0.0 + 5), Timestamp(T0.0 + 5_000))
        .await
        .unwrap();
    let s = db.session_by_hash("hash2").await.unwrap().unwrap();
    assert_eq!((s.last_seen_at.0, s.expires_at.0), (T0.0 + 5, T0.0 + 5_000));
    assert_eq!(
        db.delete_expired_sessions(Timestamp(T0.0 + 100))
            .await
            .unwrap(),
        1
    );
    assert!(db.session_by_hash("hash1").await.unwrap().is_none());
    assert_eq!(db.delete_user_sessions(u.id).await.unwrap(), 1);
    assert!(db.session_by_hash("hash2").await.unwrap().is_none());
});

both!(api_tokens_revoke_once, |db: Db| async move {
    let u = user(&db, "erin").await;
    let t = db
        .create_api_token(&NewApiToken {
            user_id: u.id,
            name: "ci".into(),
            token_hash: "abc".into(),
            prefix: "rmb_abcd".into(),
            now: T0,
            expires_at: Some(Timestamp(T0.0 + 86_400_000)),
        })
        .await
        .unwrap();
    assert_eq!(db.api_token_by_hash("abc").await.unwrap().unwrap().id, t.id);
    assert!(db.api_token_by_hash("nope").await.unwrap().is_none());
    db.touch_api_token(t.id, Timestamp(T0.0 + 7)).await.unwrap();
    db.revoke_api_token(t.id, Timestamp(T0.0 + 8))
        .await
        .unwrap();
    db.revoke_api_token(t.id, Timestamp(T0.0 + 9))
        .await
        .unwrap();
    let back = db.api_token_by_hash("abc").await.unwrap().unwrap();
    assert_eq!(back.last_used_at, Some(Timestamp(T0.0 + 7)));
    assert_eq!(back.revoked_at, Some(Timestamp(T0.0 + 8)));
    assert_eq!(db.list_api_tokens(Some(u.id)).await.unwrap().len(), 1);
    assert!(db.list_api_tokens(Some(u.id + 1)).await.unwrap().is_empty());
    assert_eq!(db.list_api_tokens(None).await.unwrap().len(), 1);
    assert!(matches!(
        db.revoke_api_token(999, T0).await,
        Err(StoreError::NotFound { .. })
    ));
});

both!(audit_log_is_append_only_and_pages, |db: Db| async move {
    for i in 0..5 {
        db.append_audit(&NewAuditEntry {
            at: Timestamp(T0.0 + i),
            actor_user_id: None,
            actor: "cli".into(),
            action: if i % 2 == 0 {
                "login.failed".into()
            } else {
                "user.create".into()
            },
            target_kind: Some("user".into()),
            target_id: Some(i.to_string()),
            details: json!({"i": i, "nested": {"ok": true}}),
            ip: Some("127.0.0.1".into()),
        })
        .await
        .unwrap();
    }
    let all = db
        .list_audit(&AuditQuery {
            before_id: None,
            limit: 100,
            action: None,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].details["nested"]["ok"], json!(true));
    let page = db
        .list_audit(&AuditQuery {
            before_id: Some(all[1].id),
            limit: 2,
            action: None,
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![all[2].id, all[3].id]
    );
    let failed = db
        .list_audit(&AuditQuery {
            before_id: None,
            limit: 0,
            action: Some("login.failed".into()),
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "a limit below 1 is clamped to 1");
    // The schema itself refuses to rewrite history.
    for sql in [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
    ] {
        let res = db.execute_raw_for_tests(sql).await;
        assert!(res.is_err(), "{sql} must be refused");
    }
    assert_eq!(
        db.list_audit(&AuditQuery {
            before_id: None,
            limit: 500,
            action: None
        })
        .await
        .unwrap()
        .len(),
        5
    );
});

both!(integrations_and_sealed_secrets, |db: Db| async move {
    let i = db
        .create_integration(&NewIntegration {
            kind: IntegrationKind::Ninjaone,
            name: "NinjaOne EU".into(),
            settings: json!({"region": "eu"}),
            options: json!({"device_sync": true}),
            now: T0,
        })
        .await
        .unwrap();
    assert_eq!(i.status, "new");
    assert_eq!(i.settings["region"], "eu");
    let dup = db
        .create_integration(&NewIntegration {
            kind: IntegrationKind::Ncentral,
            name: "NinjaOne EU".into(),
            settings: json!({}),
            options: json!({}),
            now: T0,
        })
        .await
        .unwrap_err();
    assert!(dup.to_string().contains("NinjaOne EU"), "{dup}");

    let changed = db
        .update_integration(
            i.id,
            &IntegrationChange {
                options: Some(json!({"device_sync": false})),
                ..Default::default()
            },
            Timestamp(T0.0 + 1),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            changed.name.as_str(),
            changed.options["device_sync"].as_bool()
        ),
        ("NinjaOne EU", Some(false))
    );
    assert_eq!(
        changed.settings["region"], "eu",
        "unchanged fields are kept"
    );
    db.set_integration_status(
        i.id,
        "needs_consent",
        Some("the refresh token was revoked"),
        T0,
    )
    .await
    .unwrap();
    assert_eq!(
        db.integration_by_id(i.id).await.unwrap().unwrap().status,
        "needs_consent"
    );

    db.put_secret(i.id, "refresh_token", "v1:abcd:AAAA", T0)
        .await
        .unwrap();
    db.put_secret(i.id, "refresh_token", "v1:abcd:BBBB", Timestamp(T0.0 + 1))
        .await
        .unwrap();
    db.put_secret(i.id, "client_secret", "v1:abcd:CCCC", T0)
        .await
        .unwrap();
    assert_eq!(
        db.get_secret(i.id, "refresh_token")
            .await
            .unwrap()
            .as_deref(),
        Some("v1:abcd:BBBB")
    );
    let fields: Vec<_> = db
        .secret_fields(i.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(fields, ["client_secret", "refresh_token"]);
    assert_eq!(db.count_sealed_secrets().await.unwrap(), 2);
    assert!(db.delete_secret(i.id, "client_secret").await.unwrap());
    assert!(!db.delete_secret(i.id, "client_secret").await.unwrap());
    assert!(matches!(
        db.put_secret(9999, "x", "v1:a:b", T0).await,
        Err(StoreError::NotFound { .. })
    ));

    db.delete_integration(i.id).await.unwrap();
    assert_eq!(
        db.count_sealed_secrets().await.unwrap(),
        0,
        "secrets go with their integration"
    );
    assert!(db.list_integrations().await.unwrap().is_empty());
    assert!(matches!(
        db.delete_integration(i.id).await,
        Err(StoreError::NotFound { .. })
    ));
});

both!(meta_and_migrations_are_idempotent, |db: Db| async move {
    assert_eq!(db.get_meta("master_key_id").await.unwrap(), None);
    db.set_meta("master_key_id", "0011aabb").await.unwrap();
    db.set_meta("master_key_id", "2233ccdd").await.unwrap();
    assert_eq!(
        db.get_meta("master_key_id").await.unwrap().as_deref(),
        Some("2233ccdd")
    );
    db.migrate().await.unwrap();
    db.ping().await.unwrap();
});

#[tokio::test]
async fn bad_urls_say_what_to_do() {
    let err = Db::connect("mysql://x").await.unwrap_err().to_string();
    assert!(
        err.contains("sqlite://") && err.contains("postgres://"),
        "{err}"
    );
    let err = Db::connect("postgres://u:secretpw@127.0.0.1:1/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("secretpw"),
        "passwords never reach errors: {err}"
    );
    assert!(err.contains("RMMBRIDGE_DATABASE_URL"), "{err}");
}
