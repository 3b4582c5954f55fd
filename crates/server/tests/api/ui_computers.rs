//! The Tenants, Computers and ManualDecisions pages over real HTTP, with data from both simulators
//! and the real sync (the `read` module's world): rows, search, keyset paging through every page,
//! a computer reported by both RMMs with its why, decisions resolved through the forms, roles and
//! tenant limits.
use crate::both;
use crate::helpers::{PASSWORD, TestApp};
use crate::read::World;
use rmmbridge_core::Role;
use rmmbridge_store::{DecisionFilter, TenantScope};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

async fn get(browser: &reqwest::Client, url: String) -> (u16, String) {
    let r = browser.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The page's text as a person reads it (askama escapes `&`, `<`, `>`, `"`, `'`).
fn unescape(html: &str) -> String {
    html.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// Every value of `attr="..."` in the page, as numbers.
fn ids(html: &str, attr: &str) -> Vec<i64> {
    let marker = format!("{attr}=\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// The href of the element with `id`, unescaped.
fn href_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[..at].rfind("href=\"")? + "href=\"".len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

async fn api_json(w: &World, token: &str, path: &str) -> Value {
    w.app
        .api(token)
        .get(path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

both!(
    computers_pages_search_page_through_everything_and_explain_why,
    |app: TestApp| async move {
        let w = World::both_synced(app).await;
        let db = &w.app.state.db;
        w.app.add_user("ada", Role::Admin).await;
        let (browser, csrf) = w.app.sign_in("ada", PASSWORD).await;
        let (_, token) = w.app.user_with_token("reader", Role::Viewer).await;

        let active: BTreeSet<i64> = w
            .agent_computers()
            .await
            .values()
            .flatten()
            .copied()
            .collect();
        let total = db.count_computers(&TenantScope::All).await.unwrap();
        assert_eq!(total as usize, active.len());
        assert!(total > 50, "more than one page: {total}");

        // Every page, following "Next" (the API's opaque cursor), numbered, no row twice.
        let (s, first) = get(&browser, w.app.url("/computers")).await;
        assert_eq!(s, 200);
        assert!(
            first.contains(&format!("1–50 of {total}")),
            "{}",
            &first[..2000.min(first.len())]
        );
        assert!(!first.contains("id=\"first-page\""));
        let mut seen = Vec::new();
        let mut page = first.clone();
        let mut pages = 1;
        loop {
            let rows = ids(&page, "data-computer");
            assert!(!rows.is_empty() && rows.len() <= 50);
            seen.extend(rows);
            let Some(next) = href_of(&page, "next-page") else {
                break;
            };
            assert!(
                next.contains("cursor=") && !next.contains("offset"),
                "{next}"
            );
            let (s, p) = get(&browser, w.app.url(&next)).await;
            assert_eq!(s, 200);
            pages += 1;
            assert!(
                p.contains(&format!("{}–", seen.len() + 1)),
                "numbered from the row after"
            );
            assert_eq!(href_of(&p, "first-page").as_deref(), Some("/computers"));
            page = p;
        }
        assert_eq!(pages, (total as usize).div_ceil(50));
        assert_eq!(seen.len(), active.len(), "no row twice");
        assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), active);

        // A computer both RMMs report: both agents, their rules and the why sentence.
        let mut both_rmms = None;
        for c in &active {
            let agents = db.agents_of_computer(*c).await.unwrap();
            let integrations: BTreeSet<i64> =
                agents.iter().map(|a| a.agent.integration_id).collect();
            if integrations.len() == 2 {
                both_rmms = Some(*c);
                break;
            }
        }
        let c = both_rmms.expect("the shared fleet has machines in both RMMs");
        let detail = api_json(&w, &token, &format!("/api/v1/computers/{c}")).await;
        let (s, html) = get(&browser, w.app.url(&format!("/computers/{c}"))).await;
        assert_eq!(s, 200);
        let text = unescape(&html);
        assert!(text.contains(detail["why"].as_str().unwrap()), "{text}");
        assert!(
            detail["why"]
                .as_str()
                .unwrap()
                .contains("N-central and NinjaOne")
        );
        for a in detail["agents"].as_array().unwrap() {
            assert!(html.contains(&format!("data-agent=\"{}\"", a["id"])));
            assert!(text.contains(a["external_id"].as_str().unwrap()));
            if let Some(why) = a["identification"]["why"].as_str() {
                assert!(text.contains(why), "agent why {why}");
            }
        }
        assert!(html.contains("data-kind=\"ncentral\"") && html.contains("data-kind=\"ninjaone\""));
        assert!(html.contains("id=\"history\""));

        // Search by serial and by part of a name; the list says which RMMs report each row.
        let serial = detail["serial"].as_str().unwrap().to_owned();
        let (_, found) = get(&browser, w.app.url(&format!("/computers?q={serial}"))).await;
        assert!(ids(&found, "data-computer").contains(&c), "serial {serial}");
        assert!(found.contains("rmm-ncentral") && found.contains("rmm-ninjaone"));
        let name = detail["name"].as_str().unwrap().to_lowercase();
        let part = &name[..name.len().min(6)];
        let (_, found) = get(&browser, w.app.url(&format!("/computers?q={part}"))).await;
        let rows = ids(&found, "data-computer");
        assert!(rows.contains(&c), "name part {part}");
        let api_total = api_json(&w, &token, &format!("/api/v1/computers?q={part}")).await["total"]
            .as_i64()
            .unwrap();
        assert!(found.contains(&format!("of {api_total}")));
        let (_, none) = get(&browser, w.app.url("/computers?q=no-such-machine-zz")).await;
        assert!(none.contains("No computer matches") && ids(&none, "data-computer").is_empty());
        let (s, _) = get(&browser, w.app.url("/computers?cursor=garbage!")).await;
        assert_eq!(s, 400);

        // Tenant filter and the tenants pages.
        let tenant_id = detail["tenant_id"].as_i64().unwrap();
        let (_, filtered) = get(
            &browser,
            w.app.url(&format!("/computers?tenant={tenant_id}")),
        )
        .await;
        let in_tenant = ids(&filtered, "data-computer");
        assert!(in_tenant.contains(&c));
        for id in &in_tenant {
            let row = db
                .computer_by_id(*id, &TenantScope::All)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.tenant_id, tenant_id);
        }
        let (s, tenants) = get(&browser, w.app.url("/tenants")).await;
        assert_eq!(s, 200);
        let listed = ids(&tenants, "data-tenant");
        assert_eq!(
            listed.len(),
            db.list_tenants(&TenantScope::All).await.unwrap().len()
        );
        let count = db
            .count_computers_by_tenant(&TenantScope::All)
            .await
            .unwrap()
            .into_iter()
            .find(|(t, _)| *t == tenant_id)
            .unwrap()
            .1;
        assert!(tenants.contains(&format!(
            "<a href=\"/computers?tenant={tenant_id}\">{count}</a>"
        )));
        let (s, tenant) = get(&browser, w.app.url(&format!("/tenants/{tenant_id}"))).await;
        assert_eq!(s, 200);
        assert!(tenant.contains(&format!("({count} active)")));
        assert!(tenant.contains("id=\"tenant-clients\"") && tenant.contains("rmm-ninjaone"));
        assert!(ids(&tenant, "data-computer").contains(&c) || count > 25);

        // An admin adds a tenant; a duplicate name is refused with the form again.
        let r = browser
            .post(w.app.url("/tenants"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("name", "  Wayne Enterprises "),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        let (_, after) = get(&browser, w.app.url(&to)).await;
        assert!(
            after.contains("Tenant &#34;Wayne Enterprises&#34; created")
                || unescape(&after).contains("Tenant \"Wayne Enterprises\" created")
        );
        assert!(after.contains(">Wayne Enterprises</a>"));
        let r = browser
            .post(w.app.url("/tenants"))
            .form(&[("csrf_token", csrf.as_str()), ("name", "Wayne Enterprises")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        assert!(unescape(&r.text().await.unwrap()).contains("already exists"));
    }
);

both!(
    decisions_are_resolved_through_the_forms_by_technicians_only,
    |app: TestApp| async move {
        let w = crate::read::world(app).await;
        w.map_and_sync(w.nj_id).await;
        let db = &w.app.state.db;
        let (originals, _) = w.copy_two_ninja_devices().await;
        w.sync(w.nj_id).await;
        let open = db.open_decisions(&TenantScope::All, 1000).await.unwrap();
        let d0 = open
            .iter()
            .find(|d| d.candidate_computer_id == originals[0].computer_id)
            .unwrap()
            .clone();
        let d1 = open
            .iter()
            .find(|d| d.candidate_computer_id == originals[1].computer_id)
            .unwrap()
            .clone();
        let c0 = originals[0].computer_id.unwrap();
        w.app.add_user("vic", Role::Viewer).await;
        w.app.add_user("tom", Role::Technician).await;
        w.app.add_user("tess", Role::Technician).await;

        // The viewer reads the queue (agent, reason, candidates) without buttons, and may not post.
        let (viewer, vcsrf) = w.app.sign_in("vic", PASSWORD).await;
        let (s, page) = get(&viewer, w.app.url("/decisions")).await;
        assert_eq!(s, 200);
        let listed = ids(&page, "data-decision");
        assert_eq!(listed.len(), open.len());
        assert!(listed.contains(&d0.id) && listed.contains(&d1.id));
        assert!(unescape(&page).contains(&d0.reason));
        assert!(page.contains(&format!("data-candidate=\"{c0}\"")));
        assert!(page.contains(&originals[0].hostname));
        assert!(!page.contains("Merge into") && !page.contains("keep-separate"));
        let resolve0 = w.app.url(&format!("/decisions/{}/resolve", d0.id));
        let c0s = c0.to_string();
        let r = viewer
            .post(&resolve0)
            .form(&[
                ("csrf_token", vcsrf.as_str()),
                ("action", "merge"),
                ("computer_id", &c0s),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("Not allowed"));
        assert!(
            db.decision_by_id(d0.id, &TenantScope::All)
                .await
                .unwrap()
                .unwrap()
                .resolved_at
                .is_none()
        );

        // A technician merges one into its candidate: back to the queue with what happened.
        let (tom, tcsrf) = w.app.sign_in("tom", PASSWORD).await;
        let (_, page) = get(&tom, w.app.url("/decisions")).await;
        assert!(page.contains("Merge into") && page.contains("keep-separate"));
        let r = tom
            .post(&resolve0)
            .form(&[
                ("csrf_token", tcsrf.as_str()),
                ("action", "merge"),
                ("computer_id", &c0s),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(to, format!("/decisions?resolved={}", d0.id));
        let (_, page) = get(&tom, w.app.url(&to)).await;
        let text = unescape(&page);
        assert!(
            text.contains(&format!(
                "ManualDecision {} resolved by tom: agent {} merged into computer",
                d0.id, d0.agent_hostname
            )),
            "{text}"
        );
        assert!(
            !ids(&page, "data-decision").contains(&d0.id),
            "no longer open"
        );
        let agent = db.agent_by_id(d0.agent_id).await.unwrap().unwrap();
        assert_eq!(agent.computer_id, Some(c0));

        // Someone else, a moment later: the decision is not changed, and the page says who did it.
        let (tess, scsrf) = w.app.sign_in("tess", PASSWORD).await;
        let r = tess
            .post(&resolve0)
            .form(&[("csrf_token", scsrf.as_str()), ("action", "keep_separate")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        let text = unescape(&r.text().await.unwrap());
        assert!(text.contains("already resolved (merge) by tom"), "{text}");
        assert!(text.contains("role=\"alert\""));

        // Keep separate: a computer of its own. A bad choice is refused with a reason.
        let resolve1 = w.app.url(&format!("/decisions/{}/resolve", d1.id));
        let r = tess
            .post(&resolve1)
            .form(&[
                ("csrf_token", scsrf.as_str()),
                ("action", "merge"),
                ("computer_id", "999999"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert!(unescape(&r.text().await.unwrap()).contains("is not a candidate"));
        let r = tess
            .post(&resolve1)
            .form(&[("csrf_token", scsrf.as_str()), ("action", "keep_separate")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let (_, page) = get(&tess, w.app.url(&format!("/decisions?resolved={}", d1.id))).await;
        assert!(
            unescape(&page).contains("resolved by tess: agent"),
            "kept separate"
        );
        let own = db
            .agent_by_id(d1.agent_id)
            .await
            .unwrap()
            .unwrap()
            .computer_id
            .unwrap();
        assert_ne!(Some(own), originals[1].computer_id);

        // The resolved view lists both, with who decided.
        let (_, page) = get(&viewer, w.app.url("/decisions?view=resolved")).await;
        let resolved = ids(&page, "data-decision");
        assert!(resolved.contains(&d0.id) && resolved.contains(&d1.id));
        assert!(page.contains("by tom") && page.contains("by tess"));
        assert_eq!(
            db.list_decisions(&TenantScope::All, DecisionFilter::Resolved, 100)
                .await
                .unwrap()
                .len(),
            resolved.len()
        );
    }
);

both!(
    a_tenant_limited_user_sees_only_its_tenants_pages,
    |app: TestApp| async move {
        let w = World::both_synced(app).await;
        let db = &w.app.state.db;
        let tenants = db.list_tenants(&TenantScope::All).await.unwrap();
        let mine = tenants[0].id;
        let uid = w.app.add_user("lim", Role::Technician).await;
        db.set_user_tenants(uid, &[mine]).await.unwrap();
        let mut by_tenant: HashMap<i64, BTreeSet<i64>> = HashMap::new();
        for c in w.agent_computers().await.values().flatten() {
            let row = db
                .computer_by_id(*c, &TenantScope::All)
                .await
                .unwrap()
                .unwrap();
            by_tenant.entry(row.tenant_id).or_default().insert(*c);
        }
        let (browser, _) = w.app.sign_in("lim", PASSWORD).await;

        let (_, page) = get(&browser, w.app.url("/computers")).await;
        let shown: BTreeSet<i64> = ids(&page, "data-computer").into_iter().collect();
        assert_eq!(shown, by_tenant[&mine]);
        let (_, page) = get(&browser, w.app.url("/tenants")).await;
        assert_eq!(ids(&page, "data-tenant"), vec![mine]);

        let other = *by_tenant.keys().find(|t| **t != mine).unwrap();
        let theirs = *by_tenant[&other].iter().next().unwrap();
        let (_, page) = get(&browser, w.app.url(&format!("/computers?tenant={other}"))).await;
        assert!(ids(&page, "data-computer").is_empty());
        for path in [format!("/computers/{theirs}"), format!("/tenants/{other}")] {
            let (s, page) = get(&browser, w.app.url(&path)).await;
            assert_eq!(s, 404, "{path}");
            assert!(
                page.contains("Not found") && page.contains("id=\"current-user\">lim"),
                "{path}"
            );
        }
        let own = *by_tenant[&mine].iter().next().unwrap();
        let (s, _) = get(&browser, w.app.url(&format!("/computers/{own}"))).await;
        assert_eq!(s, 200);
        let (s, _) = get(&browser, w.app.url(&format!("/tenants/{mine}"))).await;
        assert_eq!(s, 200);
        let (s, page) = get(&browser, w.app.url("/decisions")).await;
        assert_eq!(s, 200);
        for id in ids(&page, "data-decision") {
            let d = db
                .decision_by_id(id, &TenantScope::All)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(d.tenant_id, Some(mine));
        }
    }
);
