use super::*;
use crate::test_support::{sine_waves, small};
use crate::trainer::{mean_loss, train};
use trainstore_core::Catalog;
use trainstore_core::object_store::memory::InMemory;

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

#[tokio::test]
async fn a_registered_model_loads_back_with_the_same_weights_and_card() {
    let data = sine_waves(60);
    let config = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let trained = train(&data, &small(), &config).expect("training");
    let card = ModelCard::new(&data, small(), config, &trained, lineage());
    let models = registry("alice").await;
    let stored = models
        .register(&name("waves"), &trained, card.clone())
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
    let data = sine_waves(60);
    let config = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let trained = train(&data, &small(), &config).expect("training");
    let card = ModelCard::new(&data, small(), config, &trained, lineage());
    let models = registry("alice").await;
    let item = name("waves");
    for _ in 0..2 {
        models
            .register(&item, &trained, card.clone())
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
    let data = sine_waves(60);
    let config = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let trained = train(&data, &small(), &config).expect("training");
    let card = ModelCard::new(&data, small(), config, &trained, lineage());
    let alice = registry("alice").await;
    let item = name("waves");
    alice
        .register(&item, &trained, card.clone())
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
        .register(&item, &trained, card)
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
