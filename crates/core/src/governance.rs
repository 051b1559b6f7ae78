//! Who may do what with a versioned item, who did what, and who holds it: per-item
//! permissions, an append-only audit log and leases, kept beside the item's versions with the
//! same create-if-absent writes, so nothing here rests on locks either.
//!
//! Layout under an item's directory (see [`crate::catalog`]):
//!
//! ```text
//! access/<00000000000000000001>.json   permissions; each change appends, the newest holds
//! audit/<epoch ns:024>-<random:016x>.json   one event each, created once, never changed
//! lease/<00000000000000000001>.json    lease states; each acquire, renew, release or break appends
//! ```
//!
//! # What this can and cannot stop
//!
//! trainstore is a library: it runs with the caller's storage credentials. Permissions are
//! enforced by every trainstore operation, so they keep honest users and scripts from changing
//! what they should not, and the audit log records who did what. They cannot stop someone who
//! holds the same credentials and writes to the store with another tool, or edits these files.
//! A deployment that must enforce them gives each user credentials of their own and lets the
//! store enforce access: S3 bucket policies or IAM roles per prefix (a workspace's
//! `training-sets/items/<name>/`), POSIX permissions on shared directories, or a service in
//! front of the store that holds the only write credentials.
//!
//! A lease is for work that must be exclusive among cooperating users (a nightly rebuild).
//! Correctness never depends on one: two writers without leases still never lose a version.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Sequence, create_json, read_all_json};
use crate::error::{Error, Result};
use crate::ids::{DatasetName, UserName, Version};
use crate::time::Timestamp;

/// What a user may do with an item; each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read versions, list, compare.
    Read,
    /// Also create versions, tag, alias, delete.
    Write,
    /// Also change permissions and break others' leases.
    Admin,
}

impl Permission {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            "admin" => Ok(Permission::Admin),
            _ => Err(Error::invalid(
                "permission",
                text,
                "expected read, write or admin",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }
}

/// The permissions of one item.
///
/// Until an admin first sets them, an item's permissions are implicit: the author of its first
/// version is its admin and everyone else may write (an item without versions: anyone may
/// do anything, so the first writer becomes its admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// What users not named in `users` may do; `None`: nothing, not even read.
    pub everyone: Option<Permission>,
    pub users: BTreeMap<UserName, Permission>,
    /// Who set these permissions and when; `None` for the implicit ones.
    pub set_by: Option<UserName>,
    pub set_at: Option<Timestamp>,
}

impl Access {
    /// What `user` may do.
    pub fn of(&self, user: &UserName) -> Option<Permission> {
        self.users.get(user).copied().max(self.everyone)
    }

    /// Whether `user` may do what needs `needed`.
    pub fn allows(&self, user: &UserName, needed: Permission) -> bool {
        self.of(user).is_some_and(|p| p >= needed)
    }

    /// The implicit permissions of an item first written by `creator` (`None`: no versions).
    pub fn implicit(creator: Option<UserName>) -> Self {
        match creator {
            Some(creator) => Access {
                everyone: Some(Permission::Write),
                users: BTreeMap::from([(creator, Permission::Admin)]),
                set_by: None,
                set_at: None,
            },
            None => Access {
                everyone: Some(Permission::Admin),
                users: BTreeMap::new(),
                set_by: None,
                set_at: None,
            },
        }
    }
}

/// One entry of an item's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub user: UserName,
    /// What was done or attempted: `create`, `tag`, `alias`, `delete`, `grant`, `lease`, …
    pub action: String,
    /// The version concerned, when there is one.
    pub version: Option<Version>,
    /// `false` for an attempt refused for want of permission.
    pub allowed: bool,
    /// Anything else worth knowing: the tag's name, the permission granted, why refused.
    #[serde(default)]
    pub detail: String,
}

/// Where a lease stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum LeaseState {
    /// Held by its owner until it expires.
    Held,
    Released,
    /// Broken by an admin.
    Broken {
        by: UserName,
    },
}

