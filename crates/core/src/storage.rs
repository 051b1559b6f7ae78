//! Storage mounts: named roots over `object_store`, resolved from `mount://name/path` or plain
//! URLs into an `Arc<dyn ObjectStore>` rooted at that location.
//!
//! A mount is a URL plus an option map. Local directories are what a hostPath, PVC or NFS share
//! looks like to a process, so `file://` covers all three. Option values may reference
//! configuration as `${NAME}` (see [`crate::config`]), which keeps credentials out of mount
//! definitions; sensitive options are redacted wherever a mount is shown.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{
    ConfigProviderRef, EnvConfig, Secret, expand_references, is_sensitive, redact_url,
};
use crate::error::{Error, Result};

/// Shared handle to an object store.
pub type ObjectStoreRef = Arc<dyn ObjectStore>;

/// Shared handle to a storage provider.
pub type StorageProviderRef = Arc<dyn StorageProvider>;

/// Opens object stores for the URL schemes it handles.
pub trait StorageProvider: Send + Sync + fmt::Debug {
    /// The URL schemes this provider opens, e.g. `["s3", "s3a"]`.
    fn schemes(&self) -> &'static [&'static str];

    /// A store rooted at `url` (its path included), configured by already-expanded `options`.
    fn open(&self, url: &Url, options: &BTreeMap<String, Secret>) -> Result<ObjectStoreRef>;
}

/// Options of a mount: store settings such as `aws_endpoint`, or `${NAME}` references.
/// `Debug` and `Display` redact the values of sensitive keys.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StorageOptions(BTreeMap<String, String>);

impl StorageOptions {
    /// An empty option map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one option.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// The keys whose values are secrets written out literally instead of as `${NAME}`
    /// references: what must not be saved to a settings file unasked.
    pub fn literal_secrets(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| is_sensitive(k) && !v.starts_with("${"))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Expands `${NAME}` references through `config`; values become [`Secret`]s.
    fn expand(&self, config: &ConfigProviderRef) -> Result<BTreeMap<String, Secret>> {
        self.0
            .iter()
            .map(|(k, v)| Ok((k.clone(), expand_references(v, config.as_ref())?)))
            .collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for StorageOptions {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        StorageOptions(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let shown = if is_sensitive(k) && !v.starts_with("${") {
                "***"
            } else {
                v
            };
            write!(f, "{sep}{k}={shown}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A named mount: a root URL and the options to open it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub url: String,
    #[serde(default, skip_serializing_if = "StorageOptions::is_empty")]
    pub options: StorageOptions,
}

/// A store rooted at a resolved location, with the URL it came from (safe to display: URLs
/// never carry credentials here, they live in options).
#[derive(Clone)]
pub struct ResolvedStore {
    pub store: ObjectStoreRef,
    pub url: String,
}

impl fmt::Debug for ResolvedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResolvedStore({})", self.url)
    }
}

/// The table of named mounts and the providers that open them.
///
/// ```
/// use trainstore_core::{MountTable, StorageOptions};
/// let mut mounts = MountTable::default();
/// mounts.add("scratch", "memory://scratch-doc", StorageOptions::new()).unwrap();
/// let resolved = mounts.resolve("mount://scratch/runs/1").unwrap();
/// assert_eq!(resolved.url, "memory://scratch-doc/runs/1");
/// assert!(mounts.resolve("mount://nope/x").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct MountTable {
    mounts: BTreeMap<String, Mount>,
    providers: Vec<StorageProviderRef>,
    config: ConfigProviderRef,
}

impl Default for MountTable {
    /// Local, memory and S3 providers; `${NAME}` references read the environment.
    fn default() -> Self {
        MountTable::new(Arc::new(EnvConfig))
    }
}

impl MountTable {
    /// The built-in providers (local, memory, S3) with `config` resolving references.
    pub fn new(config: ConfigProviderRef) -> Self {
        MountTable {
            mounts: BTreeMap::new(),
            providers: vec![
                Arc::new(LocalProvider),
                Arc::new(MemoryProvider),
                Arc::new(S3Provider),
            ],
            config,
        }
    }

