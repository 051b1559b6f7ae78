//! Training sets shared by several users of one catalog: permissions enforced on every
//! operation and recorded when refused, leases excluding other writers, drafts seen only by
//! their owner, deletion and retention, and what gc and fsck make of them.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use tempfile::TempDir;
use trainstore_core::{
    DatasetName, Error, NoProgress, Permission, TagName, UserName, VersionStore,
};
use trainstore_featurestore::training::lifecycle::Retention;
use trainstore_featurestore::training::sharing::Grantee;
use trainstore_featurestore::training::{CreateOptions, TrainingSets};

/// One catalog in `dir`, and a handle on it per user.
struct Team {
    store: Arc<dyn VersionStore>,
}

impl Team {
    async fn in_dir(dir: &TempDir) -> Self {
        let catalog = crate::support::catalog_in(&dir.path().join("sets")).await;
        Team {
            store: Arc::new(catalog),
        }
    }

    fn user(&self, name: &str) -> TrainingSets {
        TrainingSets::new(self.store.clone(), UserName::new(name).unwrap())
    }
}

fn name() -> DatasetName {
    DatasetName::new("vibration").unwrap()
}

fn rows(values: std::ops::Range<i32>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Float64Array::from_iter_values(
            values.map(f64::from),
        ))],
    )
    .unwrap()
}

async fn create(sets: &TrainingSets, values: std::ops::Range<i32>) -> Result<u64, Error> {
    sets.create_from_batches(&name(), vec![rows(values)], CreateOptions::default())
        .await
        .map(|v| v.version.get())
}