/// One state of an item's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Position in the lease's history (each acquire, renew, release or break appends one).
    pub seq: u64,
    pub owner: UserName,
    pub since: Timestamp,
    pub expires_at: Timestamp,
    #[serde(flatten)]
    pub state: LeaseState,
}

impl Lease {
    /// Whether it still excludes others at `now`.
    pub fn is_held(&self, now: Timestamp) -> bool {
        self.state == LeaseState::Held && now < self.expires_at
    }
}

/// Who may do what with an item, who did what, and who holds it; see the module
/// documentation for what this can and cannot stop.
#[async_trait]
pub trait Governance: Send + Sync {
    /// The item's permissions now (the implicit ones until an admin sets them).
    async fn access(&self, item: &DatasetName) -> Result<Access>;

    /// Replaces the item's permissions, keeping the previous ones as history. Only an admin
    /// may: anyone else gets [`Error::PermissionDenied`] and an audit entry.
    async fn set_access(&self, item: &DatasetName, access: Access, by: &UserName) -> Result<()>;

    /// Checks that `user` may do `action` (which needs `needed`) on `item`; a refusal is
    /// recorded in the audit log and returned as [`Error::PermissionDenied`].
    async fn authorize(
        &self,
        item: &DatasetName,
        user: &UserName,
        needed: Permission,
        action: &str,
    ) -> Result<()>;

