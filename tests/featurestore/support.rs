//! A feature store in a temporary directory, and typed feature tables written as Parquet.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float32Builder, Float64Array, ListBuilder, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use tempfile::TempDir;
use trainstore_core::object_store::path::Path;
use trainstore_core::{Catalog, MountTable, StorageOptions, UserName};
use trainstore_doris::{FileFormat, SnapshotGenerator, SynthConfig, write_snapshot_file};
use trainstore_featurestore::{
    Entity, FeatureStore, FeatureView, Field as FeatureField, Name, SourceEnv, SourceSpec, Ttl,
    ValueType,
};

pub struct Fixture {
    pub dir: TempDir,
    pub store: FeatureStore,
}

/// A catalog in the directory `dir`, created if absent.
pub async fn catalog_in(dir: &std::path::Path) -> Catalog {
    std::fs::create_dir_all(dir).unwrap();
    let resolved = MountTable::default()
        .resolve_with(dir.to_str().unwrap(), &StorageOptions::new())
        .unwrap();
    Catalog::open(resolved.store, &resolved.url).await.unwrap()
}

/// Sources opened the way a workspace opens them, by the facade's factories.
pub fn sources() -> SourceEnv {
    SourceEnv {
        factories: trainstore::source_factories(),
        ..SourceEnv::default()
    }
}

pub fn name(text: &str) -> Name {
    Name::new(text).unwrap()
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        let store = Fixture::open_store(&dir).await;
        Fixture { dir, store }
    }

    /// A feature store on the workspace `ws` under `dir`, created if absent.
    pub async fn open_store(dir: &TempDir) -> FeatureStore {
        let catalog = catalog_in(&dir.path().join("ws")).await;
        FeatureStore::new(catalog, sources(), UserName::new("tester").unwrap())
    }

    /// Writes seeded snapshots in the design-document layout as `snaps/part-0.parquet`;
    /// returns the directory's location and the raw rows written.
    pub async fn write_snapshots(&self, config: SynthConfig) -> (String, Vec<RecordBatch>) {
        let raw: Vec<RecordBatch> = SnapshotGenerator::new(config)
            .unwrap()
            .batches(50)
            .collect();
        let location = self.dir.path().join("snaps");
        std::fs::create_dir_all(&location).unwrap();
        let location = location.to_str().unwrap().to_owned();
        let resolved = MountTable::default()
            .resolve_with(&location, &StorageOptions::new())
            .unwrap();
        write_snapshot_file(
            resolved.store,
            &Path::from("part-0.parquet"),
            FileFormat::Parquet,
            raw.clone(),
        )
        .await
        .unwrap();
        (location, raw)
    }

    /// Applies the entity `device` and `views`, which must be accepted.
    pub async fn apply_with_device(&self, views: Vec<FeatureView>) {
        let mut definitions = vec![device().into()];
        definitions.extend(views.into_iter().map(Into::into));
        self.store.apply(definitions).await.unwrap();
    }

    /// Writes `batch` as `<name>.parquet` and returns its location.
    pub async fn write(&self, file: &str, batch: RecordBatch) -> String {
        let location = self.dir.path().to_str().unwrap().to_owned();
        let resolved = MountTable::default()
            .resolve_with(&location, &StorageOptions::new())
            .unwrap();
        let name = format!("{file}.parquet");
        write_snapshot_file(
            resolved.store,
            &Path::from(name.as_str()),
            FileFormat::Parquet,
            [batch],
        )
        .await
        .unwrap();
        format!("{location}/{name}")
    }
}

/// One row of a typed feature table.
#[derive(Clone)]
pub struct FeatureRow {
    pub uuid: Option<&'static str>,
    pub node: &'static str,
    pub ts: i64,
    pub created: Option<i64>,
    pub x: Option<f64>,
    pub arr: Option<Vec<f32>>,
}

pub fn row(uuid: &'static str, node: &'static str, ts: i64, x: f64) -> FeatureRow {
    FeatureRow {
        uuid: Some(uuid),
        node,
        ts,
        created: None,
        x: Some(x),
        arr: Some(vec![x as f32, 1.0]),
    }
}

/// `uuid`, `nodeId`, `ts` and `created` (timestamps, ms, UTC), `x` (float64), `arr`
/// (list<float32>).
pub fn feature_table(rows: &[FeatureRow]) -> RecordBatch {
    let ts_type = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut arr = ListBuilder::new(Float32Builder::new());
    for r in rows {
        match &r.arr {
            Some(v) => {
                arr.values().append_slice(v);
                arr.append(true);
            }
            None => arr.append(false),
        }
    }
    let arr = arr.finish();
    let schema = Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, true),
        Field::new("nodeId", DataType::Utf8, false),
        Field::new("ts", ts_type.clone(), false),
        Field::new("created", ts_type, true),
        Field::new("x", DataType::Float64, true),
        Field::new("arr", arr.data_type().clone(), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.uuid).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| Some(r.node)).collect::<StringArray>()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.ts))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.created)
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
        Arc::new(rows.iter().map(|r| r.x).collect::<Float64Array>()),
        Arc::new(arr),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

pub fn device() -> Entity {
    Entity::new(name("device"), ["uuid", "nodeId"])
}

/// A view over a typed Parquet table with `ts` as its time and the given TTL.
pub fn view(view_name: &str, location: &str, ttl: Ttl) -> FeatureView {
    FeatureView::new(
        name(view_name),
        vec![name("device")],
        SourceSpec::Files {
            location: location.to_owned(),
            format: None,
            snapshots: None,
        },
        vec![
            FeatureField::new("x", ValueType::Float64),
            FeatureField::new("arr", ValueType::List(Box::new(ValueType::Float32))),
        ],
    )
    .with_timestamp_field("ts")
    .with_ttl(ttl)
}

/// Entity rows: `uuid`, `nodeId`, `event_timestamp` (ms, UTC) and a `label` carried through.
pub fn entity_rows(rows: &[(Option<&str>, &str, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, true),
        Field::new("nodeId", DataType::Utf8, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("label", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rows.iter().map(|r| r.0).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| Some(r.1)).collect::<StringArray>()),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.2))
                    .collect::<TimestampMillisecondArray>()
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from_iter_values(
                (0..rows.len()).map(|i| i as f64),
            )),
        ],
    )
    .unwrap()
}

/// Column `name` of `batch` as optional f64s.
pub fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .iter()
        .collect()
}

/// A fixture whose view `basic` (entity `device`, valid for `ttl`) reads `rows`.
pub async fn with_basic_view(rows: &[FeatureRow], ttl: Ttl) -> Fixture {
    let f = Fixture::new().await;
    let location = f.write("basic", feature_table(rows)).await;
    f.apply_with_device(vec![view("basic", &location, ttl)])
        .await;
    f
}
