//! The client-mapping pages without a browser (DESIGN.md §3 items 4 and 5): a simulated N-central
//! is the RMM, a signed-in browser posts the pages' forms, the database is checked behind them.
use crate::both;
use crate::helpers::{PASSWORD, TestApp};
use rmmbridge_core::Role;
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_store::{SyncRunState, TenantScope};
use serde_json::json;

/// N-central numbers its four companies 100..=103.
const NAMES: [&str; 4] = [
    "Acme Dental",
    "Bolt Logistics",
    "Cedar Clinic",
    "Delta Farms",
];

struct World {
    app: TestApp,
    _nc: NcentralSim,
    id: i64,
    browser: reqwest::Client,
    csrf: String,
}

async fn world(app: TestApp) -> World {
    let nc = NcentralSim::start(
        "127.0.0.1:0".parse().unwrap(),
        NcentralConfig {
            fleet: FleetConfig {
                seed: 5,
                customers: 4,
                devices: 24,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for (i, name) in NAMES.iter().enumerate() {
        nc.common()
            .fleet_mut()
            .rename_client(100 + i as i64, name, 0)
            .unwrap();
    }
    let id = app
        .ncentral_integration(&nc, "Contoso N-central", json!({}))
        .await;
    app.add_user("ada", Role::Admin).await;
    let (browser, csrf) = app.sign_in("ada", PASSWORD).await;
    World {
        app,
        _nc: nc,
        id,
        browser,
        csrf,
    }
}

async fn get(browser: &reqwest::Client, url: String) -> (u16, String) {
    let r = browser.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The text of the element with this id (up to its first `<`).
fn by_id<'a>(page: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("#{id} in {page}"));
    let start = page[at..].find('>').unwrap() + at + 1;
    let end = page[start..].find('<').unwrap() + start;
    page[start..end].trim()
}

/// The `<tr>` of one client.
fn row_html(page: &str, client: i64) -> &str {
    let at = page
        .find(&format!("id=\"client-{client}\""))
        .unwrap_or_else(|| panic!("client {client} in {page}"));
    let end = page[at..].find("</tr>").unwrap() + at;
    &page[at..end]
}

fn rows_in(page: &str) -> usize {
    page.matches("data-client=\"").count()
}

impl World {
    fn url(&self, rest: &str) -> String {
        self.app.url(&format!("/integrations/{}{rest}", self.id))
    }

    async fn page(&self, rest: &str) -> String {
        let (status, page) = get(&self.browser, self.url(rest)).await;
        assert_eq!(status, 200, "{rest}: {page}");
        page
    }

    /// Posts a form with the CSRF token; returns the redirect target.
    async fn post(&self, rest: &str, fields: &[(&str, &str)]) -> String {
        let mut form = vec![("csrf_token", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let r = self
            .browser
            .post(self.url(rest))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let to = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        assert_eq!(status, 303, "{rest}: {}", r.text().await.unwrap());
        to.unwrap()
    }

    async fn client_id(&self, name: &str) -> i64 {
        self.app
            .state
            .db
            .list_client_links(self.id)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .id
    }

    async fn tenant(&self, name: &str) -> i64 {
        self.app
            .state
            .db
            .create_tenant(name, rmmbridge_server::state::now())
            .await
            .unwrap()
            .id
    }
}

both!(
    the_mapping_pages_walk_from_refresh_to_finish,
    |app: TestApp| async move {
        let w = world(app).await;
        let acme = w.tenant("Acme Dental").await;
        let bolt = w.tenant("Bolt Logistics GmbH").await;
        let zeta = w.tenant("Zeta Holdings").await;

        // The nav's Client mapping page lists the integration; nothing is imported yet.
        let (status, page) = get(&w.browser, w.app.url("/mapping")).await;
        assert_eq!(status, 200);
        assert!(
            page.contains("href=\"/mapping\" class=\"active\""),
            "{page}"
        );
        assert!(page.contains(&format!("href=\"/integrations/{}/clients\"", w.id)));
        assert!(page.contains("nothing imported yet"));
        let page = w.page("/clients").await;
        assert!(page.contains("No clients imported yet"), "{page}");

        // Refresh from RMM: the four companies, unmatched (sites are folded into them).
        let to = w.post("/clients/refresh", &[("view", "all")]).await;
        assert!(
            to.contains("notice=refreshed") && to.contains("added="),
            "{to}"
        );
        let page = w
            .page(&format!("/clients?{}", to.split('?').nth(1).unwrap()))
            .await;
        assert!(page.contains("Refreshed from the RMM"), "{page}");
        assert_eq!(rows_in(&page), 4);
        assert_eq!(by_id(&page, "count-all"), "4");
        assert_eq!(by_id(&page, "count-unmatched"), "4");
        assert_eq!(by_id(&page, "count-matched"), "0");
        for n in NAMES {
            assert!(page.contains(n), "{n}");
        }
        // Suggestions with reason and confidence, and a one-click Accept.
        let bolt_client = w.client_id("Bolt Logistics").await;
        let bolt_row = row_html(&page, bolt_client);
        assert!(
            bolt_row.contains("Bolt Logistics GmbH") && bolt_row.contains("95%"),
            "{bolt_row}"
        );
        assert!(bolt_row.contains("legal suffix"), "{bolt_row}");
        assert!(bolt_row.contains("class=\"small accept\""), "{bolt_row}");
        assert!(bolt_row.contains(&format!("name=\"tenant_id\" value=\"{bolt}\"")));
        let acme_client = w.client_id("Acme Dental").await;
        assert!(row_html(&page, acme_client).contains("Auto-match will match it"));
        // The picker offers every tenant.
        let cedar_client = w.client_id("Cedar Clinic").await;
        assert!(
            row_html(&page, cedar_client)
                .contains(&format!("<option value=\"{zeta}\">Zeta Holdings</option>"))
        );

        // Auto-match all through the form: only the identical name.
        let to = w
            .post("/clients/auto-match", &[("view", "unmatched")])
            .await;
        assert!(
            to.ends_with("view=unmatched&notice=auto_matched&n=1"),
            "{to}"
        );
        let page = w
            .page("/clients?view=unmatched&notice=auto_matched&n=1")
            .await;
        assert!(
            page.contains("Auto-match matched 1 client by identical name"),
            "{page}"
        );
        assert_eq!(rows_in(&page), 3);
        assert_eq!(by_id(&page, "count-matched"), "1");
        let page = w.page("/clients?view=matched").await;
        assert_eq!(rows_in(&page), 1);
        let acme_row = row_html(&page, acme_client);
        assert!(
            acme_row.contains("data-state=\"matched\"") && acme_row.contains("is-pending"),
            "{acme_row}"
        );
        assert!(acme_row.contains("badge-pending") && acme_row.contains("applied: unmatched"));
        assert!(acme_row.contains("auto · ada"), "provenance: {acme_row}");
        let link = w
            .app
            .state
            .db
            .client_link(acme_client)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(link.tenant_id, Some(acme));

        // Accept the suggestion; match another through the picker.
        let to = w
            .post(
                &format!("/clients/{bolt_client}"),
                &[
                    ("action", "match"),
                    ("tenant_id", &bolt.to_string()),
                    ("view", "unmatched"),
                ],
            )
            .await;
        assert!(
            to.ends_with(&format!("notice=matched#client-{bolt_client}")),
            "{to}"
        );
        w.post(
            &format!("/clients/{cedar_client}"),
            &[
                ("action", "match"),
                ("tenant_id", &zeta.to_string()),
                ("view", "all"),
            ],
        )
        .await;
        let page = w.page("/clients?view=matched").await;
        assert_eq!(rows_in(&page), 3);
        let cedar_row = row_html(&page, cedar_client);
        assert!(
            cedar_row.contains("Zeta Holdings") && cedar_row.contains("manual · ada"),
            "{cedar_row}"
        );

        // A Match without a tenant is refused on the page, with the reason.
        let r = w
            .browser
            .post(w.url(&format!("/clients/{cedar_client}")))
            .form(&[
                ("csrf_token", w.csrf.as_str()),
                ("action", "match"),
                ("tenant_id", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("Choose a tenant"));

        // Exclude, the Excluded view, Include; Create and Unmatch one row; Create unmatched.
        let delta = w.client_id("Delta Farms").await;
        w.post(&format!("/clients/{delta}"), &[("action", "exclude")])
            .await;
        let page = w.page("/clients?view=excluded").await;
        assert_eq!(rows_in(&page), 1);
        assert_eq!(by_id(&page, "count-excluded"), "1");
        assert!(row_html(&page, delta).contains("value=\"include\""));
        w.post(&format!("/clients/{delta}"), &[("action", "include")])
            .await;
        let page = w.page("/clients?view=excluded").await;
        assert_eq!(rows_in(&page), 0);
        w.post(&format!("/clients/{delta}"), &[("action", "create")])
            .await;
        let page = w.page("/clients?view=matched").await;
        let delta_row = row_html(&page, delta);
        assert!(
            delta_row.contains("Create tenant") && delta_row.contains("(new)"),
            "{delta_row}"
        );
        w.post(&format!("/clients/{delta}"), &[("action", "include")])
            .await;
        let to = w.post("/clients/create-unmatched", &[]).await;
        assert!(to.ends_with("notice=created_unmatched&n=1"), "{to}");
        let page = w.page("/clients?view=unmatched").await;
        assert_eq!(rows_in(&page), 0);
        assert_eq!(by_id(&page, "pending-count"), "4 pending changes");

        // The preview counts what Finish does.
        let page = w.page("/preview").await;
        assert_eq!(by_id(&page, "count-to-create"), "1");
        assert_eq!(by_id(&page, "count-to-match"), "3");
        assert_eq!(by_id(&page, "count-to-exclude"), "0");
        assert_eq!(by_id(&page, "count-to-unmatch"), "0");
        assert_eq!(by_id(&page, "count-unchanged"), "0");
        assert!(page.contains("id=\"to-create\"") && page.contains("Delta Farms"));
        assert!(page.contains("id=\"finish\""));
        let (_, overview) = get(&w.browser, w.app.url("/mapping")).await;
        assert!(
            overview.contains(&format!("href=\"/integrations/{}/preview\">4</a>", w.id)),
            "{overview}"
        );

        // Finish applies, then shows the device sync it started.
        let to = w.post("/apply", &[]).await;
        let run_id: i64 = to
            .strip_prefix("/sync-runs/")
            .and_then(|r| r.strip_suffix("?notice=mapping_applied"))
            .unwrap_or_else(|| panic!("{to}"))
            .parse()
            .unwrap();
        let (status, page) = get(&w.browser, w.app.url(&to)).await;
        assert_eq!(status, 200);
        assert!(page.contains("Client mapping applied"), "{page}");
        let run = loop {
            let r = w.app.state.db.sync_run(run_id).await.unwrap().unwrap();
            if r.state != SyncRunState::Running {
                break r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(run.state, SyncRunState::Succeeded, "{:?}", run.error);
        let tenants: Vec<String> = w
            .app
            .state
            .db
            .list_tenants(&TenantScope::All)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert!(tenants.contains(&"Delta Farms".to_owned()), "{tenants:?}");
        let page = w.page("/clients").await;
        assert_eq!(by_id(&page, "pending-count"), "0 pending changes");
        assert!(row_html(&page, cedar_client).contains("applied</div>"));

        // A second Finish changes nothing and says so.
        let page = w.page("/preview").await;
        assert!(page.contains("Nothing to apply"), "{page}");
        let to = w.post("/apply", &[]).await;
        assert!(to.ends_with("notice=nothing"), "{to}");
        let page = w.page("/clients?view=all&notice=nothing").await;
        assert!(page.contains("Nothing changed"));
    }
);

both!(
    viewers_and_limited_users_change_nothing_and_forms_need_csrf,
    |app: TestApp| async move {
        let w = world(app).await;
        let acme = w.tenant("Acme Dental").await;
        w.post("/clients/refresh", &[]).await;
        let client = w.client_id("Acme Dental").await;

        // A form without the CSRF token is refused and changes nothing.
        let r = w
            .browser
            .post(w.url("/clients/auto-match"))
            .form(&[("view", "all")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("CSRF"));
        let r = w
            .browser
            .post(w.url("/apply"))
            .form(&[("csrf_token", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let page = w.page("/clients").await;
        assert_eq!(by_id(&page, "count-matched"), "0");

        // A viewer reads every page, sees no change buttons, and is refused every change.
        w.app.add_user("vera", Role::Viewer).await;
        let (viewer, vcsrf) = w.app.sign_in("vera", PASSWORD).await;
        let (status, page) = get(&viewer, w.url("/clients")).await;
        assert_eq!(status, 200);
        assert_eq!(rows_in(&page), 4);
        for button in [
            "id=\"refresh\"",
            "id=\"auto-match\"",
            "id=\"create-unmatched\"",
            "value=\"exclude\"",
            "class=\"small accept\"",
            "tenant-picker",
        ] {
            assert!(!page.contains(button), "{button} is hidden from viewers");
        }
        let (status, page) = get(&viewer, w.url("/preview")).await;
        assert_eq!(status, 200);
        assert!(!page.contains("id=\"finish\""));
        let (status, _) = get(&viewer, w.app.url("/mapping")).await;
        assert_eq!(status, 200);
        let acme_s = acme.to_string();
        let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
            ("/clients/refresh".into(), vec![]),
            ("/clients/auto-match".into(), vec![]),
            ("/clients/create-unmatched".into(), vec![]),
            (
                format!("/clients/{client}"),
                vec![("action", "match"), ("tenant_id", &acme_s)],
            ),
            (format!("/clients/{client}"), vec![("action", "exclude")]),
            ("/apply".into(), vec![]),
        ];
        for (path, fields) in &posts {
            let mut form = vec![("csrf_token", vcsrf.as_str())];
            form.extend_from_slice(fields);
            let r = viewer.post(w.url(path)).form(&form).send().await.unwrap();
            assert_eq!(r.status(), 403, "{path}");
            let body = r.text().await.unwrap();
            assert!(
                body.contains("Not allowed") && body.contains("current-user"),
                "{path}: {body}"
            );
        }

        // A technician limited to a tenant: only rows without a tenant or with theirs, no buttons,
        // and refused, since mapping changes act on every tenant.
        let other = w.tenant("Other Tenant").await;
        w.post(
            &format!("/clients/{client}"),
            &[("action", "match"), ("tenant_id", &other.to_string())],
        )
        .await;
        let tid = w.app.add_user("lim", Role::Technician).await;
        w.app.state.db.set_user_tenants(tid, &[acme]).await.unwrap();
        let (limited, lcsrf) = w.app.sign_in("lim", PASSWORD).await;
        let (status, page) = get(&limited, w.url("/clients")).await;
        assert_eq!(status, 200);
        assert_eq!(
            rows_in(&page),
            3,
            "the row pending for another tenant is hidden"
        );
        assert!(!page.contains("Other Tenant"));
        assert!(!page.contains("id=\"auto-match\""));
        let r = limited
            .post(w.url("/clients/auto-match"))
            .form(&[("csrf_token", lcsrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("limited to some tenants"));

        // Unknown integrations are the 404 page.
        let (status, page) = get(&w.browser, w.app.url("/integrations/999999/clients")).await;
        assert_eq!(status, 404);
        assert!(page.contains("Not found"));
        let (status, _) = get(&w.browser, w.app.url("/integrations/999999/preview")).await;
        assert_eq!(status, 404);
        assert_eq!(applied_links(&w).await, 0);
    }
);

/// Nothing was applied by any refused request: no link is applied yet.
async fn applied_links(w: &World) -> usize {
    w.app
        .state
        .db
        .list_client_links(w.id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.applied_at.is_some())
        .count()
}