    /// Checks that `user` may change `item` by `action`: write permission (see
    /// [`Self::authorize`]), and no one else holds its lease ([`Error::Leased`] when someone
    /// does).
    async fn authorize_write(
        &self,
        item: &DatasetName,
        user: &UserName,
        action: &str,
    ) -> Result<()> {
        self.authorize(item, user, Permission::Write, action)
            .await?;
        match self.lease(item).await? {
            Some(lease) if lease.is_held(Timestamp::now()) && &lease.owner != user => {
                Err(Error::Leased {
                    item: item.to_string(),
                    owner: lease.owner.to_string(),
                    until: lease.expires_at.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Appends an event to the item's audit log.
    async fn record(&self, item: &DatasetName, event: AuditEvent) -> Result<()>;

    /// Records in the item's audit log that `user` did `action` (allowed). The change it
    /// records has happened already, so a failure to record is logged, not returned.
    async fn record_done(
        &self,
        item: &DatasetName,
        user: &UserName,
        action: &str,
        version: Option<Version>,
        detail: String,
    ) {
        let event = AuditEvent {
            at: Timestamp::now(),
            user: user.clone(),
            action: action.to_owned(),
            version,
            allowed: true,
            detail,
        };
        if let Err(e) = self.record(item, event).await {
            tracing::warn!(%item, action, "could not record in the audit log: {e}");
        }
    }

    /// The item's audit log, oldest first.
    async fn audit_log(&self, item: &DatasetName) -> Result<Vec<AuditEvent>>;

    /// The item's lease now, if one was ever taken.
    async fn lease(&self, item: &DatasetName) -> Result<Option<Lease>>;

    /// Takes the item's lease for `owner` for `ttl` (or renews it, when `owner` holds it).
    /// Fails with [`Error::Leased`] while someone else holds it.
    async fn acquire_lease(
        &self,
        item: &DatasetName,
        owner: &UserName,
        ttl: Duration,
    ) -> Result<Lease>;

    /// Gives the lease up; only its holder may.
    async fn release_lease(&self, item: &DatasetName, owner: &UserName) -> Result<Lease>;

    /// Ends someone else's lease; only an admin may.
    async fn break_lease(&self, item: &DatasetName, by: &UserName) -> Result<Lease>;
}

fn access_seq(item: &DatasetName) -> Sequence {
    Sequence {
        dir: Catalog::item_dir(item).join("access"),
        hinted: false,
    }
}

fn lease_seq(item: &DatasetName) -> Sequence {
    Sequence {
        dir: Catalog::item_dir(item).join("lease"),
        hinted: false,
    }
}

/// Appends `entry` to `seq` at the next free number, trying again when another writer took
/// it; `make` builds the entry for a number, given the entry before it.
async fn append<T, F>(store: &dyn ObjectStore, seq: &Sequence, mut make: F) -> Result<T>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: FnMut(u64, Option<T>) -> Result<T>,
{
    for _ in 0..1000 {
        let latest = seq.latest(store).await?;
        let previous = match latest {
            Some(n) => seq.read::<T>(store, n).await?,
            None => None,
        };
        let next = latest.unwrap_or(0) + 1;
        let entry = make(next, previous)?;
        if seq.create(store, next, &entry).await? {
            return Ok(entry);
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(1..20))).await;
    }
    Err(Error::VersionConflict {
        item: seq.dir.to_string(),
        version: 0,
        attempts: 1000,
    })
}

#[async_trait]
impl Governance for Catalog {
    async fn access(&self, item: &DatasetName) -> Result<Access> {
        let seq = access_seq(item);
        if let Some(n) = seq.latest(self.store.as_ref()).await?
            && let Some(access) = seq.read::<Access>(self.store.as_ref(), n).await?
        {
            return Ok(access);
        }
        let first = match crate::VersionStore::get(self, item, Version::FIRST).await {
            Ok(m) => Some(m.author),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(Access::implicit(first))
    }

    async fn set_access(&self, item: &DatasetName, access: Access, by: &UserName) -> Result<()> {
        self.ensure_writable().await?;
        self.authorize(item, by, Permission::Admin, "set permissions")
            .await?;
        let admin = access.everyone == Some(Permission::Admin)
            || access.users.values().any(|&p| p == Permission::Admin);
        if !admin {
            return Err(Error::invalid(
                "permissions",
                format!("{:?}", access.users),
                "would leave the item without an admin",
            ));
        }
        let detail = serde_json::to_string(&(&access.everyone, &access.users))
            .expect("permissions serialize");
        let access = Access {
            set_by: Some(by.clone()),
            set_at: Some(Timestamp::now()),
            ..access
        };
        append(
            self.store.as_ref(),
            &access_seq(item),
            |_, _: Option<Access>| Ok(access.clone()),
        )
        .await?;
        self.record(
            item,
            AuditEvent {
                at: Timestamp::now(),
                user: by.clone(),
                action: "set permissions".into(),
                version: None,
                allowed: true,
                detail,
            },
        )
        .await
    }

    async fn authorize(
        &self,
        item: &DatasetName,
        user: &UserName,
        needed: Permission,
        action: &str,
    ) -> Result<()> {
        let access = self.access(item).await?;
        if access.allows(user, needed) {
            return Ok(());
        }
        let has = access.of(user).map_or("no", Permission::as_str);
        // A refusal is recorded where the store can be written; a read-only store still
        // refuses, unrecorded.
        let recorded = self
            .record(
                item,
                AuditEvent {
                    at: Timestamp::now(),
                    user: user.clone(),
                    action: action.to_owned(),
                    version: None,
                    allowed: false,
                    detail: format!("needs {}, has {has} permission", needed.as_str()),
                },
            )
            .await;
        if let Err(e) = recorded {
            tracing::warn!(%item, %user, "could not record a refused {action}: {e}");
        }
        Err(Error::PermissionDenied {
            user: user.to_string(),
            action: action.to_owned(),
            item: item.to_string(),
            needed: needed.as_str(),
        })
    }

    async fn record(&self, item: &DatasetName, event: AuditEvent) -> Result<()> {
        self.ensure_writable().await?;
        // Nanoseconds order one process's events even within a millisecond; the random
        // part keeps two processes' names apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{nanos:024}-{:016x}.json", rand::random::<u64>());
        let path = Catalog::item_dir(item).join("audit").join(name);
        if !create_json(self.store.as_ref(), &path, &event).await? {
            return Err(Error::AlreadyExists {
                what: "audit event",
                name: path.to_string(),
            });
        }
        Ok(())
    }

    async fn audit_log(&self, item: &DatasetName) -> Result<Vec<AuditEvent>> {
        let dir = Catalog::item_dir(item).join("audit");
        read_all_json(self.store.as_ref(), &dir).await
    }

    async fn lease(&self, item: &DatasetName) -> Result<Option<Lease>> {
        let seq = lease_seq(item);
        match seq.latest(self.store.as_ref()).await? {
            Some(n) => seq.read(self.store.as_ref(), n).await,
            None => Ok(None),
        }
    }

    async fn acquire_lease(
        &self,
        item: &DatasetName,
        owner: &UserName,
        ttl: Duration,
    ) -> Result<Lease> {
        self.ensure_writable().await?;
        self.authorize(item, owner, Permission::Write, "lease")
            .await?;
        let ttl_ms = i64::try_from(ttl.as_millis())
            .ok()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                Error::invalid("lease duration", format!("{ttl:?}"), "must be positive")
            })?;
        let lease = append(
            self.store.as_ref(),
            &lease_seq(item),
            |seq, previous: Option<Lease>| {
                let now = Timestamp::now();
                let renewal = match previous {
                    Some(p) if p.is_held(now) && &p.owner != owner => {
                        return Err(Error::Leased {
                            item: item.to_string(),
                            owner: p.owner.to_string(),
                            until: p.expires_at.to_string(),
                        });
                    }
                    Some(p) if p.is_held(now) => Some(p.since),
                    _ => None,
                };
                Ok(Lease {
                    seq,
                    owner: owner.clone(),
                    since: renewal.unwrap_or(now),
                    expires_at: Timestamp::from_millis(now.as_millis().saturating_add(ttl_ms)),
                    state: LeaseState::Held,
                })
            },
        )
        .await?;
        self.record(item, lease_event(owner, "lease", &lease))
            .await?;
        Ok(lease)
    }

    async fn release_lease(&self, item: &DatasetName, owner: &UserName) -> Result<Lease> {
        self.ensure_writable().await?;
        let lease = append(
            self.store.as_ref(),
            &lease_seq(item),
            |seq, previous: Option<Lease>| match previous {
                Some(p) if p.is_held(Timestamp::now()) && &p.owner == owner => Ok(Lease {
                    seq,
                    state: LeaseState::Released,
                    ..p
                }),
                _ => Err(Error::NotFound {
                    what: "lease held by",
                    name: format!("{owner} on {item}"),
                }),
            },
        )
        .await?;
        self.record(item, lease_event(owner, "release lease", &lease))
            .await?;
        Ok(lease)
    }

    async fn break_lease(&self, item: &DatasetName, by: &UserName) -> Result<Lease> {
        self.ensure_writable().await?;
        self.authorize(item, by, Permission::Admin, "break lease")
            .await?;
        let lease = append(
            self.store.as_ref(),
            &lease_seq(item),
            |seq, previous: Option<Lease>| match previous {
                Some(p) if p.is_held(Timestamp::now()) => Ok(Lease {
                    seq,
                    state: LeaseState::Broken { by: by.clone() },
                    ..p
                }),
                _ => Err(Error::NotFound {
                    what: "held lease",
                    name: item.to_string(),
                }),
            },
        )
        .await?;
        self.record(item, lease_event(by, "break lease", &lease))
            .await?;
        Ok(lease)
    }
}

fn lease_event(user: &UserName, action: &str, lease: &Lease) -> AuditEvent {
    AuditEvent {
        at: Timestamp::now(),
        user: user.clone(),
        action: action.to_owned(),
        version: None,
        allowed: true,
        detail: format!("owner {} until {}", lease.owner, lease.expires_at),
    }
}
