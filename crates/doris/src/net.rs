//! Network deadlines shared by every Doris client (the MySQL-protocol reader, loading,
//! write-back, Flight SQL): how long to wait for a connection and for a silent server, and
//! the timeout errors that name the server and the phase that waited.

use std::time::Duration;

use trainstore_core::{Error, Result};

/// How long a conversation with a server may wait. Separate from a query's overall limit: a
/// long read that keeps receiving rows is never cut off by these, only a server gone silent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Reaching the server and logging in (TCP connect, handshake, session setup).
    pub connect: Duration,
    /// Waiting for the server's next bytes (or for a statement's answer): a server that sends
    /// nothing for this long is given up on.
    pub read: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect; 60 s of silence, long enough for a slow first row of a large scan.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// Fails unless both deadlines are positive.
    pub fn check(&self) -> Result<()> {
        if self.connect.is_zero() || self.read.is_zero() {
            return Err(Error::invalid(
                "timeouts",
                format!("{self:?}"),
                "connect and read timeouts must be positive",
            ));
        }
        Ok(())
    }
}

/// Runs `work` for at most `limit`, else fails with a timeout naming `endpoint` and `phase`.
pub(crate) async fn within<T>(
    limit: Duration,
    endpoint: &str,
    phase: &'static str,
    work: impl Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| timed_out(endpoint, phase, limit))
}

/// The error for `phase` on `endpoint` not finishing within `after`.
pub(crate) fn timed_out(endpoint: &str, phase: &'static str, after: Duration) -> Error {
    Error::Timeout {
        operation: phase,
        endpoint: endpoint.to_owned(),
        after,
        attempts: 1,
    }
}
