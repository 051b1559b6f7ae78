//! The registry on a real catalog: plan, apply, history, rollback, validation against the
//! source, and concurrent applies.

use trainstore_core::VersionStore as _;
use trainstore_core::{MountTable, StorageOptions, UserName, Version};
use trainstore_featurestore::{
    Change, Definitions, FeatureStore, FeatureView, Field, Ttl, ValueType,
};

use crate::support::*;

const T0: i64 = 1_700_000_000_000;

#[tokio::test]
async fn apply_plans_records_history_and_rolls_back() {
    let f = Fixture::new().await;
    let table = f.write("t", feature_table(&[row("A", "1", T0, 1.0)])).await;
    let first = f
        .store
        .apply(vec![
            device().into(),
            view("basic", &table, Ttl::days(30)).into(),
        ])
        .await
        .unwrap();
    assert_eq!(first.version, Some(Version::FIRST));
    assert_eq!(
        first.plan.summary(),
        "+ entity device, + feature view basic"
    );

    let again = f
        .store
        .apply(vec![view("basic", &table, Ttl::days(30)).into()])
        .await
        .unwrap();
    assert_eq!(
        again.version, None,
        "an unchanged definition commits nothing"
    );
    assert_eq!(again.plan.changes[0].change, Change::Unchanged);

    let plan = f
        .store
        .plan(vec![view("basic", &table, Ttl::days(7)).into()])
        .await
        .unwrap();
    assert_eq!(plan.changes[0].change, Change::Update);
    assert_eq!(
        f.store.definitions().await.unwrap().feature_views[0].ttl,
        Ttl::days(30),
        "planning changes nothing"
    );
    let second = f
        .store
        .apply(vec![view("basic", &table, Ttl::days(7)).into()])
        .await
        .unwrap();
    assert_eq!(second.version.unwrap().get(), 2);

    let history = f.store.history().await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].summary, "~ feature view basic");
    assert_eq!(history[1].author.as_str(), "tester");

    let rolled = f.store.rollback(Version::FIRST).await.unwrap();
    assert_eq!(rolled.get(), 3);
    let now = f.store.definitions().await.unwrap();
    assert_eq!(now.feature_views[0].ttl, Ttl::days(30));
    assert_eq!(now.entities.len(), 1);
}

#[tokio::test]
async fn apply_checks_views_against_their_sources() {
    let f = Fixture::new().await;
    let table = f.write("t", feature_table(&[row("A", "1", T0, 1.0)])).await;
    let error = |defs: Vec<trainstore_featurestore::Definition>| {
        let store = f.store.clone();
        async move { store.apply(defs).await.unwrap_err().to_string() }
    };

    let mut unknown_entity = view("v", &table, Ttl::days(1));
    unknown_entity.entities = vec![name("machine")];
    let e = error(vec![device().into(), unknown_entity.into()]).await;
    assert!(e.contains("unknown entity \"machine\""), "{e}");

    let mut wrong_type = view("v", &table, Ttl::days(1));
    wrong_type.schema[0] = Field::new("x", ValueType::Int64);
    let e = error(vec![device().into(), wrong_type.into()]).await;
    assert!(
        e.contains("declares x as int64") && e.contains("Float64"),
        "{e}"
    );

    let mut missing = view("v", &table, Ttl::days(1));
    missing.schema.push(Field::new("nope", ValueType::Float64));
    let e = error(vec![device().into(), missing.into()]).await;
    assert!(e.contains("\"nope\" is not a column"), "{e}");

    let e = error(vec![
        device().into(),
        view("v", &table, Ttl::days(1))
            .with_timestamp_field("nodeId")
            .into(),
    ])
    .await;
    assert!(e.contains("\"nodeId\"") && e.contains("is Utf8"), "{e}");

    let e = error(vec![device().into(), device().into()]).await;
    assert!(e.contains("defined twice"), "{e}");

    assert!(
        f.store.history().await.unwrap().is_empty(),
        "nothing was committed by failed applies"
    );

    let mut inferred = view("v", &table, Ttl::days(1));
    inferred.schema.clear();
    let applied = f
        .store
        .apply(vec![device().into(), inferred.into()])
        .await
        .unwrap();
    let fields: Vec<String> = applied.plan.result.feature_views[0]
        .schema
        .iter()
        .map(|f| format!("{}:{}", f.name, f.dtype))
        .collect();
    assert_eq!(
        fields,
        ["created:timestamp", "x:float64", "arr:list<float32>"]
    );
}

