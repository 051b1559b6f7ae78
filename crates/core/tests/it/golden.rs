//! The catalog's files, byte for byte (`tests/golden/catalog/`): manifests, the latest-version
//! hint, tags, alias positions, deletions, index checkpoints, drafts, permissions, audit
//! events and leases, as written and as read back
//! (docs/formats.md, "The catalog").

use std::collections::BTreeMap;

use bytes::Bytes;
use trainstore_core::{
    Access, AuditEvent, Catalog, DatasetName, Draft, Governance, Lease, LeaseState, MountTable,
    NewVersion, Permission, StorageOptions, TagName, Timestamp, UserName, Version, VersionStore,
};
use trainstore_testkit::golden::{
    Normalize, assert_matches_golden, copy_into, golden_dir, read_tree,
};

fn name(text: &str) -> DatasetName {
    DatasetName::new(text).unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n).unwrap()
}

async fn catalog_at(dir: &std::path::Path) -> Catalog {
    let resolved = MountTable::default()
        .resolve_with(dir.to_str().unwrap(), &StorageOptions::new())
        .unwrap();
    Catalog::open(resolved.store, &resolved.url).await.unwrap()
}

fn normalize() -> Normalize {
    Normalize {
        time_keys: vec!["created_at", "set_at", "at", "since", "expires_at"],
        replace: Vec::new(),
    }
}

