//! One conformance suite for every storage backend: what the catalog and every writer rely on.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use trainstore_core::{Error, MountTable, ObjectStoreRef, StorageOptions, probe_create_if_absent};

use trainstore_testkit::{Fault, FaultProxy};

use crate::support::{self, Backend};

async fn read(store: &ObjectStoreRef, path: &Path) -> bytes::Bytes {
    store.get(path).await.unwrap().bytes().await.unwrap()
}

/// Runs every check; panics on the first that fails.
async fn conformance(store: ObjectStoreRef) {
    round_trip(&store).await;
    listing(&store).await;
    create_if_absent(&store).await;
    racing_creates_have_one_winner(&store).await;
}

async fn round_trip(store: &ObjectStoreRef) {
    let path = Path::from("rt/a.bin");
    let missing = store.get(&path).await.unwrap_err();
    assert!(
        matches!(missing, object_store::Error::NotFound { .. }),
        "{missing}"
    );
    store
        .put(&path, PutPayload::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(store.head(&path).await.unwrap().size, 5);
    assert_eq!(
        store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"hello"
    );
    store
        .put(&path, PutPayload::from_static(b"bye"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"bye"
    );
    store.delete(&path).await.unwrap();
    assert!(matches!(
        store.head(&path).await.unwrap_err(),
        object_store::Error::NotFound { .. }
    ));
}

async fn listing(store: &ObjectStoreRef) {
    for name in ["ls/x/1", "ls/x/2", "ls/y", "other/z"] {
        store
            .put(&Path::from(name), PutPayload::from_static(b"."))
            .await
            .unwrap();
    }
    let mut under: Vec<String> = store
        .list(Some(&Path::from("ls")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    under.sort();
    assert_eq!(under, ["ls/x/1", "ls/x/2", "ls/y"]);
    let tree = store
        .list_with_delimiter(Some(&Path::from("ls")))
        .await
        .unwrap();
    assert_eq!(tree.common_prefixes, [Path::from("ls/x")]);
    assert_eq!(tree.objects.len(), 1);
}

async fn create_if_absent(store: &ObjectStoreRef) {
    let path = Path::from("cia/manifest.json");
    store
        .put_opts(
            &path,
            PutPayload::from_static(b"first"),
            PutMode::Create.into(),
        )
        .await
        .unwrap();
    let second = store
        .put_opts(
            &path,
            PutPayload::from_static(b"second"),
            PutMode::Create.into(),
        )
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "a second create-if-absent must fail with AlreadyExists, got {second:?}"
    );
    assert_eq!(
        store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"first"
    );
}

async fn racing_creates_have_one_winner(store: &ObjectStoreRef) {
    let path = Path::from("race/1.json");
    let tasks: Vec<_> = (0..12u8)
        .map(|i| {
            let store = Arc::clone(store);
            let path = path.clone();
            tokio::spawn(async move {
                store
                    .put_opts(&path, PutPayload::from(vec![i; 64]), PutMode::Create.into())
                    .await
                    .map(|_| i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error in racing creates: {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one racing create must win, got {winners:?}"
    );
    let content = read(store, &path).await;
    assert_eq!(
        content.as_ref(),
        vec![winners[0]; 64],
        "the winner's content must be what is stored"
    );
}

async fn check(backend: Backend) {
    let store = backend.store();
    probe_create_if_absent(store.as_ref(), &Path::from("probe"), &backend.url)
        .await
        .unwrap();
    conformance(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_conforms() {
    check(support::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_directory_conforms() {
    check(support::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_conforms() {
    check(support::s3().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_conforms_through_a_named_mount() {
    let backend = support::s3().await;
    let mut mounts = MountTable::default();
    mounts
        .add("lake", &backend.url, backend.options.clone())
        .unwrap();
    let resolved = mounts.resolve("mount://lake/sub/dir").unwrap();
    assert_eq!(resolved.url, format!("{}/sub/dir", backend.url));
    conformance(resolved.store.clone()).await;
    // The mount's subdirectory is really under the bucket root.
    let root = backend.store();
    assert!(
        root.head(&Path::from("sub/dir/cia/manifest.json"))
            .await
            .is_ok()
    );
}

/// The suite must catch a store whose create-if-absent overwrites: run it and see it fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_fails_on_stores_that_ignore_create_if_absent() {
    for backend in [support::memory(), support::local(), support::s3().await] {
        let broken = support::ignores_create(backend.store());
        let probe =
            probe_create_if_absent(broken.as_ref(), &Path::from("probe"), &backend.url).await;
        assert!(
            matches!(probe, Err(Error::UnsupportedStore { .. })),
            "{probe:?}"
        );
        let suite = tokio::spawn(conformance(broken)).await;
        assert!(
            suite.unwrap_err().is_panic(),
            "the suite passed a broken store at {}",
            backend.url
        );
    }
}

/// S3 with conditional put switched off is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_with_conditional_put_disabled_is_refused() {
    let backend = support::s3().await;
    let options = backend
        .options
        .clone()
        .with("aws_conditional_put", "disabled");
    let store = MountTable::default()
        .resolve_with(&backend.url, &options)
        .unwrap()
        .store;
    let err = probe_create_if_absent(store.as_ref(), &Path::from("probe"), &backend.url)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedStore { .. }), "{err}");
    assert!(err.to_string().contains("create-if-absent"), "{err}");
    let suite = tokio::spawn(conformance(store)).await;
    assert!(suite.unwrap_err().is_panic());
}

#[test]
fn local_paths_and_mounts_resolve_to_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut mounts = MountTable::default();
    mounts
        .add("pvc", dir.path().to_str().unwrap(), StorageOptions::new())
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = mounts.resolve("mount://pvc/ws").unwrap().store;
        a.put(&Path::from("f"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        let b = mounts
            .resolve(dir.path().join("ws").to_str().unwrap())
            .unwrap()
            .store;
        assert_eq!(
            b.get(&Path::from("f"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            b"x"
        );
    });
    assert!(dir.path().join("ws/f").exists());
}

/// An S3 server that accepts connections and never answers fails a request in seconds, with
/// an error naming it: the `timeout` option bounds each try, and retries stop within a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_s3_fails_in_seconds_naming_the_endpoint() {
    let backend = support::s3().await;
    let moto: std::net::SocketAddr = support::s3_endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(moto, Fault::Stall { after: 0 }).await;
    let options = backend
        .options
        .clone()
        .with("aws_endpoint", format!("http://{}", proxy.addr()))
        .with("timeout", "1 second");
    let store = MountTable::default()
        .resolve_with(&backend.url, &options)
        .unwrap()
        .store;
    let started = std::time::Instant::now();
    let err = store.get(&Path::from("anything")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "{elapsed:?}: {err}"
    );
    let text = format!("{err}");
    assert!(text.contains(&proxy.addr().to_string()), "{text}");
    assert!(proxy.accepted() >= 2, "retried: {}", proxy.accepted());
}
