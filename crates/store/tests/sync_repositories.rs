//! The repositories of migration 0003 (client links, agents, computers, manual decisions, sync
//! runs). Every test runs on SQLite and on PostgreSQL, each in a fresh database.
use rmmbridge_core::rmm::{RmmClient, RmmClientKind};
use rmmbridge_core::{IntegrationKind, Timestamp};
use rmmbridge_store::testing::TestDb;
use rmmbridge_store::*;
use serde_json::json;
use std::collections::HashSet;

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

fn at(ms: i64) -> Timestamp {
    Timestamp(T0.0 + ms)
}

async fn integration(db: &Db, name: &str) -> i64 {
    db.create_integration(&NewIntegration {
        kind: IntegrationKind::Ncentral,
        name: name.into(),
        settings: json!({"server": "https://ncentral.example"}),
        options: json!({"device_sync": true}),
        now: T0,
    })
    .await
    .unwrap()
    .id
}

fn company(ext: &str, name: &str) -> RmmClient {
    RmmClient {
        external_id: ext.into(),
        kind: RmmClientKind::Company,
        parent_external_id: None,
        name: name.into(),
    }
}

fn site(ext: &str, parent: &str, name: &str) -> RmmClient {
    RmmClient {
        external_id: ext.into(),
        kind: RmmClientKind::Site,
        parent_external_id: Some(parent.into()),
        name: name.into(),
    }
}

fn change(state: ClientLinkState, tenant_id: Option<i64>) -> ClientLinkChange {
    ClientLinkChange {
        state,
        tenant_id,
        provenance: Provenance::Manual,
        decided_by: Some("alice".into()),
        reason: Some(format!("set to {state} in a test")),
    }
}

/// The RmmClient ids of an integration, by external id.
async fn client_ids(db: &Db, integration_id: i64) -> std::collections::HashMap<String, i64> {
    db.list_client_links(integration_id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.external_id, l.id))
        .collect()
}

fn agent(ext: &str, client: Option<&str>, hostname: &str) -> AgentWrite {
    AgentWrite {
        external_id: ext.into(),
        rmm_client_external_id: client.map(str::to_owned),
        hostname: hostname.into(),
        serial: Some(format!("SN-{ext}")),
        smbios_uuid: Some(format!("4C4C4544-0000-0000-0000-{ext:0>12}")),
        macs: vec!["00:1A:2B:3C:4D:5E".into(), "00:1A:2B:3C:4D:5F".into()],
        os: Some("Windows 11 Pro".into()),
        device_class: Some("workstation".into()),
        last_contact_at: Some(T0),
        fingerprint: format!("fp-{ext}-{hostname}"),
    }
}

