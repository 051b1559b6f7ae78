//! A secret configured for an S3 mount never shows in logs, errors or `Debug` output.

use std::io::Write;
use std::sync::{Arc, Mutex};

use object_store::ObjectStoreExt;
use object_store::path::Path;
use trainstore_core::{Catalog, ConfigChain, DirConfig, EnvConfig, MountTable, StorageOptions};

use crate::support;

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_s3_secret_never_appears_in_logs_errors_or_debug() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("s3-secret"), format!("{SECRET}\n")).unwrap();

    let mut shown = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let backend = support::s3().await;
            // Once by reference to a Kubernetes-style secret file, once as a literal option.
            let config = Arc::new(ConfigChain::new(vec![
                Arc::new(EnvConfig),
                Arc::new(DirConfig::new(secrets.path())),
            ]));
            let mut mounts = MountTable::new(config);
            let by_ref = support::s3_options().with("aws_secret_access_key", "${s3-secret}");
            mounts.add("lake", &backend.url, by_ref).unwrap();
            let literal = support::s3_options().with("aws_secret_access_key", SECRET);
            mounts
                .add("literal", &backend.url, literal.clone())
                .unwrap();
            shown.push(format!("{mounts:?}"));
            shown.push(format!("{literal:?} {literal}"));

            for name in ["lake", "literal"] {
                let resolved = mounts.resolve(&format!("mount://{name}/x")).unwrap();
                shown.push(format!(
                    "{resolved:?} {:?} {}",
                    resolved.store, resolved.store
                ));
                // The wrong secret makes the server refuse; the error must still not echo it.
                let err = resolved.store.put(&Path::from("f"), "x".into()).await;
                if let Err(e) = err {
                    shown.push(format!("{e} {e:?}"));
                }
                let missing = resolved
                    .store
                    .get(&Path::from("missing"))
                    .await
                    .unwrap_err();
                shown.push(format!("{missing} {missing:?}"));
                match Catalog::open(resolved.store.clone(), &resolved.url).await {
                    Ok(c) => shown.push(format!("{c:?}")),
                    Err(e) => shown.push(format!("{e} {e:?}")),
                }
            }
            // An unreachable endpoint and an unknown option produce errors too.
            let dead = literal.clone().with("aws_endpoint", "http://127.0.0.1:9");
            let store = mounts.resolve_with(&backend.url, &dead).unwrap().store;
            let e = store.get(&Path::from("x")).await.unwrap_err();
            shown.push(format!("{e} {e:?}"));
            let bad = literal.clone().with("aws_not_an_option", SECRET);
            let e = mounts.resolve_with(&backend.url, &bad).unwrap_err();
            shown.push(format!("{e} {e:?}"));
            let missing_ref =
                StorageOptions::new().with("aws_secret_access_key", "${no-such-secret}");
            let e = mounts.resolve_with(&backend.url, &missing_ref).unwrap_err();
            shown.push(format!("{e} {e:?}"));
        });
    });
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        !logs.is_empty(),
        "expected trace output from the S3 client to check"
    );
    shown.push(logs);
    for text in &shown {
        assert!(!text.contains(SECRET), "secret leaked in: {text}");
        assert!(
            !text.contains("MDENG"),
            "part of the secret leaked in: {text}"
        );
    }
}
