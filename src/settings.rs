//! The user's settings file: named mounts and where secrets live.
//!
//! Mounts name storage roots (`mount://lake/...`), so they cannot live inside a workspace;
//! they live in a YAML file, by default `$TRAINSTORE_CONFIG`, else
//! `$XDG_CONFIG_HOME/trainstore/config.yaml`, else `~/.config/trainstore/config.yaml`:
//!
//! ```yaml
//! secrets_dir: /var/run/secrets/trainstore   # optional; one file per secret, as Kubernetes mounts them
//! mounts:
//!   lake:
//!     url: s3://bucket/prefix
//!     options:
//!       aws_endpoint: http://127.0.0.1:9000
//!       aws_secret_access_key: ${lake-secret}   # from env, the secrets directory, or this file
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trainstore_core::{
    ConfigChain, ConfigProviderRef, DirConfig, EnvConfig, Error, Mount, MountTable, Result,
    StorageOptions, YamlConfig,
};

/// The settings file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_dir: Option<PathBuf>,
    #[serde(default)]
    pub mounts: BTreeMap<String, Mount>,
}

impl Settings {
    /// Where settings are read from when no path is given.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("TRAINSTORE_CONFIG") {
            return PathBuf::from(p);
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("trainstore").join("config.yaml")
    }

    /// Reads settings from `path`; a missing file means empty settings.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => {
                return Err(Error::Config {
                    key: path.display().to_string(),
                    reason: format!("cannot read settings: {e}"),
                });
            }
        };
        serde_yaml_ng::from_str(&text).map_err(|e| Error::Config {
            key: path.display().to_string(),
            reason: format!("invalid settings: {e}"),
        })
    }

    /// Writes settings to `path` atomically (a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let fail = |e: std::io::Error| Error::Config {
            key: path.display().to_string(),
            reason: format!("cannot write settings: {e}"),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let text = serde_yaml_ng::to_string(self).expect("settings serialize");
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }

    /// The mount table these settings define; `${NAME}` references are looked up in the
    /// environment, then the secrets directory, then the settings file at `path` itself.
    pub fn mount_table(&self, path: &Path) -> Result<MountTable> {
        let mut providers: Vec<ConfigProviderRef> = vec![Arc::new(EnvConfig)];
        if let Some(dir) = &self.secrets_dir {
            providers.push(Arc::new(DirConfig::new(dir)));
        }
        if path.exists() {
            providers.push(Arc::new(YamlConfig::from_file(path)?));
        }
        let mut table = MountTable::new(Arc::new(ConfigChain::new(providers)));
        for (name, mount) in &self.mounts {
            table.add(name, &mount.url, mount.options.clone())?;
        }
        Ok(table)
    }

    /// Defines mount `name`, checking that the URL and options are usable.
    pub fn add_mount(&mut self, name: &str, url: &str, options: StorageOptions) -> Result<()> {
        MountTable::default().add(name, url, options.clone())?;
        self.mounts.insert(
            name.to_owned(),
            Mount {
                url: url.to_owned(),
                options,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_resolve_secrets_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/config.yaml");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let mut s = Settings::default();
        s.add_mount("scratch", "memory://settings-test", StorageOptions::new())
            .unwrap();
        s.save(&path).unwrap();
        let loaded = Settings::load(&path).unwrap();
        assert_eq!(loaded, s);
        assert!(
            loaded
                .mount_table(&path)
                .unwrap()
                .resolve("mount://scratch/a")
                .is_ok()
        );
        assert!(
            s.add_mount("bad name", "memory://x", StorageOptions::new())
                .is_err()
        );
        assert!(
            s.add_mount("x", "gopher://x", StorageOptions::new())
                .is_err()
        );
        std::fs::write(&path, "mounts: [").unwrap();
        assert!(Settings::load(&path).is_err());
        std::fs::write(&path, "unknown_key: 1").unwrap();
        assert!(Settings::load(&path).is_err());
    }
}
