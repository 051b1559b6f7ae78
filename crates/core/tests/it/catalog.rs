//! The versioned catalog: lifecycle, tags and aliases, integrity, and concurrent commits from
//! many tasks and many processes on memory, a local directory and S3.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use trainstore_core::VersionStore as _;
use trainstore_core::catalog::CommitMode;
use trainstore_core::{
    Catalog, DatasetName, Error, MountTable, NewVersion, NoProgress, ObjectStoreRef,
    StorageOptions, TagName, UserName, Version,
};

use crate::support::{self, Backend, FaultyWrites, WriteFault};

fn item() -> DatasetName {
    DatasetName::new("vibration").unwrap()
}

fn alice() -> UserName {
    UserName::new("alice").unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n).unwrap()
}

#[tokio::test]
async fn versions_tags_aliases_and_references() {
    let backend = support::memory();
    let catalog = Catalog::open(backend.store(), &backend.url).await.unwrap();
    assert!(catalog.latest(&item()).await.unwrap().is_none());

    let file = catalog
        .put_file(&item(), "part-0.parquet", Bytes::from_static(b"rows"))
        .await
        .unwrap();
    assert_eq!(file.size, 4);
    let mut new = NewVersion::new(alice());
    new.files.push(file.clone());
    new.metadata = serde_json::json!({"description": "first"});
    let v1 = catalog.commit(&item(), new).await.unwrap();
    assert_eq!((v1.version, v1.parent), (v(1), None));
    let v2 = catalog
        .commit(&item(), NewVersion::new(alice()))
        .await
        .unwrap();
    assert_eq!((v2.version, v2.parent), (v(2), Some(v(1))));

    assert_eq!(catalog.get(&item(), v(1)).await.unwrap(), v1);
    assert_eq!(catalog.versions_of(&item()).await.unwrap(), [v(1), v(2)]);
    assert_eq!(catalog.items().await.unwrap(), [item()]);
    assert_eq!(catalog.read_file(&file).await.unwrap().as_ref(), b"rows");
    assert!(matches!(
        catalog.get(&item(), v(3)).await,
        Err(Error::NotFound { .. })
    ));

    let stable = TagName::new("stable").unwrap();
    catalog
        .create_tag(&item(), &stable, v(1), &alice())
        .await
        .unwrap();
    let again = catalog.create_tag(&item(), &stable, v(2), &alice()).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "tags are immutable: {again:?}"
    );

    let champion = TagName::new("champion").unwrap();
    catalog
        .set_alias(&item(), &champion, v(2), &alice())
        .await
        .unwrap();
    catalog
        .set_alias(&item(), &champion, v(1), &alice())
        .await
        .unwrap();
    let history: Vec<_> = catalog
        .alias_history(&item(), &champion)
        .await
        .unwrap()
        .iter()
        .map(|a| a.version)
        .collect();
    assert_eq!(history, [v(2), v(1)]);
    assert!(matches!(
        catalog.set_alias(&item(), &stable, v(2), &alice()).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        catalog.set_alias(&item(), &champion, v(9), &alice()).await,
        Err(Error::NotFound { .. })
    ));

    for (reference, expected) in [
        ("latest", 2),
        ("v1", 1),
        ("2", 2),
        ("stable", 1),
        ("champion", 1),
    ] {
        assert_eq!(
            catalog.resolve(&item(), reference).await.unwrap(),
            v(expected),
            "{reference}"
        );
    }
    assert!(matches!(
        catalog.resolve(&item(), "nope").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        catalog.resolve(&item(), "../x").await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn a_committer_on_top_of_an_old_version_gets_a_conflict() {
    let backend = support::memory();
    let catalog = Catalog::open(backend.store(), &backend.url).await.unwrap();
    let mut first = NewVersion::new(alice());
    first.mode = CommitMode::OnTopOf(None);
    catalog.commit(&item(), first.clone()).await.unwrap();
    let err = catalog.commit(&item(), first).await.unwrap_err();
    assert!(
        matches!(err, Error::VersionConflict { version: 1, .. }),
        "{err}"
    );
    let mut second = NewVersion::new(alice());
    second.mode = CommitMode::OnTopOf(Some(v(1)));
    assert_eq!(catalog.commit(&item(), second).await.unwrap().version, v(2));
}

#[tokio::test]
async fn latest_survives_a_lost_or_stale_hint() {
    let backend = support::local();
    let store = backend.store();
    let catalog = Catalog::open(store.clone(), &backend.url).await.unwrap();
    for _ in 0..37 {
        catalog
            .commit(&item(), NewVersion::new(alice()))
            .await
            .unwrap();
    }
    let hint = Path::from("items/vibration/versions/_latest");
    store
        .put(&hint, PutPayload::from_static(b"3"))
        .await
        .unwrap();
    assert_eq!(
        catalog.latest(&item()).await.unwrap().unwrap().version,
        v(37)
    );
    store.delete(&hint).await.unwrap();
    assert_eq!(
        catalog.latest(&item()).await.unwrap().unwrap().version,
        v(37)
    );
    store
        .put(&hint, PutPayload::from_static(b"garbage"))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .commit(&item(), NewVersion::new(alice()))
            .await
            .unwrap()
            .version,
        v(38)
    );
}

#[tokio::test]
async fn verify_detects_a_tampered_file_and_a_commit_refuses_a_missing_one() {
    let backend = support::local();
    let store = backend.store();
    let catalog = Catalog::open(store.clone(), &backend.url).await.unwrap();
    let file = catalog
        .put_file(&item(), "data.bin", Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    let mut new = NewVersion::new(alice());
    new.files.push(file.clone());
    catalog.commit(&item(), new).await.unwrap();
    catalog.verify(&item(), v(1), &NoProgress).await.unwrap();

    store
        .put(
            &Path::parse(&file.path).unwrap(),
            PutPayload::from_static(b"01234x6789"),
        )
        .await
        .unwrap();
    let err = catalog
        .verify(&item(), v(1), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");
    // A read checks the quicker XXH3; an entry recorded before XXH3 was kept, its SHA-256.
    let err = catalog.read_file(&file).await.unwrap_err();
    assert!(err.to_string().contains("with xxh3"), "{err}");
    let before_xxh3 = trainstore_core::FileEntry {
        xxh3: None,
        ..file.clone()
    };
    let err = catalog.read_file(&before_xxh3).await.unwrap_err();
    assert!(err.to_string().contains("with sha256"), "{err}");

    let mut ghost = NewVersion::new(alice());
    ghost.files.push(trainstore_core::FileEntry {
        path: "items/vibration/data/none".into(),
        size: 1,
        sha256: String::new(),
        xxh3: None,
    });
    assert!(catalog.commit(&item(), ghost).await.is_err());
    assert_eq!(
        catalog.versions_of(&item()).await.unwrap(),
        [v(1)],
        "a failed commit must not add a version"
    );
}

#[tokio::test]
async fn a_corrupt_manifest_is_reported_not_hidden() {
    let backend = support::memory();
    let store = backend.store();
    let catalog = Catalog::open(store.clone(), &backend.url).await.unwrap();
    store
        .put(
            &Path::from("items/vibration/versions/00000000000000000001.json"),
            PutPayload::from_static(b"{"),
        )
        .await
        .unwrap();
    let err = catalog.latest(&item()).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

/// What each concurrent committer records, to prove none was lost or duplicated.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Mark {
    writer: String,
    seq: u32,
}

async fn commit_marks(catalog: &Catalog, writer: &str, count: u32) {
    for seq in 0..count {
        let mut new = NewVersion::new(alice());
        new.metadata = serde_json::to_value(Mark {
            writer: writer.into(),
            seq,
        })
        .unwrap();
        catalog.commit(&item(), new).await.unwrap();
    }
}

/// Versions are 1..=n without gaps, each on top of the previous, each mark exactly once.
async fn assert_contiguous(catalog: &Catalog, expected: BTreeSet<Mark>) {
    let versions = catalog.versions_of(&item()).await.unwrap();
    let n = expected.len() as u64;
    assert_eq!(
        versions,
        (1..=n).map(v).collect::<Vec<_>>(),
        "versions must be contiguous"
    );
    let mut seen = BTreeSet::new();
    for version in versions {
        let m = catalog.get(&item(), version).await.unwrap();
        assert_eq!(m.parent, (version.get() > 1).then(|| v(version.get() - 1)));
        let mark: Mark = serde_json::from_value(m.metadata).unwrap();
        assert!(seen.insert(mark.clone()), "duplicated commit {mark:?}");
    }
    assert_eq!(seen, expected, "lost commits");
    assert_eq!(
        catalog.latest(&item()).await.unwrap().unwrap().version,
        v(n)
    );
}

async fn many_tasks(backend: Backend) {
    const TASKS: u32 = 8;
    const EACH: u32 = 5;
    let catalog = Catalog::open(backend.store(), &backend.url).await.unwrap();
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let catalog = catalog.clone();
            tokio::spawn(async move { commit_marks(&catalog, &format!("task{t}"), EACH).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let expected = (0..TASKS)
        .flat_map(|t| {
            (0..EACH).map(move |seq| Mark {
                writer: format!("task{t}"),
                seq,
            })
        })
        .collect();
    assert_contiguous(&catalog, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_commit_on_memory() {
    many_tasks(support::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_commit_on_a_local_directory() {
    many_tasks(support::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_commit_on_s3() {
    many_tasks(support::s3().await).await;
}

const WORKER_ENV: &str = "TRAINSTORE_TEST_CATALOG_WORKER";

#[derive(Serialize, Deserialize)]
struct WorkerSpec {
    url: String,
    options: StorageOptions,
    writer: String,
    count: u32,
}

/// In a child process started by [`many_processes`] (which says what to do in `WORKER_ENV`):
/// commits its marks and returns `true`. In an ordinary test run: `false`, and the test goes on.
async fn commit_as_worker() -> bool {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return false;
    };
    let spec: WorkerSpec = serde_json::from_str(&spec).unwrap();
    let store = MountTable::default()
        .resolve_with(&spec.url, &spec.options)
        .unwrap()
        .store;
    let catalog = Catalog::open(store, &spec.url).await.unwrap();
    commit_marks(&catalog, &spec.writer, spec.count).await;
    true
}

/// Four processes commit five versions each to `backend`; each child runs the test named
/// `test` again, which finds its orders in the environment.
async fn many_processes(backend: Backend, test: &str) {
    const PROCESSES: u32 = 4;
    const EACH: u32 = 5;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let spec = WorkerSpec {
                url: backend.url.clone(),
                options: backend.options.clone(),
                writer: format!("process{p}"),
                count: EACH,
            };
            tokio::process::Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, serde_json::to_string(&spec).unwrap())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "worker failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the worker did not run"
        );
    }
    let catalog = Catalog::open(backend.store(), &backend.url).await.unwrap();
    let expected = (0..PROCESSES)
        .flat_map(|p| {
            (0..EACH).map(move |seq| Mark {
                writer: format!("process{p}"),
                seq,
            })
        })
        .collect();
    assert_contiguous(&catalog, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_commit_on_a_local_directory() {
    if commit_as_worker().await {
        return;
    }
    let test = "catalog::many_processes_commit_on_a_local_directory";
    many_processes(support::local(), test).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_commit_on_s3() {
    if commit_as_worker().await {
        return;
    }
    many_processes(support::s3().await, "catalog::many_processes_commit_on_s3").await;
}

/// Without create-if-absent, concurrent commits would silently overwrite each other: the
/// catalog must refuse such a store before writing anything. Opening it writes nothing, so
/// reading still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_create_if_absent_is_refused() {
    let author = UserName::new("tester").unwrap();
    let item = DatasetName::new("refused").unwrap();
    for backend in [support::memory(), support::local(), support::s3().await] {
        let broken = support::ignores_create(backend.store());
        let catalog = Catalog::open(broken.clone(), &backend.url).await.unwrap();
        assert_eq!(catalog.latest(&item).await.unwrap(), None);
        let err = catalog
            .commit(&item, NewVersion::new(author.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnsupportedStore { .. }), "{err}");
        let err = catalog
            .put_file(&item, "f", bytes::Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnsupportedStore { .. }), "{err}");
        let written: Vec<_> = broken.list(None).try_collect().await.unwrap();
        assert!(written.is_empty(), "{written:?}");
    }
    let backend = support::s3().await;
    let disabled = backend
        .options
        .clone()
        .with("aws_conditional_put", "disabled");
    let store = MountTable::default()
        .resolve_with(&backend.url, &disabled)
        .unwrap()
        .store;
    let err = Catalog::open(store, &backend.url)
        .await
        .unwrap()
        .ensure_writable()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("create-if-absent"), "{err}");
}

/// A process killed mid-probe leaves its probe file; the next writer removes it, and leaves
/// alone one that may belong to a probe still running.
#[tokio::test]
async fn probe_files_left_by_killed_processes_are_removed() {
    let backend = support::local();
    let root = url::Url::parse(&backend.url)
        .unwrap()
        .to_file_path()
        .unwrap();
    std::fs::create_dir_all(root.join("_probe")).unwrap();
    let (dead, live) = (
        root.join("_probe/probe-dead"),
        root.join("_probe/probe-live"),
    );
    std::fs::write(&dead, b"first").unwrap();
    std::fs::write(&live, b"first").unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&dead)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let catalog = Catalog::open(backend.store(), &backend.url).await.unwrap();
    let item = DatasetName::new("probed").unwrap();
    catalog
        .commit(&item, NewVersion::new(UserName::new("tester").unwrap()))
        .await
        .unwrap();
    assert!(!dead.exists());
    assert!(live.exists());
}

#[tokio::test]
async fn a_dropped_manifest_write_leaves_no_version_and_a_corrupted_file_is_caught() {
    let backend = support::local();
    let healthy = Catalog::open(backend.store(), &backend.url).await.unwrap();
    healthy.ensure_writable().await.unwrap();
    let faulty = |fault| {
        let store: ObjectStoreRef = Arc::new(FaultyWrites {
            inner: backend.store(),
            matching: "/versions/",
            fault,
        });
        Catalog::open(store, &backend.url)
    };
    let dropping = faulty(WriteFault::Drop).await.unwrap();
    let err = dropping
        .commit(&item(), NewVersion::new(alice()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err}");
    assert!(healthy.latest(&item()).await.unwrap().is_none());
    assert!(healthy.versions_of(&item()).await.unwrap().is_empty());
    let first = healthy
        .commit(&item(), NewVersion::new(alice()))
        .await
        .unwrap();
    assert_eq!(first.version, v(1), "the dropped write took no version");

    let store: ObjectStoreRef = Arc::new(FaultyWrites {
        inner: backend.store(),
        matching: "part-",
        fault: WriteFault::Corrupt,
    });
    let corrupting = Catalog::open(store, &backend.url).await.unwrap();
    let file = corrupting
        .put_file(&item(), "part-0.parquet", Bytes::from_static(b"rows"))
        .await
        .unwrap();
    let err = healthy.verify_file(&file).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn summaries_come_from_index_checkpoints_and_survive_missing_or_bad_ones() {
    let backend = support::memory();
    let store = backend.store();
    let catalog = Catalog::open(store.clone(), &backend.url).await.unwrap();
    for n in 1..=250u64 {
        let mut new = NewVersion::new(alice());
        new.summary = serde_json::json!({ "n": n });
        catalog.commit(&item(), new).await.unwrap();
    }
    let index = |upto: u64| Path::from(format!("items/vibration/index/{upto:020}.json"));
    for upto in [100, 200] {
        store.head(&index(upto)).await.unwrap();
    }
    assert!(store.head(&index(250)).await.is_err());
    let expected: Vec<u64> = (1..=250).collect();
    let listed = |summaries: Arc<trainstore_core::VersionIndex>| {
        summaries
            .iter()
            .map(|s| {
                assert_eq!(s.summary["n"], s.version.get());
                assert_eq!(s.author, alice());
                s.version.get()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(catalog.summaries(&item()).await.unwrap()), expected);

    // A checkpoint a killed committer never wrote, and one that lies: manifests answer
    // (a catalog opened afresh, since this one keeps what it read).
    let fresh = || async { Catalog::open(store.clone(), &backend.url).await.unwrap() };
    store.delete(&index(200)).await.unwrap();
    store
        .put(
            &index(100),
            PutPayload::from_static(b"{\"item\":\"vibration\",\"versions\":[]}"),
        )
        .await
        .unwrap();
    assert_eq!(
        listed(fresh().await.summaries(&item()).await.unwrap()),
        expected
    );
    store
        .put(&index(100), PutPayload::from_static(b"not json"))
        .await
        .unwrap();
    assert_eq!(
        listed(fresh().await.summaries(&item()).await.unwrap()),
        expected
    );
}

#[tokio::test]
async fn a_listing_is_shared_until_a_commit_or_deletion_changes_it() {
    let backend = support::memory();
    let catalog = Catalog::open(backend.store(), &backend.url).await.unwrap();
    let other = Catalog::open(backend.store(), &backend.url).await.unwrap();
    for _ in 0..3 {
        catalog
            .commit(&item(), NewVersion::new(alice()))
            .await
            .unwrap();
    }
    let versions = |index: &trainstore_core::VersionIndex| {
        index.iter().map(|s| s.version.get()).collect::<Vec<_>>()
    };
    let first = catalog.summaries(&item()).await.unwrap();
    let again = catalog.summaries(&item()).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "nothing changed: the same index"
    );
    assert_eq!(versions(&first), [1, 2, 3]);

    // Another process's commit and deletion are seen, and make a new index.
    other
        .commit(&item(), NewVersion::new(alice()))
        .await
        .unwrap();
    let after_commit = catalog.summaries(&item()).await.unwrap();
    assert_eq!(versions(&after_commit), [1, 2, 3, 4]);
    other
        .delete(&item(), Version::new(2).unwrap(), &alice())
        .await
        .unwrap();
    let after_delete = catalog.summaries(&item()).await.unwrap();
    assert_eq!(versions(&after_delete), [1, 3, 4]);
    assert!(!Arc::ptr_eq(&after_commit, &after_delete));
}

#[tokio::test]
async fn tags_and_aliases_of_an_item_are_listed_by_name() {
    let backend = support::memory();
    let catalog = Catalog::open(backend.store(), &backend.url).await.unwrap();
    for _ in 0..3 {
        catalog
            .commit(&item(), NewVersion::new(alice()))
            .await
            .unwrap();
    }
    let name = |s: &str| TagName::new(s).unwrap();
    catalog
        .create_tag(&item(), &name("paper"), v(1), &alice())
        .await
        .unwrap();
    catalog
        .create_tag(&item(), &name("baseline"), v(2), &alice())
        .await
        .unwrap();
    catalog
        .set_alias(&item(), &name("golden"), v(1), &alice())
        .await
        .unwrap();
    catalog
        .set_alias(&item(), &name("golden"), v(3), &alice())
        .await
        .unwrap();
    let tags: Vec<_> = catalog
        .tags(&item())
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.tag.to_string(), t.version.get()))
        .collect();
    assert_eq!(tags, [("baseline".to_owned(), 2), ("paper".to_owned(), 1)]);
    let aliases: Vec<_> = catalog
        .aliases_of(&item())
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.alias.to_string(), a.version.get()))
        .collect();
    assert_eq!(aliases, [("golden".to_owned(), 3)]);
}
