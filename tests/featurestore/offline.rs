//! The offline store: ingested ranges answer historical requests exactly as the source did
//! (ties included), whatever the source says since; requests beyond them, or under a changed
//! view, go to the source; overlapping ingests are refused.

use trainstore_core::VersionStore as _;
use trainstore_core::{Error, Timestamp};
use trainstore_featurestore::{FeatureRef, HistoricalOptions, Ttl};

use crate::support::*;

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

/// What the answer says view `basic` was read from.
fn read_from(answer: &arrow::array::RecordBatch) -> String {
    let schema = answer.schema();
    let sources = &schema.metadata()[trainstore_featurestore::SOURCES_METADATA];
    let sources: serde_json::Value = serde_json::from_str(sources).unwrap();
    sources["basic"].as_str().unwrap().to_owned()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

#[tokio::test]
async fn ingested_ranges_answer_like_the_source_and_without_it() {
    let f = Fixture::new().await;
    let mut rows = Vec::new();
    for day in 0..20 {
        rows.push(row("A", "1", T0 + day * DAY, day as f64));
        rows.push(row("B", "2", T0 + day * DAY + 7, 100.0 + day as f64));
    }
    // A full tie: the later row in the source wins, and must still win once sorted.
    rows.push(row("A", "1", T0 + 5 * DAY, 55.0));
    rows.push(row("A", "1", T0 + 5 * DAY, 56.0));
    let location = f.write("basic", feature_table(&rows)).await;
    f.apply_with_device(vec![view("basic", &location, Ttl::days(3))])
        .await;
    let entities = entity_rows(&[
        (Some("A"), "1", T0 + 5 * DAY),
        (Some("A"), "1", T0 + 9 * DAY + 1),
        (Some("B"), "2", T0 + 12 * DAY),
        (Some("B"), "2", T0 + 12 * DAY),
        (Some("Z"), "1", T0 + 12 * DAY),
    ]);
    let request: Vec<FeatureRef> = vec!["basic:x".parse().unwrap(), "basic:arr".parse().unwrap()];
    let get = |rows| {
        let store = f.store.clone();
        let request = request.clone();
        async move {
            store
                .get_historical_features(&rows, &request, &HistoricalOptions::default())
                .await
        }
    };
    let from_source = get(entities.clone()).await.unwrap();
    assert_eq!(floats(&from_source, "x")[0], Some(56.0));

    let basic = name("basic");
    let first = f
        .store
        .ingest(&basic, ts(T0), ts(T0 + 10 * DAY - 1))
        .await
        .unwrap();
    assert_eq!((first.rows, first.segments), (22, 1));
    let second = f
        .store
        .ingest(&basic, ts(T0 + 10 * DAY), ts(T0 + 30 * DAY))
        .await
        .unwrap();
    assert_eq!((second.rows, second.segments, second.version), (20, 2, 2));
    let overlap = f
        .store
        .ingest(&basic, ts(T0 + 29 * DAY), ts(T0 + 40 * DAY))
        .await
        .unwrap_err();
    assert!(matches!(overlap, Error::InvalidInput { .. }), "{overlap}");

    // The source now says otherwise: answers in the ingested span still come from the store.
    let changed: Vec<FeatureRow> = rows
        .iter()
        .map(|r| FeatureRow {
            x: r.x.map(|x| x + 1000.0),
            ..r.clone()
        })
        .collect();
    f.write("basic", feature_table(&changed)).await;
    let from_store = get(entities.clone()).await.unwrap();
    assert_eq!(from_store.columns(), from_source.columns());
    // The answer names what it was read from, for training-set lineage.
    assert_eq!(read_from(&from_store), "offline store offline-basic@v2");
    assert!(read_from(&from_source).starts_with("Parquet files at"));

    // Before the ingested ranges, the source answers.
    let early = get(entity_rows(&[(Some("A"), "1", T0 + DAY)]))
        .await
        .unwrap();
    assert_eq!(floats(&early, "x"), [Some(1001.0)]);

    // A changed view no longer matches what was ingested: the source answers.
    f.store
        .apply(vec![view("basic", &location, Ttl::days(4)).into()])
        .await
        .unwrap();
    let out = get(entities).await.unwrap();
    assert_eq!(floats(&out, "x")[0], Some(1056.0));
}

#[tokio::test]
async fn a_workspace_recreated_in_place_answers_from_its_own_segments() {
    let mut f = Fixture::new().await;
    let entities = entity_rows(&[(Some("A"), "1", T0 + DAY)]);
    let request: Vec<FeatureRef> = vec!["basic:x".parse().unwrap()];
    for value in [1.0, 2.0] {
        // The same place, view and version each time; only the data differs.
        let location = f
            .write("basic", feature_table(&[row("A", "1", T0, value)]))
            .await;
        f.apply_with_device(vec![view("basic", &location, Ttl::days(3))])
            .await;
        let ingested = f
            .store
            .ingest(&name("basic"), ts(T0 - 10 * DAY), ts(T0 + 10 * DAY))
            .await;
        assert_eq!(ingested.unwrap().version.to_string(), "1");
        let out = f
            .store
            .get_historical_features(&entities, &request, &HistoricalOptions::default())
            .await
            .unwrap();
        assert_eq!(read_from(&out), "offline store offline-basic@v1");
        assert_eq!(
            floats(&out, "x"),
            [Some(value)],
            "served from this workspace's segments"
        );
        std::fs::remove_dir_all(f.dir.path().join("ws")).unwrap();
        f.store = Fixture::open_store(&f.dir).await;
    }
}

/// Values edited inside a segment, keeping its size, are found by the recorded hash instead of
/// being served.
#[tokio::test]
async fn an_edited_segment_is_refused_naming_the_file() {
    let rows: Vec<_> = (0..50)
        .map(|i| row("A", "1", T0 + i * DAY, 1000.0 + i as f64))
        .collect();
    let f = with_basic_view(&rows, Ttl::days(3)).await;
    f.store
        .ingest(&name("basic"), ts(T0), ts(T0 + 60 * DAY))
        .await
        .unwrap();
    // Flip the bytes of one f64 value (1049.0) in place.
    let segment = walk(f.dir.path())
        .into_iter()
        .find(|p| p.to_string_lossy().contains("offline-basic/data/"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    let value = 1049.0f64.to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == value)
        .expect("the value is stored raw");
    bytes[at..at + 8].copy_from_slice(&9999.0f64.to_le_bytes());
    std::fs::write(&segment, &bytes).unwrap();

    let entities = entity_rows(&[(Some("A"), "1", T0 + 49 * DAY)]);
    let e = f
        .store
        .get_historical_features(
            &entities,
            &["basic:x".parse().unwrap()],
            &HistoricalOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    let file_name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(e.to_string().contains(&file_name), "{e}");
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A feature store of its own on the fixture's workspace, as another process would open it.
async fn another_writer(f: &Fixture, who: &str) -> trainstore_featurestore::FeatureStore {
    use trainstore_core::{Catalog, MountTable, StorageOptions, UserName};
    let location = f.dir.path().join("ws").to_str().unwrap().to_owned();
    let resolved = MountTable::default()
        .resolve_with(&location, &StorageOptions::new())
        .unwrap();
    let catalog = Catalog::open(resolved.store, &resolved.url).await.unwrap();
    trainstore_featurestore::FeatureStore::new(
        catalog,
        crate::support::sources(),
        UserName::new(who).unwrap(),
    )
}

/// Parallel ingests of different ranges into one view all land, each re-planned on the
/// others' segments; overlapping ones are refused and leave no files behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_ingests_all_land_and_failures_leave_nothing() {
    const HOUR: i64 = 3_600_000;
    let rows: Vec<_> = (0..8 * 60)
        .map(|i| row("A", "1", T0 + i * 60_000, i as f64))
        .collect();
    let f = with_basic_view(&rows, Ttl::days(3)).await;
    let mut tasks = Vec::new();
    for hour in 0..8 {
        let store = another_writer(&f, &format!("writer{hour}")).await;
        tasks.push(tokio::spawn(async move {
            let start = T0 + hour * HOUR;
            store
                .ingest(&name("basic"), ts(start), ts(start + HOUR - 1))
                .await
        }));
    }
    for t in tasks {
        let done = t.await.unwrap().unwrap();
        assert_eq!(done.rows, 60);
    }
    let catalog = f.store.registry().catalog();
    let item = trainstore_core::DatasetName::new("offline-basic").unwrap();
    let latest = catalog.latest(&item).await.unwrap().unwrap();
    assert_eq!((latest.version.get(), latest.files.len()), (8, 8));

    // Two writers race for one range: one wins, the other is refused and cleans up.
    let mut tasks = Vec::new();
    for who in ["first", "second"] {
        let store = another_writer(&f, who).await;
        tasks.push(tokio::spawn(async move {
            store
                .ingest(&name("basic"), ts(T0 + 20 * HOUR), ts(T0 + 21 * HOUR))
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    let refused = outcomes.into_iter().find_map(|o| o.err()).unwrap();
    assert!(refused.to_string().contains("overlaps"), "{refused}");
    let left = catalog
        .unlisted_files(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// An entity's keys changed after an ingest: the segments, sorted and keyed by the old keys,
/// no longer answer; the source does.
#[tokio::test]
async fn segments_keyed_by_old_join_keys_are_not_used() {
    let rows = vec![row("A", "1", T0, 1.0), row("A", "2", T0 + 1, 2.0)];
    let f = with_basic_view(&rows, Ttl::days(3)).await;
    f.store
        .ingest(&name("basic"), ts(T0 - 5 * DAY), ts(T0 + DAY))
        .await
        .unwrap();
    let entities = entity_rows(&[(Some("A"), "1", T0 + 10)]);
    let request: Vec<FeatureRef> = vec!["basic:x".parse().unwrap()];
    let answer = f
        .store
        .get_historical_features(&entities, &request, &HistoricalOptions::default())
        .await
        .unwrap();
    assert!(
        read_from(&answer).starts_with("offline store"),
        "{}",
        read_from(&answer)
    );

    let mut by_uuid = device();
    by_uuid.join_keys = vec!["uuid".into()];
    f.store.apply(vec![by_uuid.into()]).await.unwrap();
    let keyed = arrow::array::RecordBatch::try_from_iter([
        (
            "uuid",
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["A"])) as _,
        ),
        (
            "event_timestamp",
            entities.column_by_name("event_timestamp").unwrap().clone(),
        ),
    ])
    .unwrap();
    let answer = f
        .store
        .get_historical_features(&keyed, &request, &HistoricalOptions::default())
        .await
        .unwrap();
    assert!(
        !read_from(&answer).starts_with("offline store"),
        "{}",
        read_from(&answer)
    );
    assert_eq!(
        floats(&answer, "x"),
        [Some(2.0)],
        "the latest row of uuid A, any nodeId"
    );
}
