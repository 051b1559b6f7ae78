//! The one error type shared by every trainstore crate.
//!
//! Variants are structured so callers can match on what happened, and [`Error::retryable`] is the
//! single place that decides whether repeating an operation may succeed; backoff loops ask it
//! rather than guessing from messages.

use std::time::Duration;

/// Result alias used throughout trainstore.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in trainstore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given by the caller is malformed; `what` names the parameter, `reason` says why.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        what: &'static str,
        value: String,
        reason: String,
    },

    /// A named thing does not exist.
    #[error("{what} not found: {name}")]
    NotFound { what: &'static str, name: String },

    /// `user` may not do `action` on `item`: it needs the `needed` permission.
    #[error("permission denied: {user} may not {action} {item} (needs {needed} permission)")]
    PermissionDenied {
        user: String,
        action: String,
        item: String,
        needed: &'static str,
    },

    /// Someone else holds `item`'s lease until `until`.
    #[error("{item} is leased by {owner} until {until}")]
    Leased {
        item: String,
        owner: String,
        until: String,
    },

    /// A named thing exists already and may not be replaced.
    #[error("{what} already exists: {name}")]
    AlreadyExists { what: &'static str, name: String },

    /// Another writer committed the same version first, and retrying did not get through.
    #[error(
        "version conflict on {item}: gave up after {attempts} attempts (last tried version {version})"
    )]
    VersionConflict {
        item: String,
        version: u64,
        attempts: u32,
    },

    /// The store behind a URL lacks a guarantee trainstore relies on (e.g. create-if-absent).
    #[error("store {url} cannot be used: {reason}")]
    UnsupportedStore { url: String, reason: String },

    /// A workspace was written by a newer trainstore than this one.
    #[error(
        "workspace {url} has layout version {found}, but this trainstore understands up to {supported}; upgrade trainstore"
    )]
    UnsupportedLayout {
        url: String,
        found: u32,
        supported: u32,
    },

    /// An optional capability that this implementation does not offer.
    #[error("{operation} is not supported by {implementer}")]
    NotSupported {
        operation: &'static str,
        implementer: String,
    },

    /// Configuration is missing or malformed.
    #[error("configuration {key:?}: {reason}")]
    Config { key: String, reason: String },

    /// A record's value could not be read as its declared type (strict parsing).
    #[error("malformed {field} in row {row}: {reason}")]
    Malformed {
        /// The row's identity as far as it could be read (e.g. `uuid=… nodeId=… time=…`).
        row: String,
        field: String,
        reason: String,
    },

    /// Stored data does not match what its manifest promised.
    #[error("corrupt data at {path}: {reason}")]
    Corrupt { path: String, reason: String },

    /// An object store operation failed.
    #[error("storage error during {operation} of {path}: {source}")]
    Storage {
        operation: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A remote service (database, Flight server) failed; `transient` when a retry may succeed
    /// (dropped connection, server restarting).
    #[error("{service} {operation} failed: {reason}")]
    Remote {
        service: String,
        operation: &'static str,
        reason: String,
        transient: bool,
    },

    /// An operation did not finish in time: `operation` is the phase that waited (connect,
    /// handshake, query, read, …), `endpoint` the server it waited on (`service host:port`,
    /// never credentials), `attempts` how many tries the deadline covered.
    #[error("{operation} on {endpoint} timed out after {after:?}{}", attempts_note(*attempts))]
    Timeout {
        operation: &'static str,
        endpoint: String,
        after: Duration,
        attempts: u32,
    },

    /// Arrow rejected data (schema mismatch, bad batch).
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// The operation was cancelled by the caller (e.g. Ctrl-C in a notebook).
    #[error("cancelled")]
    Cancelled,

    /// A bug: code under `operation` panicked, and the panic was caught at an API boundary
    /// instead of taking the process down.
    #[error("internal error in {operation}: {reason} (a bug in trainstore; please report it)")]
    Internal { operation: String, reason: String },
}

impl Error {
    /// Whether repeating the same operation may succeed: transient I/O and timeouts.
    ///
    /// Conflicts are not retryable here: the catalog handles them itself by re-reading, and
    /// once it gives up, repeating blindly would only race again.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Remote { transient, .. } => *transient,
            Error::Storage { source, .. } => matches!(source, object_store::Error::Generic { .. }),
            _ => false,
        }
    }

    /// This error as the last of `attempts` attempts of a retried operation, saying so.
    pub fn after_attempts(self, attempts: u32) -> Self {
        match self {
            Error::Timeout {
                operation,
                endpoint,
                after,
                ..
            } => Error::Timeout {
                operation,
                endpoint,
                after,
                attempts,
            },
            Error::Remote {
                service,
                operation,
                reason,
                transient,
            } if attempts > 1 => Error::Remote {
                service,
                operation,
                reason: format!("{reason}{}", attempts_note(attempts)),
                transient,
            },
            other => other,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The error for a panic caught while running `operation`, with the panic's message.
    pub fn from_panic(operation: impl Into<String>, payload: &(dyn std::any::Any + Send)) -> Self {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked".into());
        Error::Internal {
            operation: operation.into(),
            reason,
        }
    }

    /// Wraps an object store error with the operation and path it concerned.
    pub fn storage(
        operation: &'static str,
        path: impl ToString,
        source: object_store::Error,
    ) -> Self {
        Error::Storage {
            operation,
            path: path.to_string(),
            source,
        }
    }
}

/// How a retried operation's final error says how often it was tried.
fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_becomes_an_internal_error_naming_the_operation_and_message() {
        for payload in [
            std::panic::catch_unwind(|| panic!("static text")).unwrap_err(),
            std::panic::catch_unwind(|| panic!("formatted {}", 7)).unwrap_err(),
            std::panic::catch_unwind(|| std::panic::panic_any(42u8)).unwrap_err(),
        ] {
            let e = Error::from_panic("Workspace.open", &*payload);
            let Error::Internal { operation, reason } = &e else {
                panic!("{e:?}");
            };
            assert_eq!(operation, "Workspace.open");
            assert!(
                ["static text", "formatted 7", "panicked"].contains(&reason.as_str()),
                "{reason}"
            );
        }
    }
}
