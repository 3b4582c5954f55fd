use crate::both;
use crate::helpers::*;
use rmmbridge_core::Role;
use rmmbridge_server::routes::{self, Access};
use std::collections::BTreeSet;

fn concrete(path: &str) -> String {
    // Any value will do for path parameters: the guard must refuse before the handler looks at them.
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('1');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

both!(
    every_private_route_refuses_anonymous_callers,
    |app: TestApp| async move {
        let http = app.browser();
        let table = routes::table().entries;
        assert!(
            table
                .iter()
                .filter(|r| r.access == Access::Authenticated)
                .count()
                > 10
        );
        for route in &table {
            let url = app.url(&concrete(route.path));
            let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
            let anonymous = http.request(method.clone(), &url).send().await.unwrap();
            let bad_token = http
                .request(method.clone(), &url)
                .bearer_auth("rmb_not-a-real-token")
                .send()
                .await
                .unwrap();
            let forged_cookie = http
                .request(method, &url)
                .header("cookie", "rmmbridge_session=forged")
                .send()
                .await
                .unwrap();
            match route.access {
                Access::Authenticated => {
                    assert_eq!(
                        anonymous.status(),
                        401,
                        "{} {} without credentials",
                        route.method,
                        route.path
                    );
                    assert_eq!(
                        bad_token.status(),
                        401,
                        "{} {} with a bad token",
                        route.method,
                        route.path
                    );
                    assert_eq!(
                        forged_cookie.status(),
                        401,
                        "{} {} with a forged session",
                        route.method,
                        route.path
                    );
                }
                Access::Public => {
                    assert_ne!(
                        anonymous.status(),
                        401,
                        "{} {} is public",
                        route.method,
                        route.path
                    );
                }
            }
        }
    }
);

both!(
    api_errors_are_json_and_pages_show_the_sign_in_form,
    |app: TestApp| async move {
        let res = reqwest::get(app.url("/api/v1/me")).await.unwrap();
        assert_eq!(res.status(), 401);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Bearer")
        );

        let res = reqwest::get(app.url("/")).await.unwrap();
        assert_eq!(res.status(), 401);
        let page = res.text().await.unwrap();
        assert!(
            page.contains("<form method=\"post\" action=\"/login\""),
            "{page}"
        );
        assert!(page.contains("name=\"next\" value=\"/\""));

        let health: serde_json::Value = reqwest::get(app.url("/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");
    }
);

both!(
    openapi_describes_exactly_the_api_routes,
    |app: TestApp| async move {
        let (_, token) = app.user_with_token("ops", Role::Viewer).await;
        let doc: serde_json::Value = app
            .api(&token)
            .get("/api/openapi.json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let served: BTreeSet<_> = routes::table()
            .entries
            .iter()
            .filter(|r| r.path.starts_with("/api/v1/"))
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(documented, served);
    }
);

both!(roles_are_enforced, |app: TestApp| async move {
    let (_, viewer) = app.user_with_token("viewer1", Role::Viewer).await;
    let (_, admin) = app.user_with_token("admin1", Role::Admin).await;
    let res = app
        .api(&viewer)
        .post("/api/v1/tenants")
        .json(&serde_json::json!({"name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"].as_str().unwrap().contains("admin"));
    assert_eq!(
        app.api(&viewer)
            .get("/api/v1/audit")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        app.api(&viewer)
            .get("/api/v1/users")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let res = app
        .api(&admin)
        .post("/api/v1/tenants")
        .json(&serde_json::json!({"name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
});

both!(
    a_tenant_limited_user_sees_only_its_tenants,
    |app: TestApp| async move {
        let (_, admin) = app.user_with_token("admin1", Role::Admin).await;
        let mut ids = Vec::new();
        for name in ["Acme", "Globex", "Initech"] {
            let t: serde_json::Value = app
                .api(&admin)
                .post("/api/v1/tenants")
                .json(&serde_json::json!({"name": name}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(t["id"].as_i64().unwrap());
        }
        let (tech_id, tech) = app.user_with_token("tech1", Role::Technician).await;
        let res = app
            .api(&admin)
            .req(reqwest::Method::PATCH, &format!("/api/v1/users/{tech_id}"))
            .json(&serde_json::json!({"tenants": [ids[1]]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);

        let visible: Vec<serde_json::Value> = app
            .api(&tech)
            .get("/api/v1/tenants")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<_> = visible
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, vec!["Globex"]);
        assert_eq!(
            app.api(&tech)
                .get(&format!("/api/v1/tenants/{}", ids[1]))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // Another tenant is "not found", exactly like one that does not exist.
        let hidden = app
            .api(&tech)
            .get(&format!("/api/v1/tenants/{}", ids[0]))
            .send()
            .await
            .unwrap();
        let missing = app
            .api(&tech)
            .get("/api/v1/tenants/999999")
            .send()
            .await
            .unwrap();
        assert_eq!(hidden.status(), 404);
        assert_eq!(missing.status(), 404);
        assert_eq!(hidden.text().await.unwrap(), missing.text().await.unwrap());
        let all: Vec<serde_json::Value> = app
            .api(&admin)
            .get("/api/v1/tenants")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
    }
);

both!(
    metrics_are_exported_to_authenticated_scrapers,
    |app: TestApp| async move {
        let (_, token) = app.user_with_token("prometheus", Role::Viewer).await;
        reqwest::get(app.url("/healthz")).await.unwrap();
        let res = app.api(&token).get("/metrics").send().await.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        assert!(text.contains("rmmbridge_http_requests_total"), "{text}");
        assert!(text.contains("route=\"/healthz\""), "{text}");
    }
);
