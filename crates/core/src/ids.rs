//! Validated identifiers: names of datasets, users and tags, and version numbers.
//!
//! Names end up in object-store paths and, later, in SQL identifiers, so they are restricted to
//! a portable alphabet once, here, at the boundary; everything downstream can trust them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

fn check_name(what: &'static str, text: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid(what, text, reason));
    let Some(first) = text.chars().next() else {
        return bad("must not be empty");
    };
    if text.len() > MAX_NAME_LEN {
        return bad("longer than 128 characters");
    }
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return bad(&format!(
            "character {c:?} not allowed (use letters, digits, '_', '-', '.')"
        ));
    }
    if text.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// 1–128 characters of ASCII letters, digits, `_`, `-` and `.`, starting with a letter
        /// or digit, with no `..`.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `text` as a name.
            pub fn new(text: impl Into<String>) -> Result<Self> {
                let text = text.into();
                check_name($what, &text)?;
                Ok($name(text))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(text: String) -> Result<Self> {
                $name::new(text)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(text: &str) -> Result<Self> {
                $name::new(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

validated_name!(
    /// The name of a versioned item: a dataset, a model or a pipeline.
    DatasetName,
    "dataset name"
);
/// `NAME` or `NAME@REF` split into the item and its reference (`latest` when absent; a REF is
/// `latest`, `v3`, `3`, a tag or an alias, as [`VersionStore::resolve`] reads it).
///
/// [`VersionStore::resolve`]: crate::VersionStore::resolve
///
/// ```
/// use trainstore_core::ids::split_reference;
/// let (item, reference) = split_reference("vibration@golden")?;
/// assert_eq!((item.as_str(), reference.as_str()), ("vibration", "golden"));
/// assert_eq!(split_reference("vibration")?.1, "latest");
/// # Ok::<_, trainstore_core::Error>(())
/// ```
pub fn split_reference(text: &str) -> crate::Result<(DatasetName, String)> {
    let (name, reference) = text.split_once('@').unwrap_or((text, "latest"));
    Ok((DatasetName::new(name)?, reference.to_owned()))
}

validated_name!(
    /// The name of a namespace: a team's or project's own set of names, kept apart from
    /// others' (two namespaces may each hold a `vibration`).
    Namespace,
    "namespace"
);
validated_name!(
    /// The name of a user, recorded as the author of versions.
    UserName,
    "user name"
);
impl UserName {
    /// The user running this process: `$TRAINSTORE_USER`, else `$USER` (empty ones ignored),
    /// with characters a name cannot hold dropped, else `anonymous`.
    pub fn current() -> Self {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let raw = set("TRAINSTORE_USER")
            .or_else(|| set("USER"))
            .unwrap_or_default();
        let cleaned: String = raw
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect();
        UserName::new(cleaned).unwrap_or_else(|_| UserName("anonymous".into()))
    }
}

validated_name!(
    /// The name of a tag (fixed) or alias (movable) pointing at a version.
    TagName,
    "tag name"
);

/// A version number of an item: versions count up from 1 without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Version(u64);

impl Version {
    /// The first version of every item.
    pub const FIRST: Version = Version(1);
    /// The largest representable version.
    pub const MAX: Version = Version(u64::MAX - 1);

    /// Validates `n` as a version number (`1 ..= u64::MAX - 1`).
    pub fn new(n: u64) -> Result<Self> {
        if n == 0 || n == u64::MAX {
            return Err(Error::invalid(
                "version",
                n.to_string(),
                "versions count from 1",
            ));
        }
        Ok(Version(n))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The version after this one.
    pub fn next(self) -> Result<Version> {
        Version::new(self.0 + 1)
    }
}

impl TryFrom<u64> for Version {
    type Error = Error;
    fn try_from(n: u64) -> Result<Self> {
        Version::new(n)
    }
}

impl From<Version> for u64 {
    fn from(v: Version) -> u64 {
        v.0
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let n = text
            .trim()
            .trim_start_matches('v')
            .parse::<u64>()
            .map_err(|_| Error::invalid("version", text, "expected a number such as 3 or v3"))?;
        Version::new(n)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("v{}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["vibration", "v1.2", "a", "Device_07-x", &"x".repeat(128)] {
            assert_eq!(DatasetName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_names_that_could_escape_a_path_or_query() {
        for bad in [
            "",
            "-x",
            ".hidden",
            "a/b",
            "a..b",
            "a b",
            "it's",
            "a;drop",
            "é",
            "a\0b",
            "x\\y",
            &"x".repeat(129),
        ] {
            let err = DatasetName::new(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        what: "dataset name",
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<UserName>("\"alice\"").is_ok());
        assert!(serde_json::from_str::<UserName>("\"../etc\"").is_err());
    }

    #[test]
    fn versions_start_at_one() {
        assert!(Version::new(0).is_err());
        assert_eq!(Version::FIRST.next().unwrap().get(), 2);
        assert_eq!("v7".parse::<Version>().unwrap(), Version::new(7).unwrap());
        assert_eq!(Version::new(7).unwrap().to_string(), "v7");
        assert!("seven".parse::<Version>().is_err());
        assert!(Version::MAX.next().is_err());
    }
}
