//! The HTML UI without a browser: every page renders for an admin, roles are refused with a 403 page,
//! forms are CSRF-checked, and the integration forms create, change, verify and sync through the services
//! against a simulated N-central over real HTTP. (The browser tests in `e2e/` drive the same pages in
//! Chromium.)
use crate::both;
use crate::helpers::{PASSWORD, TestApp};
use rmmbridge_core::Role;
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};

async fn ncentral_sim() -> NcentralSim {
    NcentralSim::start(
        "127.0.0.1:0".parse().unwrap(),
        NcentralConfig {
            fleet: FleetConfig {
                seed: 11,
                customers: 4,
                devices: 30,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The add form for N-central, filled in for `sim`.
fn ncentral_form(sim: &NcentralSim, csrf: &str) -> Vec<(&'static str, String)> {
    let info = sim.connection_info();
    let s = |k: &str| info[k].as_str().unwrap().to_owned();
    vec![
        ("csrf_token", csrf.to_owned()),
        ("kind", "ncentral".into()),
        ("name", "Acme <N-central>".into()),
        ("server_url", sim.url()),
        ("username", s("username")),
        ("jwt", s("jwt")),
        ("password", s("password")),
        ("mfa_secret", s("mfa_secret")),
        ("device_sync", "on".into()),
        ("sync_interval_minutes", "0".into()),
        ("missing_grace_days", "14".into()),
        ("intent", "save".into()),
    ]
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Creates an N-central integration through the form; returns its id.
async fn add_through_form(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
    sim: &NcentralSim,
) -> i64 {
    let r = browser
        .post(app.url("/integrations"))
        .form(&ncentral_form(sim, csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to = location(&r);
    assert!(to.ends_with("?notice=created"), "{to}");
    to.trim_start_matches("/integrations/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn get(browser: &reqwest::Client, url: String) -> (u16, String) {
    let r = browser.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

both!(
    admin_adds_verifies_edits_and_syncs_through_the_forms,
    |app: TestApp| async move {
        let sim = ncentral_sim().await;
        let jwt = sim.connection_info()["jwt"].as_str().unwrap().to_owned();
        app.add_user("ada", Role::Admin).await;
        let (browser, csrf) = app.sign_in("ada", PASSWORD).await;

        // A wrong URL: the form again, with the reason, nothing created, no secret echoed back.
        let mut bad = ncentral_form(&sim, &csrf);
        bad[3].1 = "http://nc.example.com".into();
        let r = browser
            .post(app.url("/integrations"))
            .form(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let page = r.text().await.unwrap();
        assert!(
            page.contains("loopback") && page.contains("Nothing was saved"),
            "{page}"
        );
        assert!(
            !page.contains(&jwt),
            "a typed secret is not sent back into the page"
        );
        assert!(
            page.contains("value=\"Acme &#60;N-central&#62;\"")
                || page.contains("Acme &lt;N-central&gt;"),
            "the name is kept, escaped"
        );
        assert!(app.state.db.list_integrations().await.unwrap().is_empty());

        // "Verify credentials without saving" shows every check and stores nothing.
        let mut verify = ncentral_form(&sim, &csrf);
        verify.last_mut().unwrap().1 = "verify".into();
        let (status, page) = {
            let r = browser
                .post(app.url("/integrations"))
                .form(&verify)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        assert_eq!(status, 200);
        assert!(
            page.contains("all checks passed") && page.contains("Devices visible"),
            "{page}"
        );
        assert!(!page.contains(&jwt));
        assert!(app.state.db.list_integrations().await.unwrap().is_empty());

        let id = add_through_form(&app, &browser, &csrf, &sim).await;
        let (status, page) = get(&browser, app.url(&format!("/integrations/{id}"))).await;
        assert_eq!(status, 200);
        assert!(
            page.contains("Acme &#60;N-central&#62;") || page.contains("Acme &lt;N-central&gt;")
        );
        assert!(!page.contains("<N-central>"), "names are escaped");
        assert!(!page.contains(&jwt), "secrets never come back");
        assert!(page.contains("Not verified"));

        // Verify credentials: every named check, and the status follows.
        let r = browser
            .post(app.url(&format!("/integrations/{id}/verify")))
            .form(&[("csrf_token", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        for label in [
            "TLS certificate valid",
            "User-API token accepted",
            "Customers visible",
            "Devices visible",
        ] {
            assert!(page.contains(label), "{label} in {page}");
        }
        assert!(!page.contains("check-fail"), "{page}");
        assert!(page.contains("Healthy"));

        // The current MFA code.
        let r = browser
            .post(app.url(&format!("/integrations/{id}/totp")))
            .form(&[("csrf_token", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        let at =
            page.find("id=\"totp-code\">").expect("the code is shown") + "id=\"totp-code\">".len();
        assert!(
            page[at..at + 6].chars().all(|c| c.is_ascii_digit()),
            "{}",
            &page[at..at + 10]
        );

        // Edit: empty secret fields keep the stored secrets; options change.
        let mut edit = ncentral_form(&sim, &csrf);
        edit.retain(|(k, _)| !matches!(*k, "jwt" | "password" | "mfa_secret"));
        edit.push(("sites_as_clients", "on".into()));
        edit[2].1 = "Acme N-central".into();
        let r = browser
            .post(app.url(&format!("/integrations/{id}")))
            .form(&edit)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), format!("/integrations/{id}?notice=saved"));
        let i = app.state.db.integration_by_id(id).await.unwrap().unwrap();
        assert_eq!(i.name, "Acme N-central");
        assert_eq!(i.options["sites_as_clients"], true);
        assert_eq!(i.options["sync_interval_minutes"], 0);
        let fields: Vec<String> = app
            .state
            .db
            .secret_fields(id)
            .await
            .unwrap()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        for f in ["jwt", "password", "mfa_secret"] {
            assert!(fields.iter().any(|x| x == f), "{f} kept: {fields:?}");
        }
        let (status, page) = get(&browser, app.url(&format!("/integrations/{id}/edit"))).await;
        assert_eq!(status, 200);
        assert!(page.contains("Generate JSON Web Token"), "the set-up help");
        assert!(!page.contains(&jwt));

        // Sync now: to the run's page, which shows its stages; it finishes.
        let r = browser
            .post(app.url(&format!("/integrations/{id}/sync")))
            .form(&[("csrf_token", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let run_page = location(&r);
        assert!(run_page.starts_with("/sync-runs/"), "{run_page}");
        let mut page = String::new();
        for _ in 0..100 {
            let (status, p) = get(&browser, app.url(&run_page)).await;
            assert_eq!(status, 200);
            page = p;
            if !page.contains("data-poll") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(page.contains("id=\"run-state\">succeeded"), "{page}");
        assert!(page.contains("Devices fetched"));
        let (status, page) = get(&browser, app.url("/sync-runs")).await;
        assert_eq!(status, 200);
        assert!(page.contains("succeeded"));

        // Every page renders for an admin.
        let run = run_page.split('?').next().unwrap().to_owned();
        for path in [
            "/".to_owned(),
            "/integrations".into(),
            "/integrations/new".into(),
            "/integrations/new?kind=ninjaone".into(),
            format!("/integrations/{id}"),
            format!("/integrations/{id}/edit"),
            "/sync-runs".into(),
            format!("/sync-runs?integration={id}"),
            run,
            "/audit".into(),
            "/audit?action=integration.create".into(),
            "/users".into(),
            "/tokens".into(),
        ] {
            let (status, page) = get(&browser, app.url(&path)).await;
            assert_eq!(status, 200, "{path}: {page}");
            assert!(
                page.contains("id=\"current-user\">ada"),
                "{path} shows the user"
            );
            assert!(page.contains("Sign out"), "{path}");
        }
        let (_, audit) = get(&browser, app.url("/audit")).await;
        for action in [
            "integration.create",
            "integration.verify",
            "integration.totp_shown",
            "sync.start",
        ] {
            assert!(audit.contains(action), "{action} audited");
        }
        let (status, _) = get(&browser, app.url("/integrations/999999")).await;
        assert_eq!(status, 404);

        // Remove.
        let r = browser
            .post(app.url(&format!("/integrations/{id}/delete")))
            .form(&[("csrf_token", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(app.state.db.list_integrations().await.unwrap().is_empty());
    }
);

both!(
    roles_are_enforced_on_pages_and_actions,
    |app: TestApp| async move {
        let sim = ncentral_sim().await;
        app.add_user("ada", Role::Admin).await;
        app.add_user("vic", Role::Viewer).await;
        app.add_user("tom", Role::Technician).await;
        let (admin, admin_csrf) = app.sign_in("ada", PASSWORD).await;
        let id = add_through_form(&app, &admin, &admin_csrf, &sim).await;

        let (viewer, csrf) = app.sign_in("vic", PASSWORD).await;
        for path in [
            "/".to_owned(),
            "/integrations".into(),
            format!("/integrations/{id}"),
            "/sync-runs".into(),
            "/tokens".into(),
        ] {
            let (status, page) = get(&viewer, app.url(&path)).await;
            assert_eq!(status, 200, "{path}");
            assert!(
                !page.contains("id=\"verify\"")
                    && !page.contains("id=\"sync-now\"")
                    && !page.contains("id=\"edit\""),
                "{path}: no buttons a viewer cannot use"
            );
            assert!(
                !page.contains("href=\"/users\""),
                "{path}: no admin navigation"
            );
        }
        for path in [
            "/audit".to_owned(),
            "/users".into(),
            "/integrations/new".into(),
            format!("/integrations/{id}/edit"),
        ] {
            let (status, page) = get(&viewer, app.url(&path)).await;
            assert_eq!(status, 403, "{path}");
            assert!(
                page.contains("Not allowed") && page.contains("role (viewer) may not do this"),
                "{path}: {page}"
            );
            assert!(
                page.contains("id=\"current-user\">vic"),
                "the 403 page keeps the navigation"
            );
        }
        let posts: Vec<(String, Vec<(&str, String)>)> = vec![
            (
                "/users".into(),
                vec![("username", "mallory".into()), ("role", "admin".into())],
            ),
            ("/integrations".into(), ncentral_form(&sim, &csrf)),
            (format!("/integrations/{id}"), ncentral_form(&sim, &csrf)),
            (format!("/integrations/{id}/delete"), vec![]),
            (format!("/integrations/{id}/verify"), vec![]),
            (format!("/integrations/{id}/sync"), vec![]),
            (format!("/integrations/{id}/totp"), vec![]),
            (format!("/integrations/{id}/consent"), vec![]),
        ];
        for (path, mut form) in posts {
            form.retain(|(k, _)| *k != "csrf_token");
            form.push(("csrf_token", csrf.clone()));
            let r = viewer
                .post(app.url(&path))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "viewer POST {path}");
        }
        assert!(
            app.state
                .db
                .user_by_username("mallory")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(app.state.db.list_integrations().await.unwrap().len(), 1);
        assert!(
            app.state
                .db
                .list_sync_runs(Some(id), 10)
                .await
                .unwrap()
                .is_empty()
        );

        // A technician verifies and syncs, but does not change settings or see the MFA code.
        let (tech, tcsrf) = app.sign_in("tom", PASSWORD).await;
        let (_, page) = get(&tech, app.url(&format!("/integrations/{id}"))).await;
        assert!(page.contains("id=\"verify\"") && page.contains("id=\"sync-now\""));
        assert!(!page.contains("id=\"edit\"") && !page.contains("id=\"show-totp\""));
        let r = tech
            .post(app.url(&format!("/integrations/{id}/verify")))
            .form(&[("csrf_token", &tcsrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        for path in [
            format!("/integrations/{id}/totp"),
            format!("/integrations/{id}/delete"),
        ] {
            let r = tech
                .post(app.url(&path))
                .form(&[("csrf_token", &tcsrf)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "technician POST {path}");
        }
    }
);

both!(
    forms_without_the_csrf_token_are_refused_with_a_page,
    |app: TestApp| async move {
        app.add_user("ada", Role::Admin).await;
        let (browser, csrf) = app.sign_in("ada", PASSWORD).await;
        for token in [None, Some("forged")] {
            let mut form = vec![("username", "eve"), ("role", "admin")];
            if let Some(t) = token {
                form.push(("csrf_token", t));
            }
            let r = browser
                .post(app.url("/users"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403);
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            let page = r.text().await.unwrap();
            assert!(
                page.contains("Form expired") && page.contains("CSRF token"),
                "{page}"
            );
        }
        assert!(
            app.state
                .db
                .user_by_username("eve")
                .await
                .unwrap()
                .is_none()
        );
        // Sign-out is a form too.
        let r = browser
            .post(app.url("/logout"))
            .form(&[("x", "y")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);

        // With the token: the user is created and the generated password is shown once.
        let r = browser
            .post(app.url("/users"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("username", "eve"),
                ("role", "technician"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        let at = page.find("id=\"new-password\">").unwrap() + "id=\"new-password\">".len();
        let password = &page[at..at + page[at..].find('<').unwrap()];
        let eve = app.state.db.user_by_username("eve").await.unwrap().unwrap();
        assert_eq!(eve.role, Role::Technician);
        app.sign_in("eve", password).await;
        let (_, again) = get(&browser, app.url("/users")).await;
        assert!(!again.contains(password), "shown only once");

        // Tokens: created and shown once, then revoked.
        let r = browser
            .post(app.url("/tokens"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("name", "psa"),
                ("expires_in_days", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        let at = page.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
        let token = page[at..at + page[at..].find('<').unwrap()].to_owned();
        let me = app.api(&token).get("/api/v1/me").send().await.unwrap();
        assert_eq!(me.status(), 200);
        let t = app.state.db.list_api_tokens(None).await.unwrap();
        let r = browser
            .post(app.url(&format!("/tokens/{}/revoke", t[0].id)))
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let me = app.api(&token).get("/api/v1/me").send().await.unwrap();
        assert_eq!(me.status(), 401);

        // Static files are served, compiled in.
        for (file, mime) in [("app.css", "text/css"), ("app.js", "text/javascript")] {
            let r = app
                .browser()
                .get(app.url(&format!("/static/{file}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with(mime)
            );
        }
    }
);