#[tokio::test]
async fn the_catalogs_files_are_pinned_and_pinned_files_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_at(dir.path()).await;
    let alice = UserName::new("alice").unwrap();
    let item = name("vibration");

    let file = catalog
        .put_file(&item, "part-0.parquet", Bytes::from_static(b"rows"))
        .await
        .unwrap();
    let mut first = NewVersion::new(alice.clone());
    first.files.push(file);
    first.metadata = serde_json::json!({"description": "first", "rows": 1});
    first.summary = serde_json::json!({"rows": 1});
    catalog.commit(&item, first).await.unwrap();
    catalog
        .commit(&item, NewVersion::new(alice.clone()))
        .await
        .unwrap();
    catalog
        .commit(&item, NewVersion::new(alice.clone()))
        .await
        .unwrap();
    let stable = TagName::new("stable").unwrap();
    catalog
        .create_tag(&item, &stable, v(1), &alice)
        .await
        .unwrap();
    let golden = TagName::new("golden").unwrap();
    catalog
        .set_alias(&item, &golden, v(1), &alice)
        .await
        .unwrap();
    catalog
        .set_alias(&item, &golden, v(2), &alice)
        .await
        .unwrap();
    catalog.delete(&item, v(3), &alice).await.unwrap();
    // A draft on top of version 1, keeping its file.
    let v1_file = catalog.get(&item, v(1)).await.unwrap().files;
    let draft = Draft {
        id: "0123456789abcdef".into(),
        item: item.clone(),
        owner: alice.clone(),
        parent: Some(v(1)),
        files: v1_file,
        metadata: serde_json::json!({"rows": 1}),
        created_at: Timestamp::from_millis(0),
        updated_at: Timestamp::from_millis(0),
    };
    catalog.save_draft(&draft).await.unwrap();
    // Governance: permissions, one audit event, a lease taken and given up.
    let bob = UserName::new("bob").unwrap();
    let access = Access {
        everyone: Some(Permission::Read),
        users: [
            (alice.clone(), Permission::Admin),
            (bob.clone(), Permission::Write),
        ]
        .into(),
        set_by: None,
        set_at: None,
    };
    catalog.set_access(&item, access, &alice).await.unwrap();
    let event = AuditEvent {
        at: Timestamp::from_millis(0),
        user: bob.clone(),
        action: "create".into(),
        version: Some(v(2)),
        allowed: true,
        detail: "pinned".into(),
    };
    // Alone on an item of its own: the other operations record events too, named by their
    // times, which normalizing makes alike.
    let audited = name("audited");
    catalog.record(&audited, event.clone()).await.unwrap();
    catalog
        .acquire_lease(&item, &bob, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    catalog.release_lease(&item, &bob).await.unwrap();
    // The index is checkpointed every 100 commits; of that item only the checkpoint and the
    // last manifest are pinned.
    let busy = name("busy");
    for _ in 0..100 {
        catalog
            .commit(&busy, NewVersion::new(alice.clone()))
            .await
            .unwrap();
    }

    let keep = |path: &str| {
        !path.starts_with("_probe")
            && !path.starts_with("items/vibration/audit/")
            && (!path.starts_with("items/busy/versions/")
                || path.ends_with("_latest")
                || path.ends_with("00000000000000000100.json"))
    };
    let written = read_tree(dir.path(), &normalize(), keep);
    let pinned = golden_dir(env!("CARGO_MANIFEST_DIR"), "catalog");
    assert_matches_golden(&written, &pinned);

    // What an earlier trainstore wrote reads back: versions, files, tags, aliases, deletions.
    let old = tempfile::tempdir().unwrap();
    copy_into(
        &read_tree(&pinned, &Normalize::default(), |_| true),
        old.path(),
    );
    let catalog = catalog_at(old.path()).await;
    let v1 = catalog.get(&item, v(1)).await.unwrap();
    assert_eq!(v1.author, alice);
    assert_eq!(v1.metadata["description"], "first");
    assert_eq!(
        catalog.read_file(&v1.files[0]).await.unwrap().as_ref(),
        b"rows"
    );
    catalog.verify_file(&v1.files[0]).await.unwrap();
    assert_eq!(
        catalog.versions_of(&item).await.unwrap(),
        [v(1), v(2), v(3)]
    );
    assert_eq!(catalog.deleted(&item).await.unwrap(), [v(3)].into());
    assert_eq!(catalog.resolve(&item, "stable").await.unwrap(), v(1));
    assert_eq!(catalog.resolve(&item, "golden").await.unwrap(), v(2));
    let summaries: BTreeMap<u64, serde_json::Value> = catalog
        .summaries(&item)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.version.get(), s.summary.clone()))
        .collect();
    assert_eq!(summaries[&1], serde_json::json!({"rows": 1}));
    assert!(!summaries.contains_key(&3), "deleted");
    let drafts = catalog.drafts(&item, &alice).await.unwrap();
    assert_eq!(drafts.len(), 1);
    assert_eq!(
        (&drafts[0].id, drafts[0].parent, &drafts[0].metadata),
        (&draft.id, draft.parent, &draft.metadata)
    );
    assert_eq!(drafts[0].files[0].sha256, v1.files[0].sha256);
    let access = catalog.access(&item).await.unwrap();
    assert!(access.allows(&bob, Permission::Write) && !access.allows(&bob, Permission::Admin));
    assert_eq!(catalog.audit_log(&audited).await.unwrap(), [event]);
    assert!(matches!(
        catalog.lease(&item).await.unwrap(),
        Some(Lease {
            state: LeaseState::Released,
            ..
        })
    ));
    let checkpointed = catalog.summaries(&busy).await.unwrap();
    assert_eq!(checkpointed.len(), 100, "read from the checkpoint alone");

    // A manifest of a newer format is refused, naming the version and what to do.
    let v2 = old
        .path()
        .join("items/vibration/versions/00000000000000000002.json");
    let newer = std::fs::read_to_string(&v2)
        .unwrap()
        .replace("\"format\": 1,", "\"format\": 2,");
    std::fs::write(&v2, newer).unwrap();
    let catalog = catalog_at(old.path()).await;
    let err = catalog.get(&item, v(2)).await.unwrap_err().to_string();
    assert!(
        err.contains("vibration@v2")
            && err.contains("manifest format 2")
            && err.contains("upgrade"),
        "{err}"
    );
}
