//! Test backends (memory, local directory, S3 on loopback) and deliberately broken stores.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use trainstore_core::{MountTable, ObjectStoreRef, StorageOptions};

/// A place to run a test: its URL and the options to open it with.
pub struct Backend {
    pub url: String,
    pub options: StorageOptions,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub fn store(&self) -> ObjectStoreRef {
        MountTable::default()
            .resolve_with(&self.url, &self.options)
            .expect("backend resolves")
            .store
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

pub fn memory() -> Backend {
    Backend {
        url: format!("memory://{}/root", unique("mem")),
        options: StorageOptions::new(),
        _dir: None,
    }
}

pub fn local() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    Backend {
        url: url::Url::from_directory_path(dir.path())
            .unwrap()
            .to_string(),
        options: StorageOptions::new(),
        _dir: Some(dir),
    }
}

pub fn s3_endpoint() -> String {
    std::env::var("TRAINSTORE_TEST_S3_ENDPOINT").expect(
        "TRAINSTORE_TEST_S3_ENDPOINT is not set: run `eval \"$(scripts/test-services)\"` first",
    )
}

pub fn s3_options() -> StorageOptions {
    StorageOptions::new()
        .with("aws_endpoint", s3_endpoint())
        .with("aws_access_key_id", "testing")
        .with("aws_secret_access_key", "testing")
        .with("aws_region", "us-east-1")
}

/// A fresh bucket on the loopback S3 server.
pub async fn s3() -> Backend {
    let bucket = unique("ts-test");
    trainstore_testkit::create_bucket(&s3_endpoint(), &bucket).await;
    Backend {
        url: format!("s3://{bucket}/root"),
        options: s3_options(),
        _dir: None,
    }
}

/// A store whose create-if-absent silently overwrites, like a gateway that ignores
/// `If-None-Match`: what every versioned write must detect and refuse.
#[derive(Debug)]
pub struct IgnoresCreate(pub ObjectStoreRef);

impl fmt::Display for IgnoresCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IgnoresCreate({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for IgnoresCreate {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        opts.mode = PutMode::Overwrite;
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

pub fn ignores_create(inner: ObjectStoreRef) -> ObjectStoreRef {
    Arc::new(IgnoresCreate(inner))
}

/// What [`FaultyWrites`] does to a write it matches.
#[derive(Debug, Clone, Copy)]
pub enum WriteFault {
    /// Fails the write, storing nothing, as a connection cut before the upload completed.
    Drop,
    /// Stores the bytes with one flipped and reports success, as a faulty disk or gateway.
    Corrupt,
}

/// A store whose writes to paths containing `matching` are dropped or corrupted.
#[derive(Debug)]
pub struct FaultyWrites {
    pub inner: ObjectStoreRef,
    pub matching: &'static str,
    pub fault: WriteFault,
}

impl fmt::Display for FaultyWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyWrites({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyWrites {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if !location.as_ref().contains(self.matching) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        match self.fault {
            WriteFault::Drop => Err(object_store::Error::Generic {
                store: "faulty",
                source: "the write was dropped".into(),
            }),
            WriteFault::Corrupt => {
                let mut bytes: Vec<u8> = payload.iter().flat_map(|b| b.to_vec()).collect();
                if let Some(first) = bytes.first_mut() {
                    *first ^= 0x20;
                }
                self.inner.put_opts(location, bytes.into(), opts).await
            }
        }
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
