//! The user's settings file: named mounts and where secrets live.
//!
//! Mounts name storage roots (`mount://lake/...`), so they cannot live inside a workspace;
//! they live in a YAML file, by default `$TRAINSTORE_CONFIG`, else
//! `$XDG_CONFIG_HOME/trainstore/config.yaml`, else `~/.config/trainstore/config.yaml`:
//!
//! ```yaml
//! user: alice                                 # optional; who you are (see Settings::user_name)
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
    StorageOptions, UserName, YamlConfig,
};

/// The settings file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The user to act as, recorded as author and checked against permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserName>,
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

    /// Who the user is, most specific first: `explicit` (a `--user` flag, a `user=` argument),
    /// else `$TRAINSTORE_USER` (when not empty), else these settings' `user`, else the login name (`$USER`),
    /// else `anonymous`.
    pub fn user_name(&self, explicit: Option<&str>) -> Result<UserName> {
        if let Some(name) = explicit {
            return UserName::new(name);
        }
        if let Ok(name) = std::env::var("TRAINSTORE_USER")
            && !name.is_empty()
        {
            return UserName::new(name);
        }
        Ok(self.user.clone().unwrap_or_else(UserName::current))
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
        trainstore_core::yaml::parse(&text).map_err(|e| Error::Config {
            key: path.display().to_string(),
            reason: format!("invalid settings: {e}"),
        })
    }

    /// Writes settings to `path` atomically (a temporary file renamed into place), readable
    /// by the owner alone: the file may hold secrets.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;

        let fail = |e: std::io::Error| Error::Config {
            key: path.display().to_string(),
            reason: format!("cannot write settings: {e}"),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let text = serde_yaml_ng::to_string(self).expect("settings serialize");
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(fail)
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
    ///
    /// A secret option written out literally (not as a `${NAME}` reference) is refused unless
    /// `literal_secrets` is [`LiteralSecrets::Allow`]: the settings file is easily copied,
    /// shared or committed, while a reference keeps the value in the environment or a secrets
    /// directory.
    pub fn add_mount(
        &mut self,
        name: &str,
        url: &str,
        options: StorageOptions,
        literal_secrets: LiteralSecrets,
    ) -> Result<()> {
        MountTable::default().add(name, url, options.clone())?;
        let literal = options.literal_secrets();
        if literal_secrets == LiteralSecrets::Refuse && !literal.is_empty() {
            return Err(Error::Config {
                key: literal.join(", "),
                reason: format!(
                    "a secret would be saved in plain text in the settings file; reference it \
                     instead, e.g. {}='${{LAKE_SECRET}}' (looked up in the environment, then the \
                     secrets directory), or allow literal secrets explicitly",
                    literal[0]
                ),
            });
        }
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

/// Whether [`Settings::add_mount`] may save secret option values as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LiteralSecrets {
    /// Only `${NAME}` references may be saved for secret options.
    #[default]
    Refuse,
    /// Save them as given (the file is written readable by its owner alone).
    Allow,
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
        s.add_mount(
            "scratch",
            "memory://settings-test",
            StorageOptions::new(),
            LiteralSecrets::Refuse,
        )
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
            s.add_mount(
                "bad name",
                "memory://x",
                StorageOptions::new(),
                LiteralSecrets::Refuse
            )
            .is_err()
        );
        assert!(
            s.add_mount(
                "x",
                "gopher://x",
                StorageOptions::new(),
                LiteralSecrets::Refuse
            )
            .is_err()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "settings are the owner's alone");
        std::fs::write(&path, "mounts: [").unwrap();
        assert!(Settings::load(&path).is_err());
        std::fs::write(&path, "unknown_key: 1").unwrap();
        assert!(Settings::load(&path).is_err());
    }

    #[test]
    fn literal_secrets_are_refused_unless_allowed_and_references_pass() {
        let mut s = Settings::default();
        let literal = StorageOptions::new().with("aws_secret_access_key", "Hunter2Secret");
        let e = s
            .add_mount("lake", "s3://b/p", literal.clone(), LiteralSecrets::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("aws_secret_access_key") && e.contains("${"),
            "{e}"
        );
        assert!(!e.contains("Hunter2Secret"), "{e}");
        assert!(s.mounts.is_empty());
        let reference = StorageOptions::new().with("aws_secret_access_key", "${LAKE_SECRET}");
        s.add_mount("lake", "s3://b/p", reference, LiteralSecrets::Refuse)
            .unwrap();
        s.add_mount("raw", "s3://b/p", literal, LiteralSecrets::Allow)
            .unwrap();
    }
}
