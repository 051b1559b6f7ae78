//! The end of a version's life: deleted by hand or by a retention policy. Deleting records a
//! deletion beside the manifest; the version stops being listed or resolved and its files
//! become collectable by `gc` (after its grace period) once no other version or draft lists
//! them. Tagged and aliased versions are never deleted: a name someone relies on keeps its
//! version.

use std::time::Duration;

use trainstore_core::{DatasetName, Error, Result, Timestamp, Version};

use super::TrainingSets;

/// Which versions of a set to keep; the rest may be deleted. A version is kept when any rule
/// keeps it, and always when a tag or an alias names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest this many versions.
    pub keep_last: Option<usize>,
    /// Keep the versions created within this long before now.
    pub keep_within: Option<Duration>,
}

impl TrainingSets {
    /// Deletes version `reference` of `name`; see the module documentation.
    pub async fn delete(&self, name: &DatasetName, reference: &str) -> Result<Version> {
        self.store
            .authorize_write(name, &self.author, "delete")
            .await?;
        let version = self.store.resolve(name, reference).await?;
        self.store.delete(name, version, &self.author).await?;
        self.audit(name, "delete", Some(version), String::new())
            .await;
        Ok(version)
    }

    /// Deletes the versions of `name` that `policy` does not keep (only lists them when
    /// `dry_run`), oldest first; returns them.
    pub async fn retain(
        &self,
        name: &DatasetName,
        policy: &Retention,
        dry_run: bool,
    ) -> Result<Vec<Version>> {
        if policy.keep_last.is_none() && policy.keep_within.is_none() {
            return Err(Error::invalid(
                "retention policy",
                format!("{policy:?}"),
                "keeps nothing: give keep_last, keep_within or both",
            ));
        }
        let mut listed = self.list(name).await?.to_vec();
        listed.sort_by_key(|l| std::cmp::Reverse(l.version));
        let named = self.names(name).await?;
        let now = Timestamp::now().as_millis();
        let within_ms = policy
            .keep_within
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut doomed: Vec<Version> = listed
            .iter()
            .enumerate()
            .filter(|(rank, l)| {
                let recent_enough = policy.keep_last.is_some_and(|n| *rank < n);
                let young_enough =
                    within_ms.is_some_and(|ms| now.saturating_sub(l.created_at.as_millis()) <= ms);
                !(recent_enough || young_enough || named.contains_key(&l.version))
            })
            .map(|(_, l)| l.version)
            .collect();
        doomed.reverse();
        if dry_run {
            return Ok(doomed);
        }
        self.store
            .authorize_write(name, &self.author, "delete")
            .await?;
        for &version in &doomed {
            self.store.delete(name, version, &self.author).await?;
            self.audit(name, "delete", Some(version), "by retention policy".into())
                .await;
        }
        Ok(doomed)
    }
}