#[tokio::test]
async fn definitions_read_from_yaml_apply_like_rust_ones() {
    let f = Fixture::new().await;
    let table = f.write("t", feature_table(&[row("A", "1", T0, 1.0)])).await;
    let yaml = format!(
        "entities:\n  - {{name: device, join_keys: [uuid, nodeId]}}\nfeature_views:\n  - name: basic\n    entities: [device]\n    ttl: 30d\n    timestamp_field: ts\n    source: {{type: files, location: '{table}'}}\n    schema:\n      - {{name: x, type: float64}}\n      - {{name: arr, type: list<float32>}}\nfeature_services:\n  - {{name: model_v1, features: ['basic:x']}}\n"
    );
    let defs = Definitions::from_yaml(&yaml).unwrap();
    f.store.apply(defs.clone().into_list()).await.unwrap();
    let rust = f
        .store
        .plan(vec![
            device().into(),
            view("basic", &table, Ttl::days(30)).into(),
        ])
        .await
        .unwrap();
    assert!(rust.is_noop(), "{rust}");
    let back = f.store.definitions().await.unwrap();
    assert_eq!(back, defs);
    assert_eq!(Definitions::from_yaml(&back.to_yaml()).unwrap(), back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applies_all_land() {
    let f = Fixture::new().await;
    let table = f.write("t", feature_table(&[row("A", "1", T0, 1.0)])).await;
    f.store.apply(vec![device().into()]).await.unwrap();
    let location = f.dir.path().join("ws").to_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let location = location.clone();
        let view: FeatureView = view(&format!("view{i}"), &table, Ttl::days(1));
        tasks.push(tokio::spawn(async move {
            let resolved = MountTable::default()
                .resolve_with(&location, &StorageOptions::new())
                .unwrap();
            let catalog = trainstore_core::Catalog::open(resolved.store, &resolved.url)
                .await
                .unwrap();
            let store = FeatureStore::new(
                catalog,
                crate::support::sources(),
                UserName::new(format!("user{i}")).unwrap(),
            );
            store.apply(vec![view.into()]).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let defs = f.store.definitions().await.unwrap();
    let mut names: Vec<_> = defs
        .feature_views
        .iter()
        .map(|v| v.name.to_string())
        .collect();
    names.sort();
    let expected: Vec<String> = (0..8).map(|i| format!("view{i}")).collect();
    assert_eq!(names, expected);
    assert_eq!(f.store.history().await.unwrap().len(), 9);
}

#[tokio::test]
async fn a_state_that_cannot_be_read_still_rolls_back() {
    use trainstore_core::{DatasetName, NewVersion};
    use trainstore_featurestore::{Definition, OnDemandFeatureView, REGISTRY_ITEM};

    let f = Fixture::new().await;
    let table = f.write("t", feature_table(&[row("A", "1", T0, 1.0)])).await;
    let scaled = OnDemandFeatureView::new(name("stats"), [("scaled", "basic:x * 2")]).unwrap();
    f.store
        .apply(vec![
            device().into(),
            view("basic", &table, Ttl::days(30)).into(),
            Definition::OnDemandFeatureView(scaled),
        ])
        .await
        .unwrap();

    // A state as an older trainstore let through: 10,000 terms, which overflowed the stack of
    // every command that read it.
    let catalog = f.store.registry().catalog();
    let item = DatasetName::new(REGISTRY_ITEM).unwrap();
    let mut metadata = catalog.get(&item, Version::FIRST).await.unwrap().metadata;
    let huge = vec!["basic:x"; 10_000].join(" + ");
    metadata["definitions"]["on_demand_feature_views"][0]["features"][0]["expression"] =
        huge.into();
    let mut new = NewVersion::new(UserName::new("old").unwrap());
    new.metadata = metadata;
    catalog.commit(&item, new).await.unwrap();

    let e = f.store.definitions().await.unwrap_err().to_string();
    assert!(e.contains("at most 4096") && e.contains("rollback"), "{e}");
    assert!(e.len() < 1000, "the message is short: {e}");
    assert_eq!(f.store.history().await.unwrap().len(), 2);
    assert_eq!(f.store.rollback(Version::FIRST).await.unwrap().get(), 3);
    let defs = f.store.definitions().await.unwrap();
    assert_eq!(
        defs.on_demand_feature_views[0].features[0]
            .expression
            .to_string(),
        "(basic:x * 2)"
    );
}

#[tokio::test]
async fn names_that_cannot_name_derived_items_and_key_changes_are_checked_at_apply() {
    let f = Fixture::new().await;
    let table = f.write("t", feature_table(&[row("A", "1", T0, 1.0)])).await;
    let long = "v".repeat(121);
    let e = f
        .store
        .apply(vec![
            device().into(),
            view(&long, &table, Ttl::days(1)).into(),
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("at most 120"), "{e}");
    f.apply_with_device(vec![view(&"v".repeat(120), &table, Ttl::days(1))])
        .await;

    // The view's source has no column for the entity's new key.
    let mut renamed = device();
    renamed.join_keys = vec!["uuid".into(), "sensorId".into()];
    let e = f
        .store
        .apply(vec![renamed.into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sensorId"), "{e}");
}

#[test]
fn a_source_given_as_a_bare_path_says_what_a_source_is() {
    let text = "entities:\n  - name: device\n    join_keys: [uuid]\nfeature_views:\n  - name: v\n    entities: [device]\n    source: ./snaps\n";
    let e = trainstore_featurestore::Definitions::from_yaml(text)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("feature_views[0].source") && e.contains("line 7"),
        "{e}"
    );
    assert!(
        e.contains("`type: files` and `location`") && e.contains("snapshots:"),
        "{e}"
    );
    assert!(!e.contains("internally tagged"), "{e}");
}
