//! Configuration and secret providers: environment, a directory of files, a YAML file.
//!
//! These are the shapes Kubernetes gives a process (env vars, mounted Secrets and ConfigMaps as
//! one file per key) plus a config file for laptops. Storage options refer to values here as
//! `${NAME}`, so credentials never need to be written into a mount definition.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A value that must never be shown: its `Debug` and `Display` print `***`.
///
/// ```
/// use trainstore_core::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself; call only where it is handed to the system that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Option and parameter names whose values are never shown (matched case-insensitively as
/// substrings).
const SENSITIVE: &[&str] = &[
    "secret",
    "password",
    "token",
    "credential",
    "private",
    "session",
];

/// Whether values of the option or parameter `key` are secrets (`aws_secret_access_key`,
/// `password`, `session_token`, …).
pub fn is_sensitive(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SENSITIVE.iter().any(|s| key.contains(s))
}

/// `url` safe to show: the password and sensitive query parameters become `***`. The URL is
/// parsed, not searched, so a password holding `@` or `:` is hidden whole; text that does not
/// parse as a URL shows only its scheme.
///
/// ```
/// use trainstore_core::redact_url;
/// assert_eq!(redact_url("mysql://u:p@ss:w@rd@db:9030/x"), "mysql://u:***@db:9030/x");
/// assert_eq!(redact_url("mysql://u@db/x?password=pw&db=y"), "mysql://u@db/x?password=***&db=y");
/// assert_eq!(redact_url("not a url: hunter2"), "***");
/// ```
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once("://") {
            Some((scheme, _))
                if scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
            {
                format!("{scheme}://***")
            }
            _ => "***".to_owned(),
        };
    };
    if parsed.host().is_none() && url.contains('@') {
        // Credentials the parser did not recognise as such (`mysql:/u:pw@`).
        return format!("{}:***", parsed.scheme());
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_sensitive(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `***` is percent-encoded by the setters; show it as written.
    parsed.to_string().replace("%2A%2A%2A", "***")
}

/// Shared handle to a configuration provider.
pub type ConfigProviderRef = Arc<dyn ConfigProvider>;

/// Looks up configuration values by name. Values are returned as [`Secret`]s because the
/// provider cannot know which ones are sensitive; callers expose them only where needed.
pub trait ConfigProvider: Send + Sync + fmt::Debug {
    /// The value of `key`, or `None` when this provider does not define it.
    fn get(&self, key: &str) -> Result<Option<Secret>>;
}

/// Environment variables, looked up by exact name.
#[derive(Debug, Clone, Default)]
pub struct EnvConfig;

impl ConfigProvider for EnvConfig {
    fn get(&self, key: &str) -> Result<Option<Secret>> {
        Ok(std::env::var(key).ok().map(Secret::new))
    }
}

/// A directory holding one file per key, as Kubernetes mounts Secrets and ConfigMaps.
/// A single trailing newline is removed from the value.
#[derive(Debug, Clone)]
pub struct DirConfig {
    dir: PathBuf,
}

impl DirConfig {
    /// Keys are file names inside `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirConfig { dir: dir.into() }
    }
}

impl ConfigProvider for DirConfig {
    fn get(&self, key: &str) -> Result<Option<Secret>> {
        if key.is_empty() || key.contains(['/', '\\', '\0']) || key.starts_with('.') {
            return Err(Error::Config {
                key: key.into(),
                reason: "not a valid file name in a config directory".into(),
            });
        }
        match std::fs::read_to_string(self.dir.join(key)) {
            Ok(mut v) => {
                if v.ends_with('\n') {
                    v.pop();
                    if v.ends_with('\r') {
                        v.pop();
                    }
                }
                Ok(Some(Secret::new(v)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Config {
                key: key.into(),
                reason: format!("cannot read from {}: {e}", self.dir.display()),
            }),
        }
    }
}

/// A YAML file; dotted keys (`s3.secret`) walk nested maps. Scalars are returned as text.
#[derive(Clone)]
pub struct YamlConfig {
    source: String,
    values: BTreeMap<String, Secret>,
}

impl fmt::Debug for YamlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YamlConfig")
            .field("source", &self.source)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl YamlConfig {
    /// Reads and flattens a YAML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            key: path.display().to_string(),
            reason: format!("cannot read config file: {e}"),
        })?;
        YamlConfig::from_str(&path.display().to_string(), &text)
    }

    /// Parses YAML text; `source` names it in errors.
    pub fn from_str(source: &str, text: &str) -> Result<Self> {
        let doc: serde_yaml_ng::Value = crate::yaml::parse(text).map_err(|e| Error::Config {
            key: source.into(),
            reason: format!("invalid YAML: {e}"),
        })?;
        let mut values = BTreeMap::new();
        flatten("", &doc, &mut values);
        Ok(YamlConfig {
            source: source.into(),
            values,
        })
    }
}