    /// Adds a provider for more schemes; it takes precedence over earlier ones.
    pub fn register(&mut self, provider: StorageProviderRef) {
        self.providers.insert(0, provider);
    }

    /// Defines (or redefines) mount `name` at `url`.
    pub fn add(&mut self, name: &str, url: &str, options: StorageOptions) -> Result<()> {
        crate::ids::TagName::new(name).map_err(|_| {
            Error::invalid("mount name", name, "use letters, digits, '_', '-', '.'")
        })?;
        let parsed = parse_location(url)?;
        if parsed.scheme() == "mount" {
            return Err(Error::invalid(
                "mount url",
                url,
                "a mount cannot point at another mount",
            ));
        }
        self.provider_for(&parsed)?;
        self.mounts.insert(
            name.to_owned(),
            Mount {
                url: parsed.to_string(),
                options,
            },
        );
        Ok(())
    }

    /// Removes mount `name`, returning its definition.
    pub fn remove(&mut self, name: &str) -> Option<Mount> {
        self.mounts.remove(name)
    }

    /// The defined mounts by name.
    pub fn mounts(&self) -> &BTreeMap<String, Mount> {
        &self.mounts
    }

    /// Resolves `mount://name/path`, a URL or a local path to a store rooted there.
    pub fn resolve(&self, location: &str) -> Result<ResolvedStore> {
        self.resolve_with(location, &StorageOptions::new())
    }

    /// Like [`MountTable::resolve`], with extra options (they override a mount's own).
    pub fn resolve_with(&self, location: &str, extra: &StorageOptions) -> Result<ResolvedStore> {
        let parsed = parse_location(location)?;
        let (url, mut options) = if parsed.scheme() == "mount" {
            let name = parsed.host_str().unwrap_or_default();
            if name.is_empty() {
                return Err(Error::invalid(
                    "mount url",
                    location,
                    "names no mount; expected mount://name/path",
                ));
            }
            let mount = self.mounts.get(name).ok_or_else(|| Error::NotFound {
                what: "mount",
                name: name.to_owned(),
            })?;
            let mut url = Url::parse(&mount.url)
                .map_err(|e| Error::invalid("mount url", &mount.url, e.to_string()))?;
            let joined = join_paths(url.path(), parsed.path());
            url.set_path(&joined);
            (url, mount.options.clone())
        } else {
            (parsed, StorageOptions::new())
        };
        options.0.extend(extra.0.clone());
        let expanded = options.expand(&self.config)?;
        let store = self.provider_for(&url)?.open(&url, &expanded)?;
        Ok(ResolvedStore {
            store,
            url: url.to_string().trim_end_matches('/').to_owned(),
        })
    }

    fn provider_for(&self, url: &Url) -> Result<&StorageProviderRef> {
        self.providers
            .iter()
            .find(|p| p.schemes().contains(&url.scheme()))
            .ok_or_else(|| {
                let known: Vec<_> = self.providers.iter().flat_map(|p| p.schemes()).collect();
                Error::invalid(
                    "storage url",
                    url.as_str(),
                    format!("unknown scheme; known: {known:?} and mount"),
                )
            })
    }
}

fn join_paths(base: &str, rest: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}/{rest}")
    }
}

