use super::*;
use crate::test_support::{sine_waves, small};
use crate::trainer::take_turn;
use crate::trainer::{mean_loss, train};
use burn::tensor::backend::Backend;
use trainstore_core::FileEntry;
use trainstore_core::object_store::memory::InMemory;
use trainstore_core::{Catalog, MountTable, StorageOptions};
use trainstore_testkit::golden::{
    Normalize, assert_matches_golden, copy_into, golden_dir, read_tree,
};

fn name(text: &str) -> DatasetName {
    DatasetName::new(text).expect("a name")
}

fn user(text: &str) -> UserName {
    UserName::new(text).expect("a user")
}

async fn registry(as_user: &str) -> ModelRegistry {
    let catalog = Catalog::open(Arc::new(InMemory::new()), "memory://models")
        .await
        .expect("a catalog");
    ModelRegistry::new(Arc::new(catalog), user(as_user))
}

fn lineage() -> ModelLineage {
    ModelLineage {
        training_sets: vec!["waves@v1".into()],
        base: None,
        library: "trainstore test".into(),
    }
}

/// A model trained for one epoch on sine waves, and its card.
fn one_epoch() -> (Dataset, Trained, ModelCard) {
    let data = sine_waves(60);
    let config = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let trained = train(&data, &small(), &config).expect("training");
    let card = ModelCard::new(&data, small(), config, &trained, lineage());
    (data, trained, card)
}

/// What a trainer answers for `trained`, described by `card`.
fn artifact(trained: &Trained, card: &ModelCard) -> ModelArtifact {
    let weights = Weights::of(&trained.model).expect("weights");
    card.clone().into_artifact(&weights).expect("an artifact")
}

#[tokio::test]
async fn an_artifact_without_a_readable_card_is_refused_and_stores_nothing() {
    let (_, trained, card) = one_epoch();
    let models = registry("alice").await;
    let mut later = artifact(&trained, &card);
    later.card["format"] = serde_json::json!(CARD_FORMAT + 1);
    let mut garbled = artifact(&trained, &card);
    garbled.card["normaliser"] = serde_json::json!("mean 0");
    for (bad, says) in [(later, "upgrade"), (garbled, "normaliser")] {
        let text = models
            .register(&name("waves"), &bad)
            .await
            .expect_err("refused")
            .to_string();
        assert!(text.contains("model card") && text.contains(says), "{text}");
    }
    assert!(
        models
            .list(&name("waves"))
            .await
            .expect("a listing")
            .is_empty()
    );
}

#[tokio::test]
async fn a_registered_model_loads_back_with_the_same_weights_and_card() {
    let (data, trained, card) = one_epoch();
    let models = registry("alice").await;
    let stored = models
        .register(&name("waves"), &artifact(&trained, &card))
        .await
        .expect("registered");
    assert_eq!(stored.id(), "waves@v1");
    let got = models.get(&name("waves"), "latest").await.expect("got");
    assert_eq!(got.card, card);
    let loaded = models.load(&got).await.expect("loaded");
    let score = |m: &SeriesTransformer<Cpu>| mean_loss(m, &data, &data.validation, 32);
    assert_eq!(score(&loaded), score(&trained.model));
}

#[tokio::test]
async fn promotion_moves_an_alias_and_rollback_moves_it_back() {
    let (_, trained, card) = one_epoch();
    let models = registry("alice").await;
    let item = name("waves");
    for _ in 0..2 {
        models
            .register(&item, &artifact(&trained, &card))
            .await
            .expect("registered");
    }
    let champion = TagName::new("champion").expect("an alias");
    let text = models
        .rollback(&item, &champion)
        .await
        .expect_err("nothing to roll back")
        .to_string();
    assert!(text.contains("no earlier position"), "{text}");
    models.promote(&item, "1", &champion).await.expect("v1");
    models.promote(&item, "2", &champion).await.expect("v2");
    let now = models.get(&item, "champion").await.expect("champion");
    assert_eq!(now.version.get(), 2);
    models
        .rollback(&item, &champion)
        .await
        .expect("rolled back");
    let now = models.get(&item, "champion").await.expect("champion");
    assert_eq!(now.version.get(), 1);
    // The champion cannot be deleted; the other version can, and is no longer listed.
    assert!(models.delete(&item, "1").await.is_err());
    models.delete(&item, "2").await.expect("deleted");
    let listed: Vec<u64> = models
        .list(&item)
        .await
        .expect("listed")
        .iter()
        .map(|v| v.version.get())
        .collect();
    assert_eq!(listed, [1]);
    let actions: Vec<String> = models
        .store
        .audit_log(&item)
        .await
        .expect("the audit log")
        .into_iter()
        .filter(|e| e.allowed)
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "register", "register", "promote", "promote", "rollback", "delete"
        ]
    );
}