fn flatten(prefix: &str, value: &serde_yaml_ng::Value, out: &mut BTreeMap<String, Secret>) {
    use serde_yaml_ng::Value;
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let k = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                flatten(&key(&k), v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_owned(), Secret::new(s.clone()));
        }
        Value::Bool(b) => {
            out.insert(prefix.to_owned(), Secret::new(b.to_string()));
        }
        Value::Number(n) => {
            out.insert(prefix.to_owned(), Secret::new(n.to_string()));
        }
        Value::Tagged(t) => flatten(prefix, &t.value, out),
        Value::Null | Value::Sequence(_) => {}
    }
}

impl ConfigProvider for YamlConfig {
    fn get(&self, key: &str) -> Result<Option<Secret>> {
        Ok(self.values.get(key).cloned())
    }
}

/// Providers asked in order; the first that defines a key wins.
#[derive(Debug, Clone, Default)]
pub struct ConfigChain(Vec<ConfigProviderRef>);

impl ConfigChain {
    /// A chain over `providers`, asked first to last.
    pub fn new(providers: Vec<ConfigProviderRef>) -> Self {
        ConfigChain(providers)
    }
}

impl ConfigProvider for ConfigChain {
    fn get(&self, key: &str) -> Result<Option<Secret>> {
        for p in &self.0 {
            if let Some(v) = p.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// Replaces every `${NAME}` in `template` with the provider's value of `NAME`; `$${` escapes.
///
/// ```
/// use trainstore_core::{expand_references, YamlConfig};
/// let cfg = YamlConfig::from_str("test", "s3: {key: abc}").unwrap();
/// assert_eq!(expand_references("k=${s3.key}", &cfg).unwrap().expose(), "k=abc");
/// assert!(expand_references("${missing}", &cfg).is_err());
/// ```
pub fn expand_references(template: &str, config: &dyn ConfigProvider) -> Result<Secret> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| Error::Config {
                key: template.chars().take(40).collect(),
                reason: "unterminated ${…} reference".into(),
            })?;
            let name = &after[..end];
            let value = config.get(name)?.ok_or_else(|| Error::Config {
                key: name.into(),
                reason: "referenced but not defined in the environment, the secrets directory or the config file".into(),
            })?;
            out.push_str(value.expose());
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Secret::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_by_structure() {
        for (url, secret) in [
            ("mysql://u:Hunter2:pw@127.0.0.1:9030/db", "Hunter2"),
            ("mysql://u:pw@SecretXyz@127.0.0.1:9030/db", "SecretXyz"),
            ("mysql://u:a%40b@h/db", "a%40b"),
            ("grpc://u:pw@h:8070?token=Tok123&x=1", "Tok123"),
            ("mysql://u:SecretXyz@h:notaport/db", "SecretXyz"),
            ("mysql:/u:SecretXyz@@", "SecretXyz"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        assert_eq!(
            redact_url("mysql://u:pw@SecretXyz@127.0.0.1:9030/db"),
            "mysql://u:***@127.0.0.1:9030/db"
        );
        assert_eq!(redact_url("grpc://h:8070"), "grpc://h:8070");
    }

    #[test]
    fn dir_config_reads_one_file_per_key_like_a_kubernetes_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s3-secret"), "abc\n").unwrap();
        let cfg = DirConfig::new(dir.path());
        assert_eq!(cfg.get("s3-secret").unwrap().unwrap().expose(), "abc");
        assert!(cfg.get("absent").unwrap().is_none());
        assert!(cfg.get("../etc/passwd").is_err());
    }

    #[test]
    fn yaml_config_flattens_nested_keys() {
        let cfg = YamlConfig::from_str("t", "a:\n  b: 1\n  c: {d: true}\nx: topsecret\n").unwrap();
        assert_eq!(cfg.get("a.b").unwrap().unwrap().expose(), "1");
        assert_eq!(cfg.get("a.c.d").unwrap().unwrap().expose(), "true");
        assert_eq!(cfg.get("x").unwrap().unwrap().expose(), "topsecret");
        assert!(format!("{cfg:?}").contains("a.b"));
        assert!(!format!("{cfg:?}").contains("topsecret"));
        assert!(YamlConfig::from_str("t", "a: [").is_err());
    }

    #[test]
    fn chain_asks_in_order() {
        let first = YamlConfig::from_str("1", "k: one").unwrap();
        let second = YamlConfig::from_str("2", "k: two\nj: two").unwrap();
        let chain = ConfigChain::new(vec![Arc::new(first), Arc::new(second)]);
        assert_eq!(chain.get("k").unwrap().unwrap().expose(), "one");
        assert_eq!(chain.get("j").unwrap().unwrap().expose(), "two");
    }

    #[test]
    fn references_expand_and_escape() {
        let cfg = YamlConfig::from_str("t", "a: 1").unwrap();
        assert_eq!(
            expand_references("x${a}y$${a}$", &cfg).unwrap().expose(),
            "x1y${a}$"
        );
        let err = expand_references("${nope}", &cfg).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        assert!(expand_references("${a", &cfg).is_err());
    }
}