/// Parses a URL, or turns a local path (relative or absolute) into a `file://` URL.
fn parse_location(location: &str) -> Result<Url> {
    if location.is_empty() {
        return Err(Error::invalid("storage location", location, "empty"));
    }
    if location.contains("://") {
        let url = Url::parse(location)
            .map_err(|e| Error::invalid("storage url", location, e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo the URL: it holds a credential.
            return Err(Error::invalid(
                "storage url",
                format!("{}://…", url.scheme()),
                "credentials do not belong in the URL; put them in options (e.g. aws_secret_access_key=${NAME})",
            ));
        }
        // Url normalises `..` away silently; a path that tries to climb is refused instead.
        if location.split(['/', '?', '#']).any(|seg| seg == "..") {
            return Err(Error::invalid(
                "storage url",
                location,
                "'..' is not allowed in a path",
            ));
        }
        return Ok(url);
    }
    let path = std::path::absolute(location)
        .map_err(|e| Error::invalid("storage location", location, e.to_string()))?;
    Url::from_file_path(&path)
        .map_err(|_| Error::invalid("storage location", location, "not a usable local path"))
}

fn unknown_options(scheme: &str, options: &BTreeMap<String, Secret>) -> Result<()> {
    match options.keys().next() {
        Some(k) => Err(Error::Config {
            key: k.clone(),
            reason: format!("{scheme} stores take no options"),
        }),
        None => Ok(()),
    }
}

fn rooted(store: ObjectStoreRef, path: &str) -> Result<ObjectStoreRef> {
    let prefix = Path::parse(path.trim_matches('/'))
        .map_err(|e| Error::invalid("storage path", path, e.to_string()))?;
    Ok(if prefix.as_ref().is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

/// The local directory a `file://` store URL names; `None` for any other store. Lets readers
/// use the file system directly (memory maps, page-by-page reads) where object-store reads
/// would fetch whole ranges.
pub fn local_dir(url: &str) -> Option<std::path::PathBuf> {
    Url::parse(url).ok()?.to_file_path().ok()
}

/// Local directories: `file:///abs/dir` (also hostPath, PVC and NFS mounts). A missing
/// directory is created by the first write into it, never by opening or reading.
#[derive(Debug)]
pub struct LocalProvider;

impl StorageProvider for LocalProvider {
    fn schemes(&self) -> &'static [&'static str] {
        &["file"]
    }

    fn open(&self, url: &Url, options: &BTreeMap<String, Secret>) -> Result<ObjectStoreRef> {
        unknown_options("file", options)?;
        let dir = url
            .to_file_path()
            .map_err(|_| Error::invalid("file url", url.as_str(), "not a local path"))?;
        if dir.is_dir() {
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| Error::storage("open", dir.display(), e))?;
            return Ok(Arc::new(store));
        }
        if dir.exists() {
            return Err(Error::invalid(
                "local directory",
                dir.display().to_string(),
                "exists and is not a directory",
            ));
        }
        // The prefix store writes through the root file system, creating directories as
        // needed; the same files as `new_with_prefix` would address once the directory exists.
        let root = Path::from_absolute_path(&dir).map_err(|e| {
            Error::invalid("local directory", dir.display().to_string(), e.to_string())
        })?;
        Ok(Arc::new(PrefixStore::new(LocalFileSystem::new(), root)))
    }
}

/// Process-wide in-memory stores: `memory://name/path`. Opening the same name twice in one
/// process gives the same store, so a workspace can be reopened.
#[derive(Debug)]
pub struct MemoryProvider;

impl StorageProvider for MemoryProvider {
    fn schemes(&self) -> &'static [&'static str] {
        &["memory"]
    }

    fn open(&self, url: &Url, options: &BTreeMap<String, Secret>) -> Result<ObjectStoreRef> {
        unknown_options("memory", options)?;
        static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
        let name = url.host_str().unwrap_or_default().to_owned();
        let store = STORES
            .get_or_init(Default::default)
            .lock()
            .expect("memory store registry poisoned")
            .entry(name)
            .or_insert_with(|| Arc::new(InMemory::new()))
            .clone();
        rooted(store, url.path())
    }
}

/// S3 and S3-compatible stores (MinIO, moto, …): `s3://bucket/prefix`.
///
/// Options are `object_store`'s S3 keys (`aws_endpoint`, `aws_access_key_id`,
/// `aws_secret_access_key`, `aws_region`, `aws_conditional_put`, …); `AWS_*` environment
/// variables fill what options leave out. An `http://` endpoint implies `aws_allow_http`.
#[derive(Debug)]
pub struct S3Provider;