#[tokio::test]
async fn a_reader_cannot_register_or_promote() {
    let (_, trained, card) = one_epoch();
    let alice = registry("alice").await;
    let item = name("waves");
    alice
        .register(&item, &artifact(&trained, &card))
        .await
        .expect("registered");
    let access = trainstore_core::Access {
        everyone: Some(Permission::Read),
        users: [(user("alice"), Permission::Admin)].into(),
        set_by: None,
        set_at: None,
    };
    alice
        .store
        .set_access(&item, access, &user("alice"))
        .await
        .expect("access set");
    let bob = ModelRegistry::new(alice.store.clone(), user("bob"));
    assert!(bob.get(&item, "latest").await.is_ok());
    let refused = bob
        .register(&item, &artifact(&trained, &card))
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, Error::PermissionDenied { .. }),
        "{refused}"
    );
    let champion = TagName::new("champion").expect("an alias");
    let refused = bob
        .promote(&item, "1", &champion)
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, Error::PermissionDenied { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn a_model_versions_files_match_their_golden_copy_and_golden_files_read_back() {
    let data = sine_waves(60);
    let config = TrainConfig::default();
    let device = Default::default();
    // Untrained weights drawn from a seeded generator: the same bytes on every machine.
    let model = {
        let _turn = take_turn();
        Cpu::seed(&device, 3);
        let shapes = Shapes {
            length: data.spec().length,
            channels: data.channels(),
            horizon: data.spec().horizon,
            targets: data.target_shape().1,
        };
        let model = SeriesTransformer::<Cpu>::new(&small(), shapes, &device).expect("a model");
        // burn draws a weight when it is first used: draw them all now, in this turn.
        let zeros = burn::tensor::Tensor::zeros([1, shapes.length, shapes.channels], &device);
        let _ = model.forward(zeros);
        model
    };
    let trained = Trained {
        model,
        epochs: vec![EpochMetrics {
            epoch: 1,
            train_loss: 0.5,
            validation_loss: Some(0.25),
        }],
    };
    let card = ModelCard::new(&data, small(), config, &trained, lineage());
    let open = |dir: std::path::PathBuf| async move {
        let resolved = MountTable::default()
            .resolve_with(dir.to_str().expect("a path"), &StorageOptions::new())
            .expect("a mount");
        let catalog = Catalog::open(resolved.store, &resolved.url)
            .await
            .expect("a catalog");
        ModelRegistry::new(Arc::new(catalog), user("alice"))
    };
    let dir = tempfile::tempdir().expect("a directory");
    let models = open(dir.path().to_path_buf()).await;
    let item = name("waves");
    models
        .register(&item, &artifact(&trained, &card))
        .await
        .expect("registered");
    let champion = TagName::new("champion").expect("an alias");
    models
        .promote(&item, "1", &champion)
        .await
        .expect("promoted");
    let normalize = Normalize {
        time_keys: vec!["created_at", "set_at", "at"],
        replace: Vec::new(),
    };
    // The weights file holds burn's parameter ids, drawn afresh for every model: its bytes
    // (and so its hashes in the manifest) differ from run to run. It is kept beside the
    // golden tree, not in it, and its hashes are placeholders there, restored when it is
    // read back.
    let mut written = read_tree(dir.path(), &normalize, |path| !path.contains("/audit/"));
    let weights_path = "items/waves/data/00000000000000000000000000000000-weights.mpk";
    let weights = written.remove(weights_path).expect("the weights file");
    let placeholders = |content: &[u8]| {
        let entry = FileEntry::of(String::new(), content);
        [
            (entry.sha256, "<the weights file's sha256>"),
            (entry.xxh3.expect("kept"), "<the weights file's xxh3>"),
        ]
    };
    for (path, bytes) in written.iter_mut() {
        if path.ends_with(".json") {
            let mut text = String::from_utf8(bytes.clone()).expect("JSON is text");
            for (hash, placeholder) in placeholders(&weights) {
                text = text.replace(&hash, placeholder);
            }
            *bytes = text.into_bytes();
        }
    }
    let golden = golden_dir(env!("CARGO_MANIFEST_DIR"), "models");
    let golden_weights = golden_dir(env!("CARGO_MANIFEST_DIR"), "models-weights.mpk");
    if std::env::var_os("TRAINSTORE_BLESS").is_some() {
        std::fs::write(&golden_weights, &weights).expect("bless the weights");
    }
    assert_matches_golden(&written, &golden);

    let copy = tempfile::tempdir().expect("a directory");
    let mut pinned = read_tree(&golden, &Normalize::default(), |_| true);
    let pinned_weights = std::fs::read(&golden_weights).expect("the pinned weights");
    for (path, bytes) in pinned.iter_mut() {
        let mut text = String::from_utf8(bytes.clone()).expect("JSON is text");
        for (hash, placeholder) in placeholders(&pinned_weights) {
            text = text.replace(placeholder, &hash);
        }
        *bytes = text.into_bytes();
        assert!(
            path.ends_with(".json") || path.ends_with("_latest"),
            "{path}"
        );
    }
    pinned.insert(weights_path.to_owned(), pinned_weights);
    copy_into(&pinned, copy.path());
    let models = open(copy.path().to_path_buf()).await;
    let got = models.get(&item, "champion").await.expect("the champion");
    assert_eq!(got.card, card);
    let loaded = models.load(&got).await.expect("loaded");
    let score = |m: &SeriesTransformer<Cpu>| mean_loss(m, &data, &data.validation, 32);
    assert_eq!(score(&loaded), score(&trained.model));
}
