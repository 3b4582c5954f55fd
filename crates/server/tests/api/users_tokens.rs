use crate::both;
use crate::helpers::*;
use rmmbridge_core::Role;
use serde_json::{Value, json};

both!(
    admins_create_users_who_can_then_sign_in,
    |app: TestApp| async move {
        let (_, admin) = app.user_with_token("root", Role::Admin).await;
        let res = app
            .api(&admin)
            .post("/api/v1/users")
            .json(&json!({"username": "Tech.One", "role": "technician"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["user"]["username"], "tech.one");
        assert_eq!(created["user"]["role"], "technician");
        let password = created["generated_password"].as_str().unwrap().to_owned();
        let (browser, _) = app.sign_in("tech.one", &password).await;
        let me: Value = browser
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["role"], "technician");

        let dup = app
            .api(&admin)
            .post("/api/v1/users")
            .json(&json!({"username": "tech.one", "role": "viewer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(dup.status(), 409);
        let short = app
            .api(&admin)
            .post("/api/v1/users")
            .json(&json!({"username": "x", "role": "viewer", "password": "short"}))
            .send()
            .await
            .unwrap();
        assert_eq!(short.status(), 400);
        let body: Value = short.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("12 characters")
        );
        let role = app
            .api(&admin)
            .post("/api/v1/users")
            .json(&json!({"username": "y", "role": "god"}))
            .send()
            .await
            .unwrap();
        assert_eq!(role.status(), 400);
    }
);

both!(
    tokens_are_shown_once_listed_without_values_and_revocable,
    |app: TestApp| async move {
        let (_, first) = app.user_with_token("hank", Role::Technician).await;
        let res = app
            .api(&first)
            .post("/api/v1/tokens")
            .json(&json!({"name": "psa-sync"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        let token = created["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("rmb_"));
        assert_eq!(
            app.api(&token)
                .get("/api/v1/me")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );

        let listed = app
            .api(&first)
            .get("/api/v1/tokens")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !listed.contains(&token),
            "a list must never contain a token value"
        );
        assert!(listed.contains("psa-sync"));

        let id = created["id"].as_i64().unwrap();
        let res = app
            .api(&first)
            .req(reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let res = app.api(&token).get("/api/v1/me").send().await.unwrap();
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("revoked")
        );

        // Someone else's token is invisible to a non-admin.
        let (_, other) = app.user_with_token("ivy", Role::Technician).await;
        let res = app
            .api(&other)
            .req(reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
);

both!(
    the_audit_log_records_sign_ins_and_changes,
    |app: TestApp| async move {
        let (_, admin) = app.user_with_token("root", Role::Admin).await;
        app.api(&admin)
            .post("/api/v1/users")
            .json(&json!({"username": "jane", "role": "viewer", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        app.sign_in("jane", PASSWORD).await;
        let entries: Vec<Value> = app
            .api(&admin)
            .get("/api/v1/audit")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for expected in ["user.create", "token.create", "login.success"] {
            assert!(
                actions.contains(&expected),
                "{expected} missing from {actions:?}"
            );
        }
        // Newest first, and paging goes backwards.
        let newest = entries[0]["id"].as_i64().unwrap();
        let older: Vec<Value> = app
            .api(&admin)
            .get(&format!("/api/v1/audit?before={newest}&limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(older.len(), 1);
        assert!(older[0]["id"].as_i64().unwrap() < newest);
        let text = serde_json::to_string(&entries).unwrap();
        assert!(
            !text.contains(PASSWORD),
            "passwords never reach the audit log"
        );
    }
);

both!(
    a_password_reset_ends_existing_sessions,
    |app: TestApp| async move {
        let (_, admin) = app.user_with_token("root", Role::Admin).await;
        let kate = app.add_user("kate", Role::Viewer).await;
        let (browser, _) = app.sign_in("kate", PASSWORD).await;
        assert_eq!(
            browser
                .get(app.url("/api/v1/me"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let res = app
            .api(&admin)
            .post(&format!("/api/v1/users/{kate}/password"))
            .json(&json!({"new_password": "a-brand-new-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        assert_eq!(
            browser
                .get(app.url("/api/v1/me"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        app.sign_in("kate", "a-brand-new-password").await;
    }
);