/// Upserts agents and returns their ids in input order.
async fn agents(db: &Db, integration_id: i64, writes: &[AgentWrite]) -> Vec<i64> {
    db.upsert_agents(integration_id, writes, T0)
        .await
        .unwrap()
        .ids
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

fn computer(tenant_id: i64, name: &str, serial: Option<&str>) -> NewComputer {
    NewComputer {
        tenant_id,
        name: name.into(),
        serial: serial.map(str::to_owned),
        smbios_uuid: None,
        os: Some("Windows 11 Pro".into()),
        last_contact_at: Some(T0),
    }
}

fn link(agent_id: i64, computer_id: i64, rule: &str) -> AgentLink {
    AgentLink {
        agent_id,
        computer_id,
        rule: rule.into(),
        evidence: serde_json::value::to_raw_value(
            &json!({"rule": rule, "compared": ["SN-1", "SN-1"]}),
        )
        .unwrap(),
        decided_by: "sync".into(),
        clone_of: None,
    }
}

fn decision(agent_id: i64, candidate: Option<i64>, kind: &str) -> NewDecision {
    NewDecision {
        agent_id,
        candidate_computer_id: candidate,
        kind: kind.into(),
        reason: format!("{kind}: hostname equal, hardware ids differ"),
        evidence: json!({"hostname": "WS-01", "score": 0.5}),
    }
}

fn resolve_audit(by: &str, computer_id: i64, t: Timestamp) -> NewAuditEntry {
    NewAuditEntry {
        at: t,
        actor_user_id: None,
        actor: by.into(),
        action: "decision.resolve".into(),
        target_kind: None,
        target_id: None,
        details: json!({ "computer_id": computer_id }),
        ip: None,
    }
}

fn update_of(r: &ComputerRow) -> ComputerUpdate {
    ComputerUpdate {
        id: r.id,
        tenant_id: r.tenant_id,
        name: r.name.clone(),
        serial: r.serial.clone(),
        smbios_uuid: r.smbios_uuid.clone(),
        os: r.os.clone(),
        last_contact_at: r.last_contact_at,
    }
}

async fn computer_row(db: &Db, id: i64) -> ComputerRow {
    db.computer_by_id(id, &TenantScope::All)
        .await
        .unwrap()
        .expect("the computer exists")
}

fn names(page: &Page<ComputerRow>) -> Vec<&str> {
    page.items.iter().map(|c| c.name.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// RmmClients and ClientLinks
// ---------------------------------------------------------------------------------------------

both!(
    refresh_follows_clients_by_external_id,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        let first = db
            .refresh_rmm_clients(
                i,
                &[
                    company("100", "Acme"),
                    company("200", "Bravo"),
                    site("101", "100", "Acme HQ"),
                    // A repeated external id is one client.
                    company("200", "Bravo"),
                ],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(first.added, ["100", "200", "101"]);
        assert_eq!(first.changes(), 3);
        let links = db.list_client_links(i).await.unwrap();
        assert_eq!(
            links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["Acme", "Acme HQ", "Bravo"],
            "listed by name"
        );
        for l in &links {
            assert_eq!(l.state, ClientLinkState::Unmatched, "{}", l.name);
            assert_eq!((l.tenant_id, l.applied_state), (None, None));
            assert_eq!((l.first_seen_at, l.vanished_at), (T0, None));
            assert!(!l.is_pending(), "a new client has nothing to apply");
        }
        let hq = &links[1];
        assert_eq!(
            (hq.kind, hq.parent_external_id.as_deref()),
            (RmmClientKind::Site, Some("100"))
        );
        let ids = client_ids(&db, i).await;

        // Nothing new from the RMM: nothing written, nothing reported.
        let same = db
            .refresh_rmm_clients(
                i,
                &[
                    company("100", "Acme"),
                    company("200", "Bravo"),
                    site("101", "100", "Acme HQ"),
                ],
                at(1),
            )
            .await
            .unwrap();
        assert_eq!(same.changes(), 0, "{same:?}");
        assert_eq!(same.unchanged, 3);

        // The admin excluded Acme; the RMM then renames it, moves the site and drops Bravo.
        db.set_client_link(ids["100"], &change(ClientLinkState::Excluded, None), at(2))
            .await
            .unwrap();
        let second = db
            .refresh_rmm_clients(
                i,
                &[
                    company("100", "Acme Corporation"),
                    company("300", "Charlie"),
                    site("101", "300", "Acme HQ"),
                ],
                at(3),
            )
            .await
            .unwrap();
        assert_eq!(
            second.renamed,
            [ClientRename {
                external_id: "100".into(),
                old_name: "Acme".into(),
                new_name: "Acme Corporation".into(),
            }]
        );
        assert_eq!(second.added, ["300"]);
        assert_eq!(second.reshaped, ["101"]);
        assert_eq!(second.vanished, ["200"]);
        assert!(second.returned.is_empty());
        assert_eq!(second.unchanged, 0);
        let acme = db.client_link(ids["100"]).await.unwrap().unwrap();
        assert_eq!(acme.name, "Acme Corporation", "same row, new name");
        assert_eq!(
            acme.state,
            ClientLinkState::Excluded,
            "a rename keeps the admin's decision"
        );
        assert_eq!(acme.first_seen_at, T0);
        let bravo = db.client_link(ids["200"]).await.unwrap().unwrap();
        assert_eq!(bravo.vanished_at, Some(at(3)), "vanished clients are kept");
        assert_eq!(
            db.client_link(ids["101"])
                .await
                .unwrap()
                .unwrap()
                .parent_external_id
                .as_deref(),
            Some("300")
        );
        assert_eq!(db.list_client_links(i).await.unwrap().len(), 4);

        // Still missing: not reported again.
        let third = db
            .refresh_rmm_clients(
                i,
                &[
                    company("100", "Acme Corporation"),
                    company("300", "Charlie"),
                    site("101", "300", "Acme HQ"),
                ],
                at(4),
            )
            .await
            .unwrap();
        assert_eq!(third.changes(), 0, "{third:?}");
        assert_eq!(
            db.client_link(ids["200"])
                .await
                .unwrap()
                .unwrap()
                .vanished_at,
            Some(at(3)),
            "the time it vanished is kept"
        );

        // Bravo comes back under its old id.
        let back = db
            .refresh_rmm_clients(
                i,
                &[
                    company("100", "Acme Corporation"),
                    company("200", "Bravo"),
                    company("300", "Charlie"),
                    site("101", "300", "Acme HQ"),
                ],
                at(5),
            )
            .await
            .unwrap();
        assert_eq!(back.returned, ["200"]);
        assert_eq!(back.changes(), 1, "{back:?}");
        let bravo = db.client_link(ids["200"]).await.unwrap().unwrap();
        assert_eq!((bravo.id, bravo.vanished_at), (ids["200"], None));

        // Another integration's clients with the same external ids are other clients.
        let j = integration(&db, "NinjaOne").await;
        let other = db
            .refresh_rmm_clients(j, &[company("100", "Acme")], at(6))
            .await
            .unwrap();
        assert_eq!(other.added, ["100"]);
        assert_ne!(client_ids(&db, j).await["100"], ids["100"]);
        assert_eq!(db.list_client_links(i).await.unwrap().len(), 4);
        assert!(db.client_link(424242).await.unwrap().is_none());
    }
);

both!(client_links_need_a_tenant_to_match, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    db.refresh_rmm_clients(i, &[company("1", "Acme"), company("2", "Bravo")], T0)
        .await
        .unwrap();
    let ids = client_ids(&db, i).await;
    let acme = db.create_tenant("Acme Inc", T0).await.unwrap();

    let err = db
        .set_client_link(ids["1"], &change(ClientLinkState::Matched, None), at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("tenant"), "{err}");

    // All or none: a bad change later in the batch leaves the earlier ones unwritten.
    let err = db
        .set_client_links(
            &[
                (ids["1"], change(ClientLinkState::Excluded, None)),
                (ids["2"], change(ClientLinkState::Matched, Some(424242))),
            ],
            at(1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "tenant" }),
        "{err}"
    );
    let err = db
        .set_client_links(
            &[
                (ids["1"], change(ClientLinkState::Excluded, None)),
                (424242, change(ClientLinkState::Excluded, None)),
            ],
            at(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    for l in db.list_client_links(i).await.unwrap() {
        assert_eq!(
            (l.state, l.decided_at),
            (ClientLinkState::Unmatched, None),
            "{}",
            l.name
        );
    }

    let written = db
        .set_client_links(
            &[
                (ids["1"], change(ClientLinkState::Matched, Some(acme.id))),
                // A tenant given with another state is not stored.
                (ids["2"], change(ClientLinkState::Excluded, Some(acme.id))),
            ],
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(written, 2);
    let l1 = db.client_link(ids["1"]).await.unwrap().unwrap();
    assert_eq!(l1.state, ClientLinkState::Matched);
    assert_eq!(
        (l1.tenant_id, l1.tenant_name.as_deref()),
        (Some(acme.id), Some("Acme Inc"))
    );
    assert_eq!(l1.provenance, Some(Provenance::Manual));
    assert_eq!(l1.decided_by.as_deref(), Some("alice"));
    assert_eq!(l1.decided_at, Some(at(2)));
    assert_eq!(l1.reason.as_deref(), Some("set to matched in a test"));
    assert!(l1.is_pending(), "not applied until Finish");
    assert_eq!((l1.applied_state, l1.applied_at), (None, None));
    let l2 = db.client_link(ids["2"]).await.unwrap().unwrap();
    assert_eq!((l2.state, l2.tenant_id), (ClientLinkState::Excluded, None));
    assert!(
        db.mapped_clients(i).await.unwrap().is_empty(),
        "pending links are not mapped"
    );
});

both!(apply_client_links_is_idempotent, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    db.refresh_rmm_clients(
        i,
        &[
            company("a", "Acme"),
            company("b", "Bravo"),
            company("c", "Charlie"),
            company("d", "Delta"),
            company("e", "Echo"),
            company("f1", "Foxtrot"),
            site("f2", "f1", "Foxtrot"),
        ],
        T0,
    )
    .await
    .unwrap();
    let ids = client_ids(&db, i).await;
    let acme = db.create_tenant("Acme Inc", T0).await.unwrap();
    let charlie = db.create_tenant("Charlie", T0).await.unwrap();
    db.set_client_links(
        &[
            (ids["a"], change(ClientLinkState::Matched, Some(acme.id))),
            (ids["b"], change(ClientLinkState::Create, None)),
            (ids["c"], change(ClientLinkState::Create, None)),
            (ids["d"], change(ClientLinkState::Excluded, None)),
            (ids["f1"], change(ClientLinkState::Create, None)),
            (ids["f2"], change(ClientLinkState::Create, None)),
        ],
        at(1),
    )
    .await
    .unwrap();
    let pending: Vec<_> = db
        .list_client_links(i)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.is_pending())
        .map(|l| l.external_id)
        .collect();
    assert_eq!(pending.len(), 6, "everything but Echo: {pending:?}");

    let applied = db.apply_client_links(i, "admin", at(2)).await.unwrap();
    let tenants = db.list_tenants(&TenantScope::All).await.unwrap();
    assert_eq!(
        tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["Acme Inc", "Bravo", "Charlie", "Foxtrot"],
        "one tenant per new name, the existing Charlie reused"
    );
    let tenant = |name: &str| tenants.iter().find(|t| t.name == name).unwrap().id;
    let created: Vec<_> = applied
        .created_tenants
        .iter()
        .map(|c| {
            (
                c.rmm_client_id,
                c.tenant_name.as_str(),
                c.tenant_id,
                c.reused,
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            (ids["b"], "Bravo", tenant("Bravo"), false),
            (ids["c"], "Charlie", charlie.id, true),
            (ids["f1"], "Foxtrot", tenant("Foxtrot"), false),
            (ids["f2"], "Foxtrot", tenant("Foxtrot"), true),
        ]
    );
    assert_eq!(
        (
            applied.matched,
            applied.excluded,
            applied.unmatched,
            applied.unchanged
        ),
        (5, 1, 0, 1)
    );
    let mut newly = applied.newly_mapped_client_ids.clone();
    newly.sort_unstable();
    let mut expected = vec![ids["a"], ids["b"], ids["c"], ids["f1"], ids["f2"]];
    expected.sort_unstable();
    assert_eq!(newly, expected, "Delta was excluded, Echo left alone");
    let to_bravo = applied
        .changes
        .iter()
        .find(|c| c.rmm_client_id == ids["b"])
        .unwrap();
    assert_eq!(
        (
            to_bravo.external_id.as_str(),
            to_bravo.name.as_str(),
            to_bravo.from_state,
            to_bravo.from_tenant_id,
            to_bravo.to_state,
            to_bravo.to_tenant_id,
        ),
        (
            "b",
            "Bravo",
            ClientLinkState::Unmatched,
            None,
            ClientLinkState::Matched,
            Some(tenant("Bravo"))
        )
    );
    assert_eq!(applied.changes.len(), 6);

    let links = db.list_client_links(i).await.unwrap();
    for l in &links {
        assert!(!l.is_pending(), "{} is applied", l.name);
    }
    let b = links.iter().find(|l| l.external_id == "b").unwrap();
    assert_eq!(b.state, ClientLinkState::Matched, "create became matched");
    assert_eq!(b.tenant_name.as_deref(), Some("Bravo"));
    assert_eq!(b.applied_state, Some(ClientLinkState::Matched));
    assert_eq!(b.applied_tenant_name.as_deref(), Some("Bravo"));
    assert_eq!(
        (b.applied_at, b.applied_by.as_deref()),
        (Some(at(2)), Some("admin"))
    );
    let e = links.iter().find(|l| l.external_id == "e").unwrap();
    assert_eq!(
        (e.applied_state, e.applied_at),
        (None, None),
        "Echo untouched"
    );

    let mapped = db.mapped_clients(i).await.unwrap();
    assert_eq!(
        mapped
            .iter()
            .map(|m| (m.external_id.as_str(), m.rmm_client_id, m.tenant_id))
            .collect::<Vec<_>>(),
        [
            ("a", ids["a"], acme.id),
            ("b", ids["b"], tenant("Bravo")),
            ("c", ids["c"], charlie.id),
            ("f1", ids["f1"], tenant("Foxtrot")),
            ("f2", ids["f2"], tenant("Foxtrot")),
        ]
    );

    // Finish again with no edits: nothing to do.
    let again = db.apply_client_links(i, "admin", at(3)).await.unwrap();
    assert!(again.changes.is_empty(), "{again:?}");
    assert!(again.created_tenants.is_empty());
    assert!(again.newly_mapped_client_ids.is_empty());
    assert_eq!(
        (
            again.matched,
            again.excluded,
            again.unmatched,
            again.unchanged
        ),
        (0, 0, 0, 7)
    );
    assert_eq!(db.list_tenants(&TenantScope::All).await.unwrap().len(), 4);
    assert_eq!(
        db.client_link(ids["b"]).await.unwrap().unwrap().applied_at,
        Some(at(2)),
        "unchanged links are not rewritten"
    );

    // Revisit: Acme moves to Charlie's tenant, Charlie goes back to unmatched, Delta is brought
    // back from the excluded view. Pending edits are not mapped before Finish.
    db.set_client_links(
        &[
            (ids["a"], change(ClientLinkState::Matched, Some(charlie.id))),
            (ids["c"], change(ClientLinkState::Unmatched, None)),
            (ids["d"], change(ClientLinkState::Unmatched, None)),
        ],
        at(4),
    )
    .await
    .unwrap();
    assert_eq!(db.mapped_clients(i).await.unwrap(), mapped);
    let revisit = db.apply_client_links(i, "bob", at(5)).await.unwrap();
    assert_eq!(
        (revisit.matched, revisit.excluded, revisit.unmatched),
        (1, 0, 2)
    );
    assert_eq!(
        revisit.newly_mapped_client_ids,
        [ids["a"]],
        "a client mapped to another tenant imports again"
    );
    let moved = revisit
        .changes
        .iter()
        .find(|c| c.rmm_client_id == ids["a"])
        .unwrap();
    assert_eq!(
        (moved.from_tenant_id, moved.to_tenant_id),
        (Some(acme.id), Some(charlie.id))
    );
    let unmapped = revisit
        .changes
        .iter()
        .find(|c| c.rmm_client_id == ids["c"])
        .unwrap();
    assert_eq!(
        (
            unmapped.from_state,
            unmapped.to_state,
            unmapped.to_tenant_id
        ),
        (ClientLinkState::Matched, ClientLinkState::Unmatched, None)
    );
    assert_eq!(
        db.mapped_clients(i)
            .await
            .unwrap()
            .iter()
            .map(|m| (m.external_id.as_str(), m.tenant_id))
            .collect::<Vec<_>>(),
        [
            ("a", charlie.id),
            ("b", tenant("Bravo")),
            ("f1", tenant("Foxtrot")),
            ("f2", tenant("Foxtrot")),
        ]
    );
    let c = db.client_link(ids["c"]).await.unwrap().unwrap();
    assert_eq!(
        (
            c.applied_state,
            c.applied_tenant_id,
            c.applied_by.as_deref()
        ),
        (Some(ClientLinkState::Unmatched), None, Some("bob"))
    );
    // Finish applies one integration only.
    let j = integration(&db, "NinjaOne").await;
    assert_eq!(
        db.apply_client_links(j, "admin", at(6))
            .await
            .unwrap()
            .unchanged,
        0
    );
});

/// Makes the database refuse audit entries with action `refuse.me`, to prove rollbacks.
async fn refuse_audit_action(db: &Db) {
    match db.backend() {
        Backend::Sqlite => {
            db.execute_raw_for_tests(
                "CREATE TRIGGER test_refuse BEFORE INSERT ON audit_log WHEN NEW.action = 'refuse.me'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            )
            .await
            .unwrap();
        }
        Backend::Postgres => {
            db.execute_raw_for_tests(
                "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN IF NEW.action = 'refuse.me' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                 RETURN NEW; END; $$",
            )
            .await
            .unwrap();
            db.execute_raw_for_tests(
                "CREATE TRIGGER test_refuse BEFORE INSERT ON audit_log
                 FOR EACH ROW EXECUTE FUNCTION test_refuse()",
            )
            .await
            .unwrap();
        }
    }
}

fn audit_of(links: &AppliedLinks, action: &str) -> Vec<NewAuditEntry> {
    links
        .changes
        .iter()
        .map(|c| NewAuditEntry {
            at: T0,
            actor_user_id: None,
            actor: "admin".into(),
            action: action.into(),
            target_kind: Some("rmm_client".into()),
            target_id: Some(c.rmm_client_id.to_string()),
            details: json!({"from": c.from_state.as_str(), "to": c.to_state.as_str()}),
            ip: None,
        })
        .collect()
}

both!(
    audited_apply_stores_links_and_audit_together,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        db.refresh_rmm_clients(i, &[company("a", "Acme"), company("b", "Bravo")], T0)
            .await
            .unwrap();
        let ids = client_ids(&db, i).await;
        db.set_client_links(
            &[
                (ids["a"], change(ClientLinkState::Create, None)),
                (ids["b"], change(ClientLinkState::Excluded, None)),
            ],
            at(1),
        )
        .await
        .unwrap();
        let all_audit = || AuditQuery {
            before_id: None,
            limit: 500,
            action: None,
        };

        // The audit entry cannot be stored: the links and the new tenant are not stored either.
        refuse_audit_action(&db).await;
        let err = db
            .apply_client_links_audited(i, "admin", at(2), |l| audit_of(l, "refuse.me"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err}");
        assert!(
            db.list_tenants(&TenantScope::All).await.unwrap().is_empty(),
            "the tenant Acme was not created"
        );
        for l in db.list_client_links(i).await.unwrap() {
            assert!(l.is_pending(), "{} is still pending", l.name);
            assert_eq!(l.applied_state, None);
        }
        let a = db.client_link(ids["a"]).await.unwrap().unwrap();
        assert_eq!(a.state, ClientLinkState::Create, "still to be created");
        assert!(db.list_audit(&all_audit()).await.unwrap().is_empty());

        let applied = db
            .apply_client_links_audited(i, "admin", at(3), |l| audit_of(l, "client_link.apply"))
            .await
            .unwrap();
        assert_eq!(applied.changes.len(), 2);
        let audit = db.list_audit(&all_audit()).await.unwrap();
        assert_eq!(audit.len(), 2);
        let mut targets: Vec<_> = audit
            .iter()
            .map(|e| {
                (
                    e.action.as_str(),
                    e.target_id.clone().unwrap(),
                    e.details["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        targets.sort();
        let mut expected = vec![
            (
                "client_link.apply",
                ids["a"].to_string(),
                "matched".to_owned(),
            ),
            (
                "client_link.apply",
                ids["b"].to_string(),
                "excluded".to_owned(),
            ),
        ];
        expected.sort();
        assert_eq!(targets, expected);
        assert_eq!(db.mapped_clients(i).await.unwrap().len(), 1);

        // A second Finish has nothing to audit.
        let again = db
            .apply_client_links_audited(i, "admin", at(4), |l| audit_of(l, "client_link.apply"))
            .await
            .unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(db.list_audit(&all_audit()).await.unwrap().len(), 2);
    }
);

// ---------------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------------

both!(
    upsert_agents_writes_only_what_changed,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        db.refresh_rmm_clients(i, &[company("c1", "Acme"), company("c2", "Bravo")], T0)
            .await
            .unwrap();
        let clients = client_ids(&db, i).await;
        let mut writes = vec![
            agent("1", Some("c1"), "WS-01"),
            agent("2", Some("c2"), "WS-02"),
            agent("3", Some("no-such-client"), "WS-03"),
            agent("4", None, "WS-04"),
        ];
        let first = db.upsert_agents(i, &writes, T0).await.unwrap();
        assert_eq!((first.inserted, first.updated, first.unchanged), (4, 0, 0));
        assert_eq!(
            first
                .ids
                .iter()
                .map(|(e, _)| e.as_str())
                .collect::<Vec<_>>(),
            ["1", "2", "3", "4"],
            "ids come in input order"
        );
        let snap = db.agent_snapshot(i).await.unwrap();
        assert_eq!(snap.len(), 4);
        let a1 = &snap[0];
        assert_eq!(a1.id, first.ids[0].1);
        assert_eq!(
            (a1.rmm_client_id, a1.rmm_client_external_id.as_deref()),
            (Some(clients["c1"]), Some("c1")),
            "the client's external id resolves to its row"
        );
        assert_eq!(
            (
                a1.state,
                a1.computer_id,
                a1.missing_since,
                a1.clone_of.as_deref()
            ),
            (AgentState::Active, None, None, None),
            "new agents start active and unlinked"
        );
        assert_eq!(a1.macs, writes[0].macs);
        assert_eq!(
            (
                a1.hostname.as_str(),
                a1.serial.as_deref(),
                a1.os.as_deref(),
                a1.device_class.as_deref()
            ),
            (
                "WS-01",
                Some("SN-1"),
                Some("Windows 11 Pro"),
                Some("workstation")
            )
        );
        assert_eq!(
            (a1.first_seen_at, a1.updated_at, a1.last_contact_at),
            (T0, T0, Some(T0))
        );
        assert_eq!(snap[2].rmm_client_id, None, "an unknown client stores none");
        assert_eq!(snap[3].rmm_client_id, None);
        assert_eq!(db.agent_by_id(a1.id).await.unwrap().as_ref(), Some(a1));
        assert!(db.agent_by_id(424242).await.unwrap().is_none());

        // The same facts again: no row is written.
        let same = db.upsert_agents(i, &writes, at(10)).await.unwrap();
        assert_eq!((same.inserted, same.updated, same.unchanged), (0, 0, 4));
        assert_eq!(same.rows_written(), 0);
        assert_eq!(same.ids, first.ids);
        assert!(
            db.agent_snapshot(i)
                .await
                .unwrap()
                .iter()
                .all(|a| a.updated_at == T0),
            "updated_at shows nothing was rewritten"
        );

        // Renamed, moved to another client, a new last contact; plus one new agent.
        writes[0].hostname = "WS-01-NEW".into();
        writes[1].rmm_client_external_id = Some("c1".into());
        writes[2].last_contact_at = Some(at(20));
        writes.push(agent("5", Some("c2"), "WS-05"));
        let third = db.upsert_agents(i, &writes, at(20)).await.unwrap();
        assert_eq!((third.inserted, third.updated, third.unchanged), (1, 3, 1));
        assert_eq!(third.rows_written(), 4);
        let snap = db.agent_snapshot(i).await.unwrap();
        assert_eq!(snap[0].hostname, "WS-01-NEW");
        assert_eq!(
            (snap[0].first_seen_at, snap[0].updated_at),
            (T0, at(20)),
            "first seen is kept"
        );
        assert_eq!(snap[1].rmm_client_id, Some(clients["c1"]));
        assert_eq!(snap[2].last_contact_at, Some(at(20)));
        assert_eq!(snap[3].updated_at, T0, "the unchanged agent is not written");
        assert_eq!(snap[4].first_seen_at, at(20));

        // A repeated external id in one batch: the last one wins.
        let dup = db
            .upsert_agents(
                i,
                &[
                    agent("6", None, "first"),
                    agent("7", None, "WS-07"),
                    agent("6", None, "second"),
                ],
                at(30),
            )
            .await
            .unwrap();
        assert_eq!((dup.inserted, dup.updated, dup.unchanged), (2, 0, 0));
        assert_eq!(
            dup.ids.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
            ["6", "7"]
        );
        assert_eq!(
            db.agent_by_id(dup.ids[0].1)
                .await
                .unwrap()
                .unwrap()
                .hostname,
            "second"
        );

        // The same external id in another integration is another agent.
        let j = integration(&db, "NinjaOne").await;
        let other = db
            .upsert_agents(j, &[agent("1", Some("c1"), "WS-01")], at(40))
            .await
            .unwrap();
        assert_eq!(other.inserted, 1);
        assert_ne!(other.ids[0].1, first.ids[0].1);
        assert_eq!(
            db.agent_by_id(other.ids[0].1)
                .await
                .unwrap()
                .unwrap()
                .rmm_client_id,
            None,
            "clients of another integration are not used"
        );
        assert_eq!(db.agent_snapshot(i).await.unwrap().len(), 7);
        assert_eq!(db.agent_snapshot(j).await.unwrap().len(), 1);
        let empty = db.upsert_agents(j, &[], at(50)).await.unwrap();
        assert_eq!(empty, AgentUpsert::default());
    }
);

both!(
    agent_states_and_links_write_only_changes,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        let tenant = db.create_tenant("Acme Inc", T0).await.unwrap();
        let ids = agents(
            &db,
            i,
            &[
                agent("1", None, "WS-01"),
                agent("2", None, "WS-02"),
                agent("3", None, "WS-03"),
                agent("4", None, "WS-04"),
            ],
        )
        .await;
        let (a1, a2, a3, a4) = (ids[0], ids[1], ids[2], ids[3]);
        let cs = db
            .create_computers(
                &[
                    computer(tenant.id, "WS-01", Some("SN-1")),
                    computer(tenant.id, "WS-02", Some("SN-2")),
                ],
                T0,
            )
            .await
            .unwrap();
        let (c1, c2) = (cs[0], cs[1]);

        // States.
        let n = db
            .set_agent_states(
                &[
                    (a1, AgentState::Missing, Some(at(1))),
                    (a2, AgentState::Active, None),
                ],
                at(1),
            )
            .await
            .unwrap();
        assert_eq!(n, 1, "a2 was already active");
        let again = db
            .set_agent_states(&[(a1, AgentState::Missing, Some(at(1)))], at(2))
            .await
            .unwrap();
        assert_eq!(again, 0, "already missing since then");
        let s1 = db.agent_by_id(a1).await.unwrap().unwrap();
        assert_eq!(
            (s1.state, s1.missing_since, s1.updated_at),
            (AgentState::Missing, Some(at(1)), at(1))
        );
        assert_eq!(db.agent_by_id(a2).await.unwrap().unwrap().updated_at, T0);
        // A repeated agent: the last entry wins.
        let n = db
            .set_agent_states(
                &[
                    (a3, AgentState::Missing, Some(at(3))),
                    (a3, AgentState::Retired, Some(at(3))),
                ],
                at(3),
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            db.agent_by_id(a3).await.unwrap().unwrap().state,
            AgentState::Retired
        );
        assert_eq!(db.set_agent_states(&[], at(3)).await.unwrap(), 0);
        let live: HashSet<i64> = db
            .identity_rows(false)
            .await
            .unwrap()
            .iter()
            .map(|r| r.agent_id)
            .collect();
        assert_eq!(live, HashSet::from([a1, a2, a4]), "retired agents left out");
        assert_eq!(db.identity_rows(true).await.unwrap().len(), 4);

        // Links.
        let n = db
            .link_agents(
                &[
                    link(a1, c1, "smbios_uuid"),
                    link(a2, c2, "serial"),
                    link(a3, c1, "mac"),
                    link(a4, c1, "external_id"),
                ],
                at(4),
            )
            .await
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            db.link_agents(
                &[link(a1, c1, "smbios_uuid"), link(a2, c2, "serial")],
                at(5)
            )
            .await
            .unwrap(),
            0,
            "already linked there"
        );
        assert_eq!(
            db.agent_evidence(a1).await.unwrap().len(),
            1,
            "an unchanged link records no evidence"
        );
        assert_eq!(db.agent_by_id(a1).await.unwrap().unwrap().updated_at, at(4));

        // The same computer with a clone flag is a change; so is another computer.
        let mut clone = link(a2, c2, "clone");
        clone.clone_of = Some(r#"{"smbios_uuid":"4C4C4544"}"#.into());
        assert_eq!(db.link_agents(&[clone], at(6)).await.unwrap(), 1);
        assert_eq!(
            db.agent_by_id(a2)
                .await
                .unwrap()
                .unwrap()
                .clone_of
                .as_deref(),
            Some(r#"{"smbios_uuid":"4C4C4544"}"#)
        );
        assert_eq!(
            db.link_agents(&[link(a1, c2, "serial")], at(7))
                .await
                .unwrap(),
            1
        );
        let history = db.agent_evidence(a1).await.unwrap();
        assert_eq!(
            history
                .iter()
                .map(|(c, e)| (*c, e.rule.as_str(), e.at))
                .collect::<Vec<_>>(),
            [(c2, "serial", at(7)), (c1, "smbios_uuid", at(4))],
            "newest first"
        );
        assert_eq!(history[1].1.evidence["compared"], json!(["SN-1", "SN-1"]));
        assert_eq!(history[1].1.decided_by, "sync");

        // A computer's agents, live first, each with why it is there.
        let on_c1 = db.agents_of_computer(c1).await.unwrap();
        assert_eq!(
            on_c1
                .iter()
                .map(|a| (a.agent.id, a.agent.state))
                .collect::<Vec<_>>(),
            [(a4, AgentState::Active), (a3, AgentState::Retired)],
            "retired agents last"
        );
        assert_eq!(on_c1[0].integration_name, "N-central");
        assert_eq!(on_c1[0].integration_kind, IntegrationKind::Ncentral);
        let ev = on_c1[0].evidence.as_ref().unwrap();
        assert_eq!((ev.rule.as_str(), ev.at), ("external_id", at(4)));
        let on_c2 = db.agents_of_computer(c2).await.unwrap();
        assert_eq!(
            on_c2
                .iter()
                .map(|a| (a.agent.id, a.evidence.as_ref().unwrap().rule.as_str()))
                .collect::<Vec<_>>(),
            [(a2, "clone"), (a1, "serial")],
            "active before missing; the latest evidence for this computer"
        );
        assert_eq!(computer_row(&db, c1).await.agent_count, 1, "a3 is retired");
        assert_eq!(computer_row(&db, c2).await.agent_count, 2);
        assert!(db.agents_of_computer(424242).await.unwrap().is_empty());

        // A repeated agent: the last link wins, one evidence row.
        assert_eq!(
            db.link_agents(&[link(a4, c2, "mac"), link(a4, c1, "hostname")], at(8))
                .await
                .unwrap(),
            0,
            "the last entry is the current link"
        );
        let err = db
            .link_agents(&[link(a4, 424242, "serial")], at(9))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        assert_eq!(
            db.agent_by_id(a4).await.unwrap().unwrap().computer_id,
            Some(c1)
        );
        assert_eq!(db.agent_evidence(a4).await.unwrap().len(), 1);
        let tenant_of = db
            .identity_rows(false)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.agent_id == a4)
            .unwrap();
        assert_eq!(
            (tenant_of.computer_id, tenant_of.tenant_id),
            (Some(c1), Some(tenant.id))
        );
    }
);

// ---------------------------------------------------------------------------------------------
// Computers
// ---------------------------------------------------------------------------------------------

both!(computers_create_update_and_scope, |db: Db| async move {
    let a = db.create_tenant("Acme Inc", T0).await.unwrap();
    let b = db.create_tenant("Bravo LLC", T0).await.unwrap();
    let ids = db
        .create_computers(
            &[
                computer(a.id, "WS-01", Some("SN-1")),
                computer(a.id, "WS-02", None),
                computer(b.id, "SRV-01", Some("SN-3")),
            ],
            T0,
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let rows = [
        computer_row(&db, ids[0]).await,
        computer_row(&db, ids[1]).await,
        computer_row(&db, ids[2]).await,
    ];
    assert_eq!(
        rows.iter()
            .map(|r| (r.name.as_str(), r.tenant_name.as_str()))
            .collect::<Vec<_>>(),
        [
            ("WS-01", "Acme Inc"),
            ("WS-02", "Acme Inc"),
            ("SRV-01", "Bravo LLC")
        ],
        "ids come in input order"
    );
    assert_eq!(
        (
            rows[0].serial.as_deref(),
            rows[0].os.as_deref(),
            rows[0].last_contact_at,
            rows[0].created_at,
            rows[0].updated_at,
            rows[0].retired_at,
            rows[0].agent_count,
        ),
        (
            Some("SN-1"),
            Some("Windows 11 Pro"),
            Some(T0),
            T0,
            T0,
            None,
            0
        )
    );
    assert_eq!(
        db.create_computers(&[], T0).await.unwrap(),
        Vec::<i64>::new()
    );
    let err = db
        .create_computers(&[computer(424242, "X", None)], T0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "tenant" }),
        "{err}"
    );

    // One unchanged, one renamed, one moved to another tenant.
    let mut renamed = update_of(&rows[1]);
    renamed.name = "Laptop-Ärger".into();
    renamed.serial = Some("NEWSERIAL".into());
    let mut moved = update_of(&rows[2]);
    moved.tenant_id = a.id;
    let n = db
        .update_computers(&[update_of(&rows[0]), renamed, moved], at(1))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        computer_row(&db, ids[0]).await.updated_at,
        T0,
        "not written"
    );
    let r1 = computer_row(&db, ids[1]).await;
    assert_eq!(
        (r1.name.as_str(), r1.serial.as_deref(), r1.updated_at),
        ("Laptop-Ärger", Some("NEWSERIAL"), at(1))
    );
    let r2 = computer_row(&db, ids[2]).await;
    assert_eq!((r2.tenant_id, r2.tenant_name.as_str()), (a.id, "Acme Inc"));
    assert_eq!(
        db.update_computers(&[update_of(&r1), update_of(&r2)], at(2))
            .await
            .unwrap(),
        0,
        "writing the same facts again changes nothing"
    );
    // The search copies follow the rename.
    let found = db
        .search_computers(&ComputerQuery {
            q: Some("ärger".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&found), ["Laptop-Ärger"]);
    let found = db
        .search_computers(&ComputerQuery {
            q: Some("newser".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1, "the new serial is searchable");
    let mut bad = update_of(&r1);
    bad.tenant_id = 424242;
    let err = db.update_computers(&[bad], at(3)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "tenant" }),
        "{err}"
    );
    assert_eq!(computer_row(&db, ids[1]).await.tenant_id, a.id);

    // Tenant scope: computers of other tenants do not exist for a limited user.
    db.create_computers(&[computer(b.id, "SRV-02", None)], at(4))
        .await
        .unwrap();
    let only_b = TenantScope::Only(vec![b.id]);
    assert!(db.computer_by_id(ids[0], &only_b).await.unwrap().is_none());
    assert!(
        db.computer_by_id(ids[0], &TenantScope::Only(vec![a.id]))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.computer_by_id(424242, &TenantScope::All)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(db.count_computers(&TenantScope::All).await.unwrap(), 4);
    assert_eq!(db.count_computers(&only_b).await.unwrap(), 1);
    assert_eq!(
        db.count_computers(&TenantScope::Only(vec![]))
            .await
            .unwrap(),
        0
    );
});

both!(computer_search_finds_and_pages, |db: Db| async move {
    let a = db.create_tenant("Acme Inc", T0).await.unwrap();
    let b = db.create_tenant("Bravo LLC", T0).await.unwrap();
    let mut new = Vec::new();
    for n in 1..=12 {
        new.push(computer(
            a.id,
            &format!("WS-{n:03}"),
            Some(&format!("ACME{n:04}")),
        ));
    }
    for name in ["DUP", "Dup", "dup", "dUP"] {
        new.push(computer(b.id, name, None));
    }
    new.push(computer(b.id, "SRV-DC01", Some("CZ2345ABCD")));
    new.push(computer(b.id, "50%-off", None));
    new.push(computer(b.id, "5000-off", None));
    new.push(computer(b.id, "under_score", None));
    new.push(computer(b.id, "underXscore", None));
    let ids = db.create_computers(&new, T0).await.unwrap();
    let total = new.len() as i64;
    let search = |q: &str| ComputerQuery {
        q: Some(q.into()),
        limit: 500,
        ..Default::default()
    };

    let prefix = db.search_computers(&search("ws-00")).await.unwrap();
    assert_eq!(
        names(&prefix),
        [
            "WS-001", "WS-002", "WS-003", "WS-004", "WS-005", "WS-006", "WS-007", "WS-008",
            "WS-009"
        ]
    );
    assert_eq!((prefix.total, prefix.next.clone()), (9, None));
    let sub = db.search_computers(&search("  dc0 ")).await.unwrap();
    assert_eq!(names(&sub), ["SRV-DC01"], "substring, trimmed, any case");
    let serial = db.search_computers(&search("cz2345")).await.unwrap();
    assert_eq!(
        names(&serial),
        ["SRV-DC01"],
        "serials too, case-insensitively"
    );
    let serial_sub = db.search_computers(&search("5abc")).await.unwrap();
    assert_eq!(names(&serial_sub), ["SRV-DC01"]);
    let dup = db.search_computers(&search("Dup")).await.unwrap();
    assert_eq!(dup.items.len(), 4);
    assert_eq!(
        dup.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        ids[12..16].to_vec(),
        "equal names in id order"
    );
    // LIKE wildcards in the query are plain characters.
    assert_eq!(
        names(&db.search_computers(&search("0%")).await.unwrap()),
        ["50%-off"]
    );
    assert_eq!(
        names(&db.search_computers(&search("r_s")).await.unwrap()),
        ["under_score"]
    );
    assert!(
        db.search_computers(&search("nothing-like-it"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        db.search_computers(&search("   ")).await.unwrap().total,
        total
    );

    // Scope and tenant filter.
    let only_a = db
        .search_computers(&ComputerQuery {
            scope: TenantScope::Only(vec![a.id]),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_a.total, 12);
    assert!(only_a.items.iter().all(|c| c.tenant_id == a.id));
    let hidden = db
        .search_computers(&ComputerQuery {
            scope: TenantScope::Only(vec![a.id]),
            q: Some("dc01".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (hidden.total, hidden.items.len()),
        (0, 0),
        "another tenant's"
    );
    let outside = db
        .search_computers(&ComputerQuery {
            scope: TenantScope::Only(vec![a.id]),
            tenant_id: Some(b.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        outside.total, 0,
        "asking for a tenant out of scope shows nothing"
    );
    let tenant_b = db
        .search_computers(&ComputerQuery {
            tenant_id: Some(b.id),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tenant_b.total, total - 12);
    let none = db
        .search_computers(&ComputerQuery {
            scope: TenantScope::Only(vec![]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(none.total, 0);

    // Keyset paging: every row exactly once, in name order, the total on every page.
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = db
            .search_computers(&ComputerQuery {
                limit: 3,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert_eq!(page.total, total);
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|c| (c.name.to_lowercase(), c.id)));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 100, "paging must end");
    }
    assert_eq!(
        pages, 7,
        "{total} rows by 3: the last page is full, no empty page"
    );
    let whole = db
        .search_computers(&ComputerQuery {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        seen.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        whole.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        "pages add up to the whole list, in its order"
    );
    assert!(
        seen.windows(2)
            .filter(|w| w[0].0 == w[1].0)
            .all(|w| w[0].1 < w[1].1),
        "equal names by id"
    );
    let unique: HashSet<i64> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    assert_eq!(
        unique,
        ids.iter().copied().collect::<HashSet<_>>(),
        "no row missed"
    );

    // Pages of a search.
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .search_computers(&ComputerQuery {
                q: Some("WS-".into()),
                limit: 5,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total, 12);
        found.extend(page.items.iter().map(|c| c.name.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(
        found,
        (1..=12).map(|n| format!("WS-{n:03}")).collect::<Vec<_>>()
    );

    // A cursor stays valid while rows are added before it.
    let first = db
        .search_computers(&ComputerQuery {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    db.create_computers(&[computer(a.id, "000-first", None)], at(1))
        .await
        .unwrap();
    let second = db
        .search_computers(&ComputerQuery {
            limit: 5,
            after: first.next.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(second.total, total + 1);
    assert_eq!(
        second.items[0].id, seen[5].1,
        "the next page starts where the last one ended"
    );

    // Limit clamps and offsets.
    let one = db
        .search_computers(&ComputerQuery {
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&one), ["000-first"]);
    assert!(one.next.is_some());
    let skipped = db
        .search_computers(&ComputerQuery {
            limit: 2,
            offset: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(skipped.items[0].id, seen[0].1);
});

both!(
    computers_retire_and_revive_with_their_agents,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        let t = db.create_tenant("Acme Inc", T0).await.unwrap();
        let cs = db
            .create_computers(
                &[
                    computer(t.id, "active", None),
                    computer(t.id, "missing", None),
                    computer(t.id, "retired", None),
                    computer(t.id, "empty", None),
                ],
                T0,
            )
            .await
            .unwrap();
        let ags = agents(
            &db,
            i,
            &[
                agent("1", None, "active"),
                agent("2", None, "missing"),
                agent("3", None, "retired"),
            ],
        )
        .await;
        db.link_agents(
            &[
                link(ags[0], cs[0], "serial"),
                link(ags[1], cs[1], "serial"),
                link(ags[2], cs[2], "serial"),
            ],
            T0,
        )
        .await
        .unwrap();
        db.set_agent_states(
            &[
                (ags[1], AgentState::Missing, Some(at(1))),
                (ags[2], AgentState::Retired, Some(at(1))),
            ],
            at(1),
        )
        .await
        .unwrap();

        assert_eq!(
            db.retire_computers_without_live_agents(at(2))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            db.retire_computers_without_live_agents(at(3))
                .await
                .unwrap(),
            0,
            "already retired"
        );
        let retired: Vec<_> = [
            computer_row(&db, cs[0]).await.retired_at,
            computer_row(&db, cs[1]).await.retired_at,
            computer_row(&db, cs[2]).await.retired_at,
            computer_row(&db, cs[3]).await.retired_at,
        ]
        .into();
        assert_eq!(
            retired,
            [None, None, Some(at(2)), Some(at(2))],
            "a missing agent still keeps its computer"
        );
        let live = db
            .search_computers(&ComputerQuery::default())
            .await
            .unwrap();
        assert_eq!(names(&live), ["active", "missing"]);
        let all = db
            .search_computers(&ComputerQuery {
                include_retired: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.total, 4);
        assert_eq!(db.count_computers(&TenantScope::All).await.unwrap(), 2);

        // The retired agent is rediscovered.
        assert_eq!(
            db.revive_computers_with_live_agents(at(4)).await.unwrap(),
            0
        );
        db.set_agent_states(&[(ags[2], AgentState::Active, None)], at(5))
            .await
            .unwrap();
        assert_eq!(
            db.revive_computers_with_live_agents(at(6)).await.unwrap(),
            1
        );
        let back = computer_row(&db, cs[2]).await;
        assert_eq!((back.retired_at, back.updated_at), (None, at(6)));
        assert_eq!(back.agent_count, 1);
        assert!(computer_row(&db, cs[3]).await.retired_at.is_some());
    }
);

both!(
    computers_are_created_with_their_first_link,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        let t = db.create_tenant("Acme Inc", T0).await.unwrap();
        let old = db
            .create_computers(&[computer(t.id, "old", Some("SN-OLD"))], T0)
            .await
            .unwrap()[0];
        let ags = agents(
            &db,
            i,
            &[
                agent("1", None, "new-1"),
                agent("2", None, "new-2"),
                agent("3", None, "old"),
            ],
        )
        .await;
        let (ids, linked) = db
            .create_and_link_computers(
                vec![
                    (computer(t.id, "new-1", None), link(ags[0], 0, "new")),
                    (computer(t.id, "new-2", None), link(ags[1], 0, "new")),
                ],
                &[link(ags[2], old, "serial")],
                at(1),
            )
            .await
            .unwrap();
        assert_eq!((ids.len(), linked), (2, 3));
        for (agent, computer) in [(ags[0], ids[0]), (ags[1], ids[1]), (ags[2], old)] {
            let a = db.agent_by_id(agent).await.unwrap().unwrap();
            assert_eq!(a.computer_id, Some(computer));
        }
        assert_eq!(computer_row(&db, ids[1]).await.name, "new-2");

        // A link that cannot be written takes its computers with it: no orphan is left.
        let before = db.count_computers(&TenantScope::All).await.unwrap();
        let err = db
            .create_and_link_computers(
                vec![(computer(t.id, "ghost", None), link(424242, 0, "new"))],
                &[],
                at(2),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        assert_eq!(db.count_computers(&TenantScope::All).await.unwrap(), before);
        let ghost = db
            .search_computers(&ComputerQuery {
                q: Some("ghost".into()),
                include_retired: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ghost.total, 0);
    }
);

both!(merge_computers_moves_agents, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    let t = db.create_tenant("Acme Inc", T0).await.unwrap();
    let cs = db
        .create_computers(
            &[
                computer(t.id, "WS-OLD", None),
                computer(t.id, "WS-NEW", None),
                computer(t.id, "WS-GONE", None),
            ],
            T0,
        )
        .await
        .unwrap();
    let (from, into, gone) = (cs[0], cs[1], cs[2]);
    let ags = agents(
        &db,
        i,
        &[
            agent("1", None, "WS-OLD"),
            agent("2", None, "WS-OLD"),
            agent("3", None, "WS-NEW"),
        ],
    )
    .await;
    db.link_agents(
        &[
            link(ags[0], from, "serial"),
            link(ags[1], from, "mac"),
            link(ags[2], into, "serial"),
        ],
        T0,
    )
    .await
    .unwrap();
    db.raise_decisions(
        &[
            decision(ags[2], Some(from), "reinstall_or_new"),
            decision(ags[2], Some(from), "hostname_only"),
        ],
        T0,
    )
    .await
    .unwrap();
    let open = db.open_decisions(&TenantScope::All, 10).await.unwrap();
    db.resolve_decision(
        open[1].id,
        Resolution::KeepSeparate,
        "alice",
        at(1),
        &DecisionEffect::Keep { computer_id: from },
        |c| resolve_audit("alice", c, at(1)),
    )
    .await
    .unwrap();

    let err = db
        .merge_computers(from, from, "alice", at(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    db.retire_computers_without_live_agents(at(2))
        .await
        .unwrap();
    assert!(computer_row(&db, gone).await.retired_at.is_some());
    for (a, b) in [(from, gone), (424242, into), (from, 424242)] {
        let err = db.merge_computers(a, b, "alice", at(2)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { what: "computer" }),
            "merge {a} into {b}: {err}"
        );
    }

    let moved = db
        .merge_computers(from, into, "alice", at(3))
        .await
        .unwrap();
    assert_eq!(moved, 2);
    let on_into = db.agents_of_computer(into).await.unwrap();
    let mut on_ids: Vec<_> = on_into.iter().map(|a| a.agent.id).collect();
    on_ids.sort_unstable();
    assert_eq!(on_ids, ags);
    let merged = on_into.iter().find(|a| a.agent.id == ags[0]).unwrap();
    let ev = merged.evidence.as_ref().unwrap();
    assert_eq!(
        (ev.rule.as_str(), ev.decided_by.as_str(), ev.at),
        ("manual_merge", "alice", at(3))
    );
    assert_eq!(
        ev.evidence,
        json!({"merged_from": from, "merged_into": into})
    );
    assert_eq!(db.agent_evidence(ags[1]).await.unwrap().len(), 2);
    assert!(db.agents_of_computer(from).await.unwrap().is_empty());
    let old = computer_row(&db, from).await;
    assert_eq!((old.retired_at, old.agent_count), (Some(at(3)), 0));
    assert_eq!(computer_row(&db, into).await.agent_count, 3);

    let decisions = db.open_decisions(&TenantScope::All, 10).await.unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(
        (
            decisions[0].candidate_computer_id,
            decisions[0].candidate_computer_name.as_deref()
        ),
        (Some(into), Some("WS-NEW")),
        "open decisions point at the merged computer"
    );
    let resolved = db
        .decision_by_id(open[1].id, &TenantScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resolved.candidate_computer_id,
        Some(from),
        "resolved decisions keep their history"
    );
});

// ---------------------------------------------------------------------------------------------
// Manual decisions
// ---------------------------------------------------------------------------------------------

both!(decisions_raise_once_and_resolve_once, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    let ta = db.create_tenant("Acme Inc", T0).await.unwrap();
    let tb = db.create_tenant("Bravo LLC", T0).await.unwrap();
    db.refresh_rmm_clients(i, &[company("c1", "Acme")], T0)
        .await
        .unwrap();
    let clients = client_ids(&db, i).await;
    db.set_client_link(
        clients["c1"],
        &change(ClientLinkState::Matched, Some(ta.id)),
        T0,
    )
    .await
    .unwrap();
    db.apply_client_links(i, "admin", T0).await.unwrap();
    let cs = db
        .create_computers(
            &[computer(ta.id, "WS-A", None), computer(tb.id, "WS-B", None)],
            T0,
        )
        .await
        .unwrap();
    let (ca, cb) = (cs[0], cs[1]);
    let ags = agents(
        &db,
        i,
        &[
            agent("1", None, "WS-A"),
            agent("2", None, "WS-B"),
            agent("3", None, "WS-B2"),
            agent("4", Some("c1"), "WS-A2"),
            agent("5", None, "WS-NOWHERE"),
        ],
    )
    .await;
    db.link_agents(&[link(ags[2], cb, "serial")], T0)
        .await
        .unwrap();

    let raised = db
        .raise_decisions(
            &[
                decision(ags[0], Some(ca), "reinstall_or_new"),
                // Twice in one batch: one decision.
                decision(ags[0], Some(ca), "reinstall_or_new"),
                decision(ags[1], Some(cb), "hostname_only"),
                // The tenant comes from the agent's computer ...
                decision(ags[2], None, "clone"),
                // ... or from the applied mapping of its client.
                decision(ags[3], None, "hostname_only"),
                // No tenant at all: only unlimited users see it.
                decision(ags[4], None, "hostname_only"),
            ],
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(raised, 5);
    let again = db
        .raise_decisions(
            &[
                decision(ags[0], Some(cb), "reinstall_or_new"),
                decision(ags[1], Some(cb), "hostname_only"),
            ],
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(again, 0, "open decisions are not raised twice");
    assert_eq!(
        db.raise_decisions(&[decision(ags[0], None, "clone")], at(2))
            .await
            .unwrap(),
        1,
        "another kind for the same agent is another decision"
    );

    let open = db.open_decisions(&TenantScope::All, 100).await.unwrap();
    assert_eq!(open.len(), 6);
    assert!(open.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let waiting = db.agents_with_open_decisions(i).await.unwrap();
    assert_eq!(
        waiting,
        ags.iter()
            .copied()
            .collect::<std::collections::HashSet<_>>(),
        "every agent with an open decision, once"
    );
    let other = integration(&db, "NinjaOne").await;
    assert!(
        db.agents_with_open_decisions(other)
            .await
            .unwrap()
            .is_empty()
    );
    let d1 = &open[0];
    assert_eq!(
        (
            d1.agent_id,
            d1.agent_hostname.as_str(),
            d1.integration_id,
            d1.agent_computer_id,
            d1.candidate_computer_id,
            d1.candidate_computer_name.as_deref(),
            d1.tenant_id,
            d1.kind.as_str(),
            d1.created_at,
        ),
        (
            ags[0],
            "WS-A",
            i,
            None,
            Some(ca),
            Some("WS-A"),
            Some(ta.id),
            "reinstall_or_new",
            at(1)
        )
    );
    assert_eq!(d1.evidence["score"], json!(0.5), "first raise kept");
    assert!(d1.reason.starts_with("reinstall_or_new"));
    assert_eq!(
        (d1.resolved_at, d1.resolved_by.as_deref(), d1.resolution),
        (None, None, None)
    );
    let tenants: Vec<_> = open.iter().map(|d| (d.agent_id, d.tenant_id)).collect();
    assert_eq!(
        tenants,
        [
            (ags[0], Some(ta.id)),
            (ags[1], Some(tb.id)),
            (ags[2], Some(tb.id)),
            (ags[3], Some(ta.id)),
            (ags[4], None),
            (ags[0], None),
        ]
    );
    assert_eq!(
        db.open_decisions(&TenantScope::All, 2).await.unwrap().len(),
        2
    );

    // Scope.
    let only_a = TenantScope::Only(vec![ta.id]);
    let seen: Vec<_> = db
        .open_decisions(&only_a, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.agent_id)
        .collect();
    assert_eq!(seen, [ags[0], ags[3]]);
    assert_eq!(db.count_open_decisions(&only_a).await.unwrap(), 2);
    assert_eq!(db.count_open_decisions(&TenantScope::All).await.unwrap(), 6);
    assert_eq!(
        db.count_open_decisions(&TenantScope::Only(vec![tb.id]))
            .await
            .unwrap(),
        2
    );
    assert!(
        db.decision_by_id(open[1].id, &only_a)
            .await
            .unwrap()
            .is_none(),
        "Bravo's decision is not visible to an Acme-only user"
    );
    assert!(
        db.decision_by_id(open[0].id, &only_a)
            .await
            .unwrap()
            .is_some()
    );

    // Resolve once: the decision, the link it makes and its audit entry land together.
    let audits = |db: &Db| {
        let db = db.clone();
        async move {
            db.list_audit(&AuditQuery {
                limit: 100,
                action: Some("decision.resolve".into()),
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    let (r, on) = db
        .resolve_decision(
            open[0].id,
            Resolution::Merge,
            "alice",
            at(3),
            &DecisionEffect::Link(link(ags[0], ca, "manual")),
            |c| resolve_audit("alice", c, at(3)),
        )
        .await
        .unwrap();
    assert_eq!(on, ca);
    assert_eq!(
        (r.resolved_at, r.resolved_by.as_deref(), r.resolution),
        (Some(at(3)), Some("alice"), Some(Resolution::Merge))
    );
    assert_eq!(
        r.candidate_computer_id,
        Some(ca),
        "the candidate stays recorded"
    );
    let a0 = db.agent_by_id(ags[0]).await.unwrap().unwrap();
    assert_eq!(a0.computer_id, Some(ca));
    let logged = audits(&db).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].details["computer_id"], json!(ca));

    // A second resolver changes nothing: no computer, no link, no audit entry.
    let computers_before = db.count_computers(&TenantScope::All).await.unwrap();
    let err = db
        .resolve_decision(
            open[0].id,
            Resolution::KeepSeparate,
            "bob",
            at(4),
            &DecisionEffect::CreateAndLink(
                computer(ta.id, "WS-A", None),
                link(ags[0], 0, "manual"),
            ),
            |c| resolve_audit("bob", c, at(4)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("alice") && err.to_string().contains("merge"),
        "says who was faster: {err}"
    );
    assert_eq!(
        db.count_computers(&TenantScope::All).await.unwrap(),
        computers_before
    );
    let a0 = db.agent_by_id(ags[0]).await.unwrap().unwrap();
    assert_eq!(a0.computer_id, Some(ca));
    assert_eq!(audits(&db).await.len(), 1);
    let kept = db
        .decision_by_id(open[0].id, &TenantScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.resolved_by.as_deref(), kept.resolution),
        (Some("alice"), Some(Resolution::Merge))
    );
    assert!(matches!(
        db.resolve_decision(
            424242,
            Resolution::Merge,
            "bob",
            at(4),
            &DecisionEffect::Keep { computer_id: ca },
            |c| resolve_audit("bob", c, at(4)),
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));
    // Acme's: ags[3]'s, and ags[0]'s second one, now that ags[0] is on an Acme computer.
    assert_eq!(db.count_open_decisions(&only_a).await.unwrap(), 2);
    assert_eq!(db.count_open_decisions(&TenantScope::All).await.unwrap(), 5);
    let still_waiting: std::collections::HashSet<i64> = db
        .open_decisions(&TenantScope::All, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.agent_id)
        .collect();
    assert_eq!(
        db.agents_with_open_decisions(i).await.unwrap(),
        still_waiting
    );
    assert!(
        db.open_decisions(&TenantScope::All, 100)
            .await
            .unwrap()
            .iter()
            .all(|d| d.id != open[0].id)
    );

    // Resolved, the question can come up again.
    assert_eq!(
        db.raise_decisions(&[decision(ags[0], Some(ca), "reinstall_or_new")], at(5))
            .await
            .unwrap(),
        1
    );
    let err = db
        .raise_decisions(&[decision(424242, None, "clone")], at(6))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(db.count_open_decisions(&TenantScope::All).await.unwrap(), 6);
    assert_eq!(
        "keep_separate".parse::<Resolution>(),
        Ok(Resolution::KeepSeparate)
    );
    assert!("maybe".parse::<Resolution>().is_err());
});

// ---------------------------------------------------------------------------------------------
// Sync runs
// ---------------------------------------------------------------------------------------------

both!(sync_runs_one_running_per_integration, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    let j = integration(&db, "NinjaOne").await;
    let run = db.start_sync_run(i, "full", "scheduler", T0).await.unwrap();
    assert_eq!(
        (
            run.integration_id,
            run.kind.as_str(),
            run.state,
            run.stage.as_str(),
            run.triggered_by.as_str()
        ),
        (i, "full", SyncRunState::Running, "starting", "scheduler")
    );
    assert_eq!(run.counts, json!({}));
    assert_eq!(
        (run.started_at, run.heartbeat_at, run.finished_at),
        (T0, T0, None)
    );
    assert_eq!(run.error, None);

    let err = db
        .start_sync_run(i, "devices", "alice", at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("sync run {}", run.id)) && msg.contains("scheduler"),
        "names the running run: {msg}"
    );
    let other = db
        .start_sync_run(j, "clients", "alice", at(1))
        .await
        .unwrap();
    assert_eq!(
        db.running_sync_run(i).await.unwrap().map(|r| r.id),
        Some(run.id)
    );
    assert!(matches!(
        db.start_sync_run(424242, "full", "alice", T0).await,
        Err(StoreError::NotFound {
            what: "integration"
        })
    ));

    db.update_sync_run(run.id, "devices", &json!({"seen": 10, "new": 2}), at(2))
        .await
        .unwrap();
    let now = db.sync_run(run.id).await.unwrap().unwrap();
    assert_eq!(
        (
            now.stage.as_str(),
            now.counts["seen"].as_i64(),
            now.heartbeat_at
        ),
        ("devices", Some(10), at(2))
    );
    assert!(matches!(
        db.finish_sync_run(run.id, SyncRunState::Running, &json!({}), None, at(3))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        db.finish_sync_run(run.id, SyncRunState::Abandoned, &json!({}), None, at(3))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let done = db
        .finish_sync_run(
            run.id,
            SyncRunState::Succeeded,
            &json!({"seen": 12}),
            None,
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            done.state,
            done.stage.as_str(),
            done.finished_at,
            done.heartbeat_at
        ),
        (SyncRunState::Succeeded, "done", Some(at(4)), at(4))
    );
    assert_eq!(done.counts, json!({"seen": 12}));
    assert_eq!(db.sync_run(run.id).await.unwrap().unwrap(), done);
    assert!(db.running_sync_run(i).await.unwrap().is_none());

    // A finished run takes no more progress; its worker must stop.
    let err = db
        .update_sync_run(run.id, "late", &json!({}), at(5))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("succeeded"), "{err}");
    let err = db
        .finish_sync_run(run.id, SyncRunState::Failed, &json!({}), Some("x"), at(5))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        db.sync_run(run.id).await.unwrap().unwrap().state,
        SyncRunState::Succeeded
    );
    assert!(matches!(
        db.update_sync_run(424242, "x", &json!({}), at(5)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(db.sync_run(424242).await.unwrap().is_none());

    // The next run may start, and fail with a reason.
    let second = db
        .start_sync_run(i, "devices", "alice", at(6))
        .await
        .unwrap();
    let failed = db
        .finish_sync_run(
            second.id,
            SyncRunState::Failed,
            &json!({"seen": 0}),
            Some("HTTP 401 from N-central: the token has expired"),
            at(7),
        )
        .await
        .unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (
            SyncRunState::Failed,
            Some("HTTP 401 from N-central: the token has expired")
        )
    );

    let runs_i: Vec<_> = db
        .list_sync_runs(Some(i), 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(runs_i, [second.id, run.id], "newest first");
    let all: Vec<_> = db
        .list_sync_runs(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, [second.id, other.id, run.id]);
    assert_eq!(db.list_sync_runs(None, 0).await.unwrap().len(), 1);
    assert_eq!(
        db.last_sync_run(i).await.unwrap().map(|r| r.id),
        Some(second.id)
    );
    assert_eq!(
        db.last_sync_run(j).await.unwrap().map(|r| r.state),
        Some(SyncRunState::Running)
    );
});

both!(stale_sync_runs_are_abandoned, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    let j = integration(&db, "NinjaOne").await;
    let stale = db
        .start_sync_run(i, "full", "scheduler", at(10))
        .await
        .unwrap();
    let fresh = db
        .start_sync_run(j, "full", "scheduler", at(10))
        .await
        .unwrap();
    db.update_sync_run(fresh.id, "devices", &json!({}), at(100))
        .await
        .unwrap();

    let abandoned = db.abandon_stale_runs(at(50), at(200)).await.unwrap();
    assert_eq!(abandoned.len(), 1);
    let a = &abandoned[0];
    assert_eq!(
        (a.id, a.state, a.finished_at),
        (stale.id, SyncRunState::Abandoned, Some(at(200)))
    );
    let error = a.error.as_deref().unwrap();
    assert!(
        error.contains("heartbeat") && error.contains(&at(10).0.to_string()),
        "says since when it was silent: {error}"
    );
    assert_eq!(
        db.sync_run(fresh.id).await.unwrap().unwrap().state,
        SyncRunState::Running,
        "a run with a recent heartbeat keeps running"
    );
    assert!(
        db.abandon_stale_runs(at(50), at(300))
            .await
            .unwrap()
            .is_empty()
    );

    // The crashed worker comes back: it must stop. A new run may start.
    let err = db
        .update_sync_run(stale.id, "devices", &json!({}), at(301))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("abandoned"), "{err}");
    let next = db
        .start_sync_run(i, "full", "scheduler", at(302))
        .await
        .unwrap();
    assert_eq!(next.state, SyncRunState::Running);
});

both!(plan_items_page_and_count, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    let ags = agents(&db, i, &[agent("1", None, "WS-01")]).await;
    let run = db
        .start_sync_run(i, "devices", "scheduler", T0)
        .await
        .unwrap();
    let other = {
        db.finish_sync_run(run.id, SyncRunState::Succeeded, &json!({}), None, T0)
            .await
            .unwrap();
        let r = db
            .start_sync_run(i, "devices", "scheduler", at(1))
            .await
            .unwrap();
        db.add_plan_items(
            r.id,
            &[NewPlanItem {
                external_id: "9".into(),
                agent_id: None,
                action: "new".into(),
                diffs: json!([]),
            }],
        )
        .await
        .unwrap();
        r
    };
    let item = |ext: &str, agent_id: Option<i64>, action: &str| NewPlanItem {
        external_id: ext.into(),
        agent_id,
        action: action.into(),
        diffs: if action == "changed" {
            json!([{"field": "hostname", "old": "WS-01", "new": format!("WS-{ext}")}])
        } else {
            json!([])
        },
    };
    let items = [
        item("1", Some(ags[0]), "changed"),
        item("2", None, "new"),
        item("3", None, "new"),
        item("4", None, "changed"),
        item("5", None, "missing"),
    ];
    assert_eq!(db.add_plan_items(run.id, &items[..2]).await.unwrap(), 2);
    assert_eq!(db.add_plan_items(run.id, &items[2..]).await.unwrap(), 3);
    assert_eq!(db.add_plan_items(run.id, &[]).await.unwrap(), 0);

    let all = db.plan_items(run.id, None, 0, 100).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|p| (p.external_id.as_str(), p.action.as_str(), p.agent_id))
            .collect::<Vec<_>>(),
        [
            ("1", "changed", Some(ags[0])),
            ("2", "new", None),
            ("3", "new", None),
            ("4", "changed", None),
            ("5", "missing", None),
        ],
        "insertion order, this run only"
    );
    assert!(all.iter().all(|p| p.run_id == run.id));
    assert_eq!(all[0].diffs[0]["new"], json!("WS-1"));
    let changed = db
        .plan_items(run.id, Some("changed"), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        changed
            .iter()
            .map(|p| p.external_id.as_str())
            .collect::<Vec<_>>(),
        ["1", "4"]
    );
    let page: Vec<_> = db
        .plan_items(run.id, None, all[1].id, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.external_id)
        .collect();
    assert_eq!(page, ["3", "4"]);
    assert_eq!(db.plan_items(run.id, None, 0, 0).await.unwrap().len(), 1);
    assert!(
        db.plan_items(run.id, Some("retired"), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.plan_item_counts(run.id).await.unwrap(),
        [
            ("changed".to_owned(), 2),
            ("missing".to_owned(), 1),
            ("new".to_owned(), 2)
        ]
    );
    assert_eq!(
        db.plan_item_counts(other.id).await.unwrap(),
        [("new".to_owned(), 1)]
    );
    assert!(db.plan_item_counts(424242).await.unwrap().is_empty());
    let err = db.add_plan_items(424242, &items[..1]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = db
        .add_plan_items(run.id, &[item("6", Some(424242), "new")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(db.plan_items(run.id, None, 0, 100).await.unwrap().len(), 5);
});

both!(two_workers_cannot_both_start_a_sync, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    let starts = (0..4).map(|n| {
        let db = db.clone();
        async move {
            db.start_sync_run(i, "full", &format!("worker-{n}"), T0)
                .await
        }
    });
    let results = futures::future::join_all(starts).await;
    let started: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(started.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        }
    }
    assert_eq!(
        db.running_sync_run(i).await.unwrap().map(|r| r.id),
        Some(started[0].id)
    );
});

// Batches larger than one statement's share of bound parameters (1,000 on SQLite, 20,000 on PostgreSQL) are
// split into several statements; the results must not show it.
both!(large_batches_cross_statement_chunks, |db: Db| async move {
    let i = integration(&db, "N-central").await;
    let t = db.create_tenant("Acme Inc", T0).await.unwrap();
    let clients: Vec<_> = (0..5_200)
        .map(|n| company(&format!("c{n}"), &format!("Client {n:05}")))
        .collect();
    let refresh = db.refresh_rmm_clients(i, &clients, T0).await.unwrap();
    assert_eq!(refresh.added.len(), 5_200);
    let links = db.list_client_links(i).await.unwrap();
    assert_eq!(links.len(), 5_200, "every client has its link");
    assert!(links.iter().all(|l| l.state == ClientLinkState::Unmatched));
    let again = db.refresh_rmm_clients(i, &clients, at(1)).await.unwrap();
    assert_eq!((again.changes(), again.unchanged), (0, 5_200));

    let writes: Vec<_> = (0..2_100)
        .map(|n| {
            agent(
                &n.to_string(),
                Some(&format!("c{n}")),
                &format!("WS-{n:05}"),
            )
        })
        .collect();
    let up = db.upsert_agents(i, &writes, T0).await.unwrap();
    assert_eq!(up.inserted, 2_100);
    assert!(
        up.ids
            .iter()
            .zip(&writes)
            .all(|((ext, _), w)| *ext == w.external_id),
        "input order across statements"
    );
    assert_eq!(
        up.ids
            .iter()
            .map(|(_, id)| *id)
            .collect::<HashSet<_>>()
            .len(),
        2_100
    );
    let snap = db.agent_snapshot(i).await.unwrap();
    assert!(
        snap.iter()
            .all(|a| a.rmm_client_external_id.as_deref() == Some(&format!("c{}", a.external_id))),
        "every agent filed under its client"
    );
    let same = db.upsert_agents(i, &writes, at(1)).await.unwrap();
    assert_eq!((same.unchanged, same.rows_written()), (2_100, 0));
    assert_eq!(same.ids, up.ids);

    let new: Vec<_> = (0..2_600)
        .map(|n| computer(t.id, &format!("WS-{n:05}"), None))
        .collect();
    let ids = db.create_computers(&new, T0).await.unwrap();
    assert_eq!(ids.len(), 2_600);
    for n in [0, 124, 125, 999, 1_000, 1_299, 2_499, 2_500, 2_599] {
        assert_eq!(
            computer_row(&db, ids[n]).await.name,
            format!("WS-{n:05}"),
            "ids in input order"
        );
    }
    let links: Vec<_> = up
        .ids
        .iter()
        .enumerate()
        .map(|(n, (_, a))| link(*a, ids[n], "serial"))
        .collect();
    assert_eq!(db.link_agents(&links, at(2)).await.unwrap(), 2_100);
    assert_eq!(db.link_agents(&links, at(3)).await.unwrap(), 0);
    assert!(
        db.agent_snapshot(i)
            .await
            .unwrap()
            .iter()
            .all(|a| a.computer_id.is_some())
    );
    assert_eq!(db.agent_evidence(up.ids[2_099].1).await.unwrap().len(), 1);
    let states: Vec<_> = up
        .ids
        .iter()
        .map(|(_, a)| (*a, AgentState::Missing, Some(at(4))))
        .collect();
    assert_eq!(db.set_agent_states(&states, at(4)).await.unwrap(), 2_100);
    assert_eq!(db.set_agent_states(&states, at(5)).await.unwrap(), 0);
    let updates: Vec<_> = ids
        .iter()
        .zip(&new)
        .map(|(id, c)| ComputerUpdate {
            id: *id,
            tenant_id: c.tenant_id,
            name: c.name.clone(),
            serial: c.serial.clone(),
            smbios_uuid: c.smbios_uuid.clone(),
            os: Some("Windows 11 Enterprise".into()),
            last_contact_at: c.last_contact_at,
        })
        .collect();
    assert_eq!(db.update_computers(&updates, at(6)).await.unwrap(), 2_600);
    assert_eq!(db.update_computers(&updates, at(7)).await.unwrap(), 0);
    assert_eq!(
        db.retire_computers_without_live_agents(at(8))
            .await
            .unwrap(),
        500,
        "the computers without agents"
    );
    let page = db
        .search_computers(&ComputerQuery {
            q: Some("ws-0".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 2_100);
    let raised = db
        .raise_decisions(
            &up.ids
                .iter()
                .map(|(_, a)| decision(*a, None, "hostname_only"))
                .collect::<Vec<_>>(),
            at(9),
        )
        .await
        .unwrap();
    assert_eq!(raised, 2_100);
    let run = db
        .start_sync_run(i, "devices", "scheduler", at(10))
        .await
        .unwrap();
    let items: Vec<_> = (0..2_100)
        .map(|n| NewPlanItem {
            external_id: n.to_string(),
            agent_id: Some(up.ids[n].1),
            action: "missing".into(),
            diffs: json!([]),
        })
        .collect();
    assert_eq!(db.add_plan_items(run.id, &items).await.unwrap(), 2_100);
    assert_eq!(
        db.plan_item_counts(run.id).await.unwrap(),
        [("missing".to_owned(), 2_100)]
    );
});

// ---------------------------------------------------------------------------------------------
// Client mapping: device evidence and tenant names at Finish
// ---------------------------------------------------------------------------------------------

both!(
    client_evidence_counts_devices_known_under_a_tenant,
    |db: Db| async move {
        let known = integration(&db, "Known RMM").await;
        let new = integration(&db, "New RMM").await;
        let acme = db.create_tenant("Acme", T0).await.unwrap().id;
        let bolt = db.create_tenant("Bolt", T0).await.unwrap().id;
        db.refresh_rmm_clients(known, &[company("k1", "Acme")], T0)
            .await
            .unwrap();
        db.refresh_rmm_clients(
            new,
            &[company("n1", "ACME Corp"), company("n2", "Nobody")],
            T0,
        )
        .await
        .unwrap();
        // The known integration has three computers: two of Acme, one of Bolt.
        let mut k = vec![
            agent("1", Some("k1"), "WS-1"),
            agent("2", Some("k1"), "WS-2"),
        ];
        // (serials of at least four letters and digits: "SN-3" is too short to be a real one)
        let mut three = agent("3", Some("k1"), "WS-3");
        three.serial = Some("SN-30303".into());
        k.push(three);
        // A junk serial shared with the new integration proves nothing.
        let mut junk = agent("4", Some("k1"), "WS-4");
        junk.serial = Some("To Be Filled By O.E.M.".into());
        junk.smbios_uuid = None;
        k.push(junk);
        let kids = agents(&db, known, &k).await;
        let computers = db
            .create_computers(
                &[
                    computer(acme, "WS-1", Some("SN-1")),
                    computer(acme, "WS-2", Some("SN-2")),
                    computer(bolt, "WS-3", Some("SN-3")),
                    computer(acme, "WS-4", None),
                ],
                T0,
            )
            .await
            .unwrap();
        let links: Vec<AgentLink> = kids
            .iter()
            .zip(&computers)
            .map(|(a, c)| link(*a, *c, "new"))
            .collect();
        db.link_agents(&links, T0).await.unwrap();
        // The new integration sees machines 1 and 2 (same UUID and serial), 3 by serial only,
        // a fresh machine, and one with the junk serial, all under n1; n2 has one unknown device.
        let mut by_serial = agent("3", Some("n1"), "WS-3");
        by_serial.smbios_uuid = None;
        by_serial.serial = Some("SN-30303".into());
        let mut junk_too = agent("9", Some("n1"), "WS-9");
        junk_too.serial = Some("To Be Filled By O.E.M.".into());
        junk_too.smbios_uuid = None;
        agents(
            &db,
            new,
            &[
                agent("1", Some("n1"), "WS-1"),
                agent("2", Some("n1"), "WS-2"),
                by_serial,
                agent("7", Some("n1"), "WS-7"),
                junk_too,
                agent("8", Some("n2"), "WS-8"),
            ],
        )
        .await;
        let ids = client_ids(&db, new).await;
        let ev = db.client_evidence(new).await.unwrap();
        assert_eq!(
            ev,
            vec![
                ClientEvidence {
                    rmm_client_id: ids["n1"],
                    tenant_id: acme,
                    tenant_name: "Acme".into(),
                    shared_devices: 2,
                    client_devices: 5,
                },
                ClientEvidence {
                    rmm_client_id: ids["n1"],
                    tenant_id: bolt,
                    tenant_name: "Bolt".into(),
                    shared_devices: 1,
                    client_devices: 5,
                },
            ]
        );
        // Evidence needs the other side to be a Computer: the new integration's agents are not
        // linked yet, so they are no evidence for the known integration's client.
        assert_eq!(db.client_evidence(known).await.unwrap(), vec![]);
    }
);

both!(
    finish_names_created_tenants_after_the_trimmed_client_name,
    |db: Db| async move {
        let i = integration(&db, "Padded RMM").await;
        db.refresh_rmm_clients(
            i,
            &[
                company("1", "  Padded Dental  "),
                company("2", "Padded Dental"),
            ],
            T0,
        )
        .await
        .unwrap();
        let ids = client_ids(&db, i).await;
        db.set_client_links(
            &[
                (ids["1"], change(ClientLinkState::Create, None)),
                (ids["2"], change(ClientLinkState::Create, None)),
            ],
            T0,
        )
        .await
        .unwrap();
        let out = db.apply_client_links(i, "alice", at(1)).await.unwrap();
        assert_eq!(out.created_tenants.len(), 2);
        assert!(
            out.created_tenants
                .iter()
                .all(|c| c.tenant_name == "Padded Dental"),
            "{out:?}"
        );
        // One tenant, used by both: the second saw the first's name.
        assert_eq!(out.created_tenants.iter().filter(|c| !c.reused).count(), 1);
        let tenants = db.list_tenants(&TenantScope::All).await.unwrap();
        assert_eq!(
            tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            vec!["Padded Dental"]
        );
    }
);

both!(
    reserved_ids_are_never_handed_out_twice,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        let t = db.create_tenant("Acme Inc", T0).await.unwrap();
        // Rows written before any reservation: the first block starts above them.
        let before = agents(
            &db,
            i,
            &[agent("1", None, "WS-1"), agent("2", None, "WS-2")],
        )
        .await;
        let block = db.reserve_ids(IdKind::Agents, 3).await.unwrap();
        assert_eq!(block.len(), 3);
        assert!(block.iter().all(|id| *id > *before.iter().max().unwrap()));
        // Ordinary writes after the reservation take other ids, even before the block is used.
        let later = agents(&db, i, &[agent("3", None, "WS-3")]).await;
        assert!(!block.contains(&later[0]), "{block:?} {later:?}");
        let again = db.reserve_ids(IdKind::Agents, 2).await.unwrap();
        let all: HashSet<i64> = block.iter().chain(&again).chain(&later).copied().collect();
        assert_eq!(all.len(), 6, "no id twice: {block:?} {again:?} {later:?}");

        let c = db.reserve_ids(IdKind::Computers, 2).await.unwrap();
        let made = db
            .create_computers(&[computer(t.id, "PC-1", None)], T0)
            .await
            .unwrap();
        assert!(!c.contains(&made[0]));
        assert!(
            db.reserve_ids(IdKind::Computers, 0)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

both!(
    a_sync_batch_lands_whole_or_not_at_all,
    |db: Db| async move {
        let i = integration(&db, "N-central").await;
        let t = db.create_tenant("Acme Inc", T0).await.unwrap();
        db.refresh_rmm_clients(i, &[company("c1", "Acme")], T0)
            .await
            .unwrap();
        let run = db.start_sync_run(i, "devices", "test", T0).await.unwrap();
        // One agent stored before the batch, not linked yet.
        let old = agents(&db, i, &[agent("old", Some("c1"), "WS-OLD")]).await[0];

        let a = db.reserve_ids(IdKind::Agents, 2).await.unwrap();
        let c = db.reserve_ids(IdKind::Computers, 2).await.unwrap();
        let mut renamed = agent("old", Some("c1"), "WS-OLD-RENAMED");
        renamed.fingerprint = "fp-renamed".into();
        let batch = SyncBatch {
            computers: vec![
                (c[0], computer(t.id, "WS-A", Some("SN-a"))),
                (c[1], computer(t.id, "WS-OLD-RENAMED", Some("SN-old"))),
            ],
            new_agents: vec![
                (a[0], agent("a", Some("c1"), "WS-A")),
                (a[1], agent("b", Some("c1"), "WS-B")),
            ],
            changed_agents: vec![renamed],
            links: vec![
                // A new agent with a new computer, a new agent linked to it as its copy, and the
                // stored agent linked to a computer of its own.
                link(a[0], c[0], "new"),
                AgentLink {
                    clone_of: Some("[\"serial\"]".into()),
                    ..link(a[1], c[0], "serial")
                },
                link(old, c[1], "new"),
            ],
            plan_items: vec![NewPlanItem {
                external_id: "old".into(),
                agent_id: Some(old),
                action: "changed".into(),
                diffs: json!([{"field": "hostname", "from": "WS-OLD", "to": "WS-OLD-RENAMED"}]),
            }],
            reserve_agents: 5,
            reserve_computers: 4,
        };
        let out = db.write_sync_batch(i, run.id, &batch, at(1)).await.unwrap();
        // 2 computers, 2 agents, 1 changed agent, 1 link + its evidence, 2 evidence rows, 3 plan
        // items (the changed agent's, and a "new" one for each new agent without asking).
        assert_eq!(out.rows_written, 2 + 2 + 1 + 2 + 2 + 3);
        assert_eq!((out.agent_ids.len(), out.computer_ids.len()), (5, 4));
        assert!(out.agent_ids.iter().all(|id| !a.contains(id) && *id != old));
        assert!(out.computer_ids.iter().all(|id| !c.contains(id)));

        let agent_a = db.agent_by_id(a[0]).await.unwrap().unwrap();
        assert_eq!((agent_a.computer_id, agent_a.clone_of), (Some(c[0]), None));
        assert_eq!(agent_a.external_id, "a");
        let agent_b = db.agent_by_id(a[1]).await.unwrap().unwrap();
        assert_eq!(agent_b.computer_id, Some(c[0]));
        assert_eq!(agent_b.clone_of.as_deref(), Some("[\"serial\"]"));
        assert!(agent_b.rmm_client_id.is_some(), "filed under its client");
        let stored = db.agent_by_id(old).await.unwrap().unwrap();
        assert_eq!(
            (stored.hostname.as_str(), stored.computer_id),
            ("WS-OLD-RENAMED", Some(c[1]))
        );
        for (agent_id, rule) in [(a[0], "new"), (a[1], "serial"), (old, "new")] {
            let ev = db.agent_evidence(agent_id).await.unwrap();
            assert_eq!(ev.len(), 1, "one evidence row for agent {agent_id}");
            assert_eq!(ev[0].1.rule, rule);
        }
        assert_eq!(computer_row(&db, c[0]).await.name, "WS-A");
        let items = db.plan_items(run.id, None, 0, 10).await.unwrap();
        let mut seen: Vec<(&str, Option<i64>, &str)> = items
            .iter()
            .map(|p| (p.external_id.as_str(), p.agent_id, p.action.as_str()))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("a", Some(a[0]), "new"),
                ("b", Some(a[1]), "new"),
                ("old", Some(old), "changed")
            ]
        );

        // A batch that cannot be written entirely (a link to a computer that does not exist) leaves
        // nothing behind: neither its computer nor its agent.
        let a2 = db.reserve_ids(IdKind::Agents, 1).await.unwrap();
        let c2 = db.reserve_ids(IdKind::Computers, 1).await.unwrap();
        let broken = SyncBatch {
            computers: vec![(c2[0], computer(t.id, "WS-C", None))],
            new_agents: vec![(a2[0], agent("c", Some("c1"), "WS-C"))],
            links: vec![link(a2[0], c2[0] + 1_000_000, "serial")],
            ..Default::default()
        };
        let err = db.write_sync_batch(i, run.id, &broken, at(2)).await;
        assert!(err.is_err(), "{err:?}");
        assert!(db.agent_by_id(a2[0]).await.unwrap().is_none());
        assert!(
            db.computer_by_id(c2[0], &TenantScope::All)
                .await
                .unwrap()
                .is_none()
        );

        // A new computer for a stored agent that is gone leaves no orphan computer behind.
        let c3 = db.reserve_ids(IdKind::Computers, 1).await.unwrap();
        let ghost = SyncBatch {
            computers: vec![(c3[0], computer(t.id, "WS-GHOST", None))],
            links: vec![link(424_242, c3[0], "new")],
            ..Default::default()
        };
        let err = db.write_sync_batch(i, run.id, &ghost, at(3)).await;
        assert!(matches!(err, Err(StoreError::NotFound { .. })), "{err:?}");
        assert!(
            db.computer_by_id(c3[0], &TenantScope::All)
                .await
                .unwrap()
                .is_none()
        );

        // A new agent whose external id is stored already is refused, not written twice.
        let a3 = db.reserve_ids(IdKind::Agents, 1).await.unwrap();
        let dup = SyncBatch {
            new_agents: vec![(a3[0], agent("a", Some("c1"), "WS-A"))],
            ..Default::default()
        };
        assert!(db.write_sync_batch(i, run.id, &dup, at(3)).await.is_err());
        assert!(db.agent_by_id(a3[0]).await.unwrap().is_none());
    }
);
