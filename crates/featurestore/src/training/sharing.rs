//! Sharing a training set among users: who may do what with it, what each did, and leases
//! for exclusive work. The rules live in [`trainstore_core::governance`] (which also says
//! what an embedded library's permissions can and cannot stop); this is their face on
//! [`TrainingSets`], acting as its user.

use std::time::Duration;

use trainstore_core::{Access, AuditEvent, DatasetName, Lease, Permission, Result, UserName};

use super::TrainingSets;

/// Whom a grant is for: one user, or everyone not named otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    User(UserName),
    Everyone,
}

impl Grantee {
    /// `*` for everyone, otherwise a user name.
    pub fn parse(text: &str) -> Result<Self> {
        if text == "*" {
            Ok(Grantee::Everyone)
        } else {
            Ok(Grantee::User(UserName::new(text)?))
        }
    }
}

impl TrainingSets {
    /// Who may do what with `name` now.
    pub async fn access(&self, name: &DatasetName) -> Result<Access> {
        self.store
            .authorize(name, &self.author, Permission::Read, "read permissions")
            .await?;
        self.store.access(name).await
    }

    /// Gives `grantee` `permission` on `name` (`None`: takes every permission away). Only an
    /// admin of `name` may; an item is never left without an admin.
    pub async fn grant(
        &self,
        name: &DatasetName,
        grantee: &Grantee,
        permission: Option<Permission>,
    ) -> Result<Access> {
        let mut access = self.store.access(name).await?;
        match grantee {
            Grantee::Everyone => access.everyone = permission,
            Grantee::User(user) => match permission {
                Some(p) => {
                    access.users.insert(user.clone(), p);
                }
                None => {
                    access.users.remove(user);
                }
            },
        }
        self.store.set_access(name, access, &self.author).await?;
        self.store.access(name).await
    }

    /// `name`'s audit log, oldest first: every change, and every refused attempt.
    pub async fn audit_log(&self, name: &DatasetName) -> Result<Vec<AuditEvent>> {
        self.store
            .authorize(name, &self.author, Permission::Read, "read the audit log")
            .await?;
        self.store.audit_log(name).await
    }

    /// `name`'s lease now, if one was ever taken.
    pub async fn lease(&self, name: &DatasetName) -> Result<Option<Lease>> {
        self.store
            .authorize(name, &self.author, Permission::Read, "read the lease")
            .await?;
        self.store.lease(name).await
    }

    /// Takes (or renews) `name`'s lease for `ttl`: until it expires or is released, only this
    /// user may change `name`.
    pub async fn acquire_lease(&self, name: &DatasetName, ttl: Duration) -> Result<Lease> {
        self.store.acquire_lease(name, &self.author, ttl).await
    }

    /// Gives up this user's lease on `name`.
    pub async fn release_lease(&self, name: &DatasetName) -> Result<Lease> {
        self.store.release_lease(name, &self.author).await
    }

    /// Ends whoever's lease on `name`; only an admin may.
    pub async fn break_lease(&self, name: &DatasetName) -> Result<Lease> {
        self.store.break_lease(name, &self.author).await
    }
}
