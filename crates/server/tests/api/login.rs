use crate::both;
use crate::helpers::*;
use rmmbridge_core::Role;

both!(
    sign_in_shows_the_user_and_sign_out_ends_the_session,
    |app: TestApp| async move {
        app.add_user("alice", Role::Admin).await;
        let (browser, csrf) = app.sign_in("Alice", PASSWORD).await;
        let page = browser.get(app.url("/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        assert!(
            page.contains("alice") && page.contains("Dashboard"),
            "{page}"
        );
        let me: serde_json::Value = browser
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["username"], "alice");
        assert_eq!(me["auth"], "session");

        let res = browser
            .post(app.url("/logout"))
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(
            browser
                .get(app.url("/api/v1/me"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
    }
);

both!(
    a_wrong_password_is_refused_and_audited,
    |app: TestApp| async move {
        app.add_user("bob", Role::Viewer).await;
        let browser = app.browser();
        let csrf = login_form_csrf(&browser, &app.url("/login")).await;
        let res = browser
            .post(app.url("/login"))
            .form(&[
                ("username", "bob"),
                ("password", "not-the-password"),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("Wrong username or password")
        );
        let entries = app
            .state
            .db
            .list_audit(&rmmbridge_store::AuditQuery {
                before_id: None,
                limit: 10,
                action: Some("login.failed".into()),
            })
            .await
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].actor, "bob");
        assert!(entries[0].ip.is_some());
    }
);

both!(
    the_login_form_needs_its_csrf_cookie,
    |app: TestApp| async move {
        app.add_user("carol", Role::Viewer).await;
        // A cross-site form post has neither our cookie nor a matching token.
        let res = app
            .browser()
            .post(app.url("/login"))
            .form(&[
                ("username", "carol"),
                ("password", PASSWORD),
                ("csrf_token", "guessed"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
);

both!(
    session_requests_that_change_things_need_the_csrf_token,
    |app: TestApp| async move {
        app.add_user("dave", Role::Admin).await;
        let (browser, csrf) = app.sign_in("dave", PASSWORD).await;
        let res = browser
            .post(app.url("/logout"))
            .form(&[("csrf_token", "wrong")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let res = browser
            .post(app.url("/api/v1/tenants"))
            .json(&serde_json::json!({"name": "Acme"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf_failed");
        let res = browser
            .post(app.url("/api/v1/tenants"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({"name": "Acme"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
);

both!(repeated_failures_are_throttled, |app: TestApp| async move {
    app.add_user("erin", Role::Viewer).await;
    let browser = app.browser();
    for _ in 0..5 {
        let csrf = login_form_csrf(&browser, &app.url("/login")).await;
        let res = browser
            .post(app.url("/login"))
            .form(&[
                ("username", "erin"),
                ("password", "wrong-password-x"),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // Even the right password is refused while locked.
    let csrf = login_form_csrf(&browser, &app.url("/login")).await;
    let res = browser
        .post(app.url("/login"))
        .form(&[
            ("username", "erin"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("try again in"));
});

both!(
    sign_in_never_redirects_off_site,
    |app: TestApp| async move {
        app.add_user("frank", Role::Viewer).await;
        let browser = app.browser();
        let csrf = login_form_csrf(&browser, &app.url("/login")).await;
        let res = browser
            .post(app.url("/login"))
            .form(&[
                ("username", "frank"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("next", "//evil.example/x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"], "/");
    }
);

both!(a_disabled_user_cannot_sign_in, |app: TestApp| async move {
    let id = app.add_user("gina", Role::Viewer).await;
    app.state
        .db
        .set_user_disabled(id, true, rmmbridge_server::state::now())
        .await
        .unwrap();
    let browser = app.browser();
    let csrf = login_form_csrf(&browser, &app.url("/login")).await;
    let res = browser
        .post(app.url("/login"))
        .form(&[
            ("username", "gina"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
});