impl StorageProvider for S3Provider {
    fn schemes(&self) -> &'static [&'static str] {
        &["s3", "s3a"]
    }

    fn open(&self, url: &Url, options: &BTreeMap<String, Secret>) -> Result<ObjectStoreRef> {
        install_crypto_provider();
        let bucket = url.host_str().unwrap_or_default();
        if bucket.is_empty() {
            // Else the request goes out to the endpoint's root and fails far from the cause.
            return Err(Error::invalid(
                "s3 url",
                redact_url(url.as_str()),
                "names no bucket; expected s3://bucket/prefix",
            ));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(s3_retries());
        for (key, value) in S3_TIMEOUTS {
            builder = builder.with_config(AmazonS3ConfigKey::Client(key), value);
        }
        for (key, value) in options {
            let config_key: AmazonS3ConfigKey = key.parse().map_err(|_| Error::Config {
                key: key.clone(),
                reason: "not an S3 option (see object_store's AmazonS3ConfigKey)".into(),
            })?;
            if config_key == AmazonS3ConfigKey::Region {
                check_region(key, value.expose())?;
            }
            if config_key == AmazonS3ConfigKey::Endpoint {
                check_endpoint(key, value.expose())?;
                if value.expose().starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
            }
            builder = builder.with_config(config_key, value.expose());
        }
        let store = builder.build().map_err(|e| Error::UnsupportedStore {
            url: url.to_string(),
            reason: redact(&e.to_string(), options),
        })?;
        rooted(Arc::new(store), url.path())
    }
}

/// Deadlines of every S3 request, before the options (whose `connect_timeout` and `timeout`
/// keys override them): 10 s to connect, 30 s for a request (object_store's own default).
const S3_TIMEOUTS: [(ClientConfigKey, &str); 2] = [
    (ClientConfigKey::ConnectTimeout, "10 seconds"),
    (ClientConfigKey::Timeout, "30 seconds"),
];

/// Retries of a failed S3 request: object_store's default tries for three minutes, so a store
/// that went silent would hold an operation that long; three retries within a minute.
fn s3_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    }
}

/// Refuses an endpoint that is not an `http://` or `https://` URL with a host: object_store
/// takes any text and panics when it builds the first request from it.
fn check_endpoint(key: &str, endpoint: &str) -> Result<()> {
    let usable = Url::parse(endpoint).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if usable {
        Ok(())
    } else {
        Err(Error::Config {
            key: key.to_owned(),
            reason: format!(
                "{endpoint:?} is not an http:// or https:// URL with a host \
                 (e.g. http://127.0.0.1:9000)"
            ),
        })
    }
}

/// Refuses a region that is not a plain name (`us-east-1`): it becomes part of hostnames.
fn check_region(key: &str, region: &str) -> Result<()> {
    let plain = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(Error::Config {
            key: key.to_owned(),
            reason: format!("{region:?} is not a region name (letters, digits and '-')"),
        })
    }
}

/// Removes every option value longer than 3 characters from `text`: builder errors may echo
/// what they were given.
fn redact(text: &str, options: &BTreeMap<String, Secret>) -> String {
    options
        .values()
        .filter(|v| v.expose().len() > 3)
        .fold(text.to_owned(), |t, v| t.replace(v.expose(), "***"))
}

/// reqwest is built without a bundled TLS provider (see the workspace manifest); install
/// ring's once, before the first HTTPS store is built.
fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Checks a store end to end, reporting each step: write, read back, delete, and atomic
/// create-if-absent. Used by `trainstore mounts check` and Python's `MountTable.check`.
pub async fn check_store(
    store: &dyn ObjectStore,
    url: &str,
    progress: &dyn crate::progress::Progress,
) -> Result<()> {
    progress.begin(&format!("checking {url}"), Some(4));
    let result = async {
        let path = Path::from(format!(".trainstore-check-{:016x}", rand::random::<u64>()));
        store
            .put(&path, PutPayload::from_static(b"check"))
            .await
            .map_err(|e| Error::storage("write", &path, e))?;
        progress.advance(1);
        let back = store
            .get(&path)
            .await
            .map_err(|e| Error::storage("read", &path, e))?;
        let bytes = back
            .bytes()
            .await
            .map_err(|e| Error::storage("read", &path, e))?;
        if bytes.as_ref() != b"check" {
            return Err(Error::Corrupt {
                path: path.to_string(),
                reason: "read back different bytes than written".into(),
            });
        }
        progress.advance(1);
        store
            .delete(&path)
            .await
            .map_err(|e| Error::storage("delete", &path, e))?;
        progress.advance(1);
        probe_create_if_absent(store, &Path::from(".trainstore-probe"), url).await?;
        progress.advance(1);
        Ok(())
    }
    .await;
    progress.finish();
    result
}