fn denied(result: Result<impl std::fmt::Debug, Error>, action: &str) {
    match result {
        Err(Error::PermissionDenied { action: a, .. }) => assert_eq!(a, action),
        other => panic!("{action}: expected PermissionDenied, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reader_cannot_create_tag_alias_delete_or_grant_and_each_refusal_is_audited() {
    let dir = TempDir::new().unwrap();
    let team = Team::in_dir(&dir).await;
    let (alice, bob) = (team.user("alice"), team.user("bob"));
    assert_eq!(create(&alice, 0..10).await.unwrap(), 1);
    // Implicitly everyone may write; the first author is admin.
    assert_eq!(create(&bob, 0..20).await.unwrap(), 2);
    denied(
        bob.grant(&name(), &Grantee::Everyone, Some(Permission::Admin))
            .await,
        "set permissions",
    );
    alice
        .grant(&name(), &Grantee::Everyone, Some(Permission::Read))
        .await
        .unwrap();

    denied(create(&bob, 0..5).await, "create");
    let tag = TagName::new("paper").unwrap();
    denied(bob.tag(&name(), "v1", &tag).await, "tag");
    denied(bob.alias(&name(), "v1", &tag).await, "alias");
    denied(bob.delete(&name(), "v1").await, "delete");
    denied(bob.break_lease(&name()).await, "break lease");
    // Reading is still allowed, and nothing changed.
    assert_eq!(bob.list(&name()).await.unwrap().len(), 2);
    assert!(bob.store().tags(&name()).await.unwrap().is_empty());

    let log = alice.audit_log(&name()).await.unwrap();
    let refused: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| !e.allowed)
        .map(|e| (e.user.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            ("bob", "set permissions"),
            ("bob", "create"),
            ("bob", "tag"),
            ("bob", "alias"),
            ("bob", "delete"),
            ("bob", "break lease"),
        ]
    );
    let done: Vec<(&str, &str, Option<u64>)> = log
        .iter()
        .filter(|e| e.allowed)
        .map(|e| {
            (
                e.user.as_str(),
                e.action.as_str(),
                e.version.map(|v| v.get()),
            )
        })
        .collect();
    assert_eq!(
        done,
        [
            ("alice", "create", Some(1)),
            ("bob", "create", Some(2)),
            ("alice", "set permissions", None),
        ]
    );

    // Write granted to bob by name; nobody else may even read.
    alice
        .grant(
            &name(),
            &Grantee::User(UserName::new("bob").unwrap()),
            Some(Permission::Write),
        )
        .await
        .unwrap();
    alice
        .grant(&name(), &Grantee::Everyone, None)
        .await
        .unwrap();
    assert_eq!(create(&bob, 0..5).await.unwrap(), 3);
    denied(team.user("carol").list(&name()).await, "read");
    denied(team.user("carol").get(&name(), "v1").await, "read");
    // The last admin cannot take admin away from everyone.
    let e = alice
        .grant(
            &name(),
            &Grantee::User(UserName::new("alice").unwrap()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

#[tokio::test]
async fn a_lease_keeps_others_from_writing_until_released_broken_or_expired() {
    let dir = TempDir::new().unwrap();
    let team = Team::in_dir(&dir).await;
    let (alice, bob) = (team.user("alice"), team.user("bob"));
    create(&alice, 0..10).await.unwrap();

    let lease = bob
        .acquire_lease(&name(), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(lease.owner.as_str(), "bob");
    match create(&alice, 0..3).await {
        Err(Error::Leased { owner, .. }) => assert_eq!(owner, "bob"),
        other => panic!("expected Leased, got {other:?}"),
    }
    assert!(matches!(
        alice.acquire_lease(&name(), Duration::from_secs(1)).await,
        Err(Error::Leased { .. })
    ));
    assert_eq!(create(&bob, 0..3).await.unwrap(), 2);
    // A renewal keeps the lease's start.
    let renewed = bob
        .acquire_lease(&name(), Duration::from_secs(900))
        .await
        .unwrap();
    assert_eq!(renewed.since, lease.since);
    assert!(renewed.expires_at > lease.expires_at);

    // The admin breaks it; bob's release then finds no lease of his.
    alice.break_lease(&name()).await.unwrap();
    assert_eq!(create(&alice, 0..3).await.unwrap(), 3);
    assert!(matches!(
        bob.release_lease(&name()).await,
        Err(Error::NotFound { .. })
    ));

    // An expired lease excludes no one.
    bob.acquire_lease(&name(), Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(create(&alice, 0..3).await.unwrap(), 4);

    let actions: Vec<String> = alice
        .audit_log(&name())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action.contains("lease"))
        .map(|e| format!("{} {}", e.user, e.action))
        .collect();
    assert_eq!(
        actions,
        ["bob lease", "bob lease", "alice break lease", "bob lease"]
    );
}

#[tokio::test]
async fn a_draft_is_invisible_to_others_until_committed_and_shares_its_parents_files() {
    let dir = TempDir::new().unwrap();
    let team = Team::in_dir(&dir).await;
    let (alice, bob) = (team.user("alice"), team.user("bob"));
    create(&alice, 0..100).await.unwrap();
    let v1 = alice.get(&name(), "v1").await.unwrap();

    let mut draft = alice.draft(&name(), Some("v1")).await.unwrap();
    assert_eq!((draft.rows, draft.parent.map(|v| v.get())), (100, Some(1)));
    let more = rows(100..150);
    let stream = futures::stream::iter(vec![Ok(more.clone())]).boxed();
    alice
        .append_to_draft(&mut draft, more.schema(), stream)
        .await
        .unwrap();
    assert_eq!(draft.rows, 150);

    // Others see neither the draft nor anything of it.
    assert!(bob.drafts(&name()).await.unwrap().is_empty());
    assert!(matches!(
        bob.open_draft(&name(), &draft.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(bob.list(&name()).await.unwrap().len(), 1);
    assert_eq!(bob.get(&name(), "latest").await.unwrap().version.get(), 1);
    // gc keeps what the draft lists, however young the grace.
    assert!(alice.gc(Duration::ZERO, false).await.unwrap().is_empty());

    // Rows of another schema are refused.
    let other =
        RecordBatch::try_from_iter([("y", Arc::new(Float64Array::from(vec![1.0])) as _)]).unwrap();
    let stream = futures::stream::iter(vec![Ok(other.clone())]).boxed();
    let e = alice
        .append_to_draft(&mut draft, other.schema(), stream)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");

    let reopened = alice.open_draft(&name(), &draft.id).await.unwrap();
    assert_eq!(reopened.rows, 150);
    let v2 = alice
        .commit_draft(reopened, CreateOptions::default())
        .await
        .unwrap();
    assert_eq!((v2.version.get(), v2.info.rows), (2, 150));
    assert_eq!(v2.info.quality.data_size, 150);
    assert_eq!(v2.info.lineage.parent.map(|v| v.get()), Some(1));
    assert_eq!(
        &v2.files[..v1.files.len()],
        &v1.files[..],
        "parent files shared"
    );
    let (_, batches) = bob
        .read(&bob.get(&name(), "v2").await.unwrap())
        .await
        .unwrap();
    let xs: Vec<f64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(xs, (0..150).map(f64::from).collect::<Vec<_>>());
    assert!(alice.drafts(&name()).await.unwrap().is_empty());
    assert!(
        alice
            .fsck(Duration::ZERO, &NoProgress)
            .await
            .unwrap()
            .is_ok()
    );

    // A discarded draft's own files are collectable; its parent's stay.
    let mut draft = alice.draft(&name(), Some("v2")).await.unwrap();
    let stream = futures::stream::iter(vec![Ok(more.clone())]).boxed();
    alice
        .append_to_draft(&mut draft, more.schema(), stream)
        .await
        .unwrap();
    let own: Vec<String> = draft_files(&alice, &draft.id).await;
    alice.discard_draft(draft).await.unwrap();
    let collected: Vec<String> = alice
        .gc(Duration::ZERO, false)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(collected, own);
    assert!(
        alice
            .fsck(Duration::ZERO, &NoProgress)
            .await
            .unwrap()
            .is_ok()
    );
}

/// The files a draft wrote itself (not its parent's).
async fn draft_files(sets: &TrainingSets, id: &str) -> Vec<String> {
    let draft = sets.store().drafts(&name(), sets.user()).await.unwrap();
    let draft = draft.into_iter().find(|d| d.id == id).unwrap();
    let parent = draft.parent.unwrap();
    let parent_files = sets.store().get(&name(), parent).await.unwrap().files;
    draft
        .files
        .into_iter()
        .filter(|f| !parent_files.contains(f))
        .map(|f| f.path)
        .collect()
}

#[tokio::test]
async fn deleted_and_retired_versions_vanish_but_named_ones_stay() {
    let dir = TempDir::new().unwrap();
    let team = Team::in_dir(&dir).await;
    let alice = team.user("alice");
    for i in 0..5 {
        create(&alice, 0..(10 + i)).await.unwrap();
    }
    alice
        .tag(&name(), "v2", &TagName::new("paper").unwrap())
        .await
        .unwrap();
    alice
        .alias(&name(), "v3", &TagName::new("golden").unwrap())
        .await
        .unwrap();
    let e = alice.delete(&name(), "v2").await.unwrap_err();
    assert!(e.to_string().contains("tag paper"), "{e}");
    let e = alice.delete(&name(), "golden").await.unwrap_err();
    assert!(e.to_string().contains("alias golden"), "{e}");

    assert_eq!(alice.delete(&name(), "v5").await.unwrap().get(), 5);
    assert!(matches!(
        alice.delete(&name(), "v5").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        alice.get(&name(), "v5").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(alice.get(&name(), "latest").await.unwrap().version.get(), 4);

    let policy = Retention {
        keep_last: Some(1),
        keep_within: None,
    };
    let planned = alice.retain(&name(), &policy, true).await.unwrap();
    assert_eq!(planned.iter().map(|v| v.get()).collect::<Vec<_>>(), [1]);
    assert_eq!(alice.list(&name()).await.unwrap().len(), 4);
    assert_eq!(
        alice.retain(&name(), &policy, false).await.unwrap(),
        planned
    );
    let mut left: Vec<u64> = alice
        .list(&name())
        .await
        .unwrap()
        .iter()
        .map(|l| l.version.get())
        .collect();
    left.sort();
    assert_eq!(left, [2, 3, 4]);
    let keep_all = Retention {
        keep_last: None,
        keep_within: Some(Duration::from_secs(3600)),
    };
    assert!(
        alice
            .retain(&name(), &keep_all, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        alice.retain(&name(), &Retention::default(), true).await,
        Err(Error::InvalidInput { .. })
    ));

    // The deleted versions' files (and only theirs) are collected; what stays checks out.
    let collected = alice.gc(Duration::ZERO, false).await.unwrap();
    let gone: Vec<_> = [1u64, 5]
        .iter()
        .flat_map(|v| {
            futures::executor::block_on(
                alice
                    .store()
                    .get(&name(), trainstore_core::Version::new(*v).unwrap()),
            )
            .unwrap()
            .files
        })
        .map(|f| f.path)
        .collect();
    let mut collected: Vec<String> = collected.into_iter().map(|f| f.path).collect();
    collected.sort();
    let mut gone = gone;
    gone.sort();
    assert_eq!(collected, gone);
    let report = alice.fsck(Duration::ZERO, &NoProgress).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.versions, 3);
}

#[tokio::test]
async fn fsck_names_orphaned_drafts() {
    let dir = TempDir::new().unwrap();
    let team = Team::in_dir(&dir).await;
    let alice = team.user("alice");
    create(&alice, 0..10).await.unwrap();
    create(&alice, 0..20).await.unwrap();
    let on_v1 = alice.draft(&name(), Some("v1")).await.unwrap();
    let mut own = alice.draft(&name(), None).await.unwrap();
    let more = rows(0..5);
    let stream = futures::stream::iter(vec![Ok(more.clone())]).boxed();
    alice
        .append_to_draft(&mut own, more.schema(), stream)
        .await
        .unwrap();
    alice.delete(&name(), "v1").await.unwrap();
    let drafts = alice.store().drafts(&name(), alice.user()).await.unwrap();
    let file = &drafts.iter().find(|d| d.id == own.id).unwrap().files[0];
    std::fs::remove_file(dir.path().join("sets").join(&file.path)).unwrap();

    let report = alice.fsck(Duration::ZERO, &NoProgress).await.unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&on_v1.id) && p.contains("v1 was deleted"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&own.id) && p.contains("is missing"))
    );
    let e = alice
        .commit_draft(own, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::NotFound { .. } | Error::Corrupt { .. }),
        "{e}"
    );
}

#[tokio::test]
async fn a_draft_takes_rows_whose_lists_name_their_items_otherwise_and_refuses_other_types() {
    use arrow::array::{Array, ListArray};
    use arrow::datatypes::Float32Type;
    let dir = TempDir::new().unwrap();
    let alice = Team::in_dir(&dir).await.user("alice");
    // Arrow names a list's items `item`; pyarrow's Parquet files name them `element`.
    let lists = |item: &str| {
        let values = ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0)]),
            None,
        ]);
        let field = Arc::new(Field::new(item, DataType::Float32, true));
        let (_, offsets, values, nulls) = values.into_parts();
        let column = ListArray::new(field, offsets, values, nulls);
        RecordBatch::try_from_iter([("spectrum", Arc::new(column) as _)]).unwrap()
    };
    alice
        .create_from_batches(&name(), vec![lists("item")], CreateOptions::default())
        .await
        .unwrap();
    let mut draft = alice.draft(&name(), Some("v1")).await.unwrap();
    let element = lists("element");
    let stream = futures::stream::iter(vec![Ok(element.clone())]).boxed();
    alice
        .append_to_draft(&mut draft, element.schema(), stream)
        .await
        .unwrap();
    let v2 = alice
        .commit_draft(draft, CreateOptions::default())
        .await
        .unwrap();
    let (schema, batches) = alice.read(&v2).await.unwrap();
    assert_eq!(schema, lists("item").schema());
    let read: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(read, 4);
    assert_eq!(batches.last().unwrap().column(0).null_count(), 1);

    // Lists of other values are other rows: refused, naming the column.
    let doubles = RecordBatch::try_from_iter([(
        "spectrum",
        Arc::new(ListArray::from_iter_primitive::<
            arrow::datatypes::Float64Type,
            _,
            _,
        >(vec![Some(vec![Some(1.0)])])) as _,
    )])
    .unwrap();
    let mut draft = alice.draft(&name(), Some("v2")).await.unwrap();
    let stream = futures::stream::iter(vec![Ok(doubles.clone())]).boxed();
    let e = alice
        .append_to_draft(&mut draft, doubles.schema(), stream)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spectrum: List(") && e.contains("Float64"),
        "{e}"
    );
}