/// Checks that `store` really refuses to overwrite on `PutMode::Create`, which every versioned
/// write relies on. Writes one probe object under `dir`, tries to create it again, and removes it.
pub async fn probe_create_if_absent(store: &dyn ObjectStore, dir: &Path, url: &str) -> Result<()> {
    let unsupported = |reason: String| Error::UnsupportedStore {
        url: url.to_owned(),
        reason,
    };
    let nonce: u64 = rand::random();
    let probe = dir.clone().join(format!("probe-{nonce:016x}"));
    let create = PutOptions::from(PutMode::Create);
    store
        .put_opts(&probe, PutPayload::from_static(b"first"), create.clone())
        .await
        .map_err(|e| match e {
            object_store::Error::NotImplemented { .. } => {
                unsupported("it does not support create-if-absent writes (conditional put)".into())
            }
            other => Error::storage("probe write", &probe, other),
        })?;
    let second = store
        .put_opts(&probe, PutPayload::from_static(b"second"), create)
        .await;
    let _ = store.delete(&probe).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(unsupported(
            "a create-if-absent write overwrote an existing object, so concurrent commits could be lost".into(),
        )),
        Err(object_store::Error::NotImplemented { .. }) => {
            Err(unsupported("it does not support create-if-absent writes (conditional put)".into()))
        }
        Err(other) => Err(Error::storage("probe write", &probe, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_redact_sensitive_values_but_show_references() {
        let opts = StorageOptions::new()
            .with("aws_secret_access_key", "hunter2hunter2")
            .with("aws_session_token", "${TOKEN}")
            .with("aws_endpoint", "http://127.0.0.1:1");
        let shown = format!("{opts:?} {opts}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("${TOKEN}"));
        assert!(shown.contains("http://127.0.0.1:1"));
    }

    #[test]
    fn credentials_in_urls_are_refused_without_echoing_them() {
        let err = parse_location("s3://AKIA:hunter2@bucket/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("options"), "{err}");
    }

    #[test]
    fn local_paths_become_file_urls() {
        let url = parse_location("some/dir").unwrap();
        assert_eq!(url.scheme(), "file");
        assert!(url.path().ends_with("/some/dir"));
        assert!(parse_location("memory://x/../y").is_err());
    }

    #[test]
    fn a_mount_url_without_a_name_is_refused_as_such() {
        let table = MountTable::default();
        for location in ["mount://", "mount:///x"] {
            let err = table.resolve(location).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { .. })
                    && err.to_string().contains("names no mount"),
                "{location}: {err}"
            );
        }
    }

    #[test]
    fn mounts_join_their_root_with_the_path() {
        assert_eq!(join_paths("/a/", "/b/c"), "/a/b/c");
        assert_eq!(join_paths("", "/b"), "/b");
        assert_eq!(join_paths("/a", ""), "/a");
    }

    #[test]
    fn unknown_schemes_and_options_are_clear_errors() {
        let table = MountTable::default();
        let err = table.resolve("ftp://x/y").unwrap_err().to_string();
        assert!(err.contains("unknown scheme"), "{err}");
        let err = table
            .resolve_with("memory://m", &StorageOptions::new().with("x", "1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("take no options"), "{err}");
        let err = table
            .resolve_with("s3://b", &StorageOptions::new().with("aws_nonsense", "1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("aws_nonsense"), "{err}");
        for endpoint in [
            "127.0.0.1:5005",
            "localhost:9000",
            "http://",
            "ftp://h:1",
            "h p://x",
        ] {
            let err = table
                .resolve_with(
                    "s3://b/ws",
                    &StorageOptions::new().with("aws_endpoint", endpoint),
                )
                .unwrap_err()
                .to_string();
            assert!(err.contains("http:// or https:// URL"), "{endpoint}: {err}");
        }
        let err = table
            .resolve_with(
                "s3://b/ws",
                &StorageOptions::new().with("aws_region", "us east/1"),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("aws_region"), "{err}");
    }
}
