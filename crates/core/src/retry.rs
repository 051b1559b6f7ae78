//! Trying again after a transient failure, the same way everywhere: one definition of
//! "transient" ([`Error::retryable`]), one backoff ([`Backoff`], full jitter) and one loop for
//! remote operations under a deadline ([`retry_within`]).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// Exponential backoff with full jitter: before retry `n` (from 0), a random wait of up to
/// `base · 2ⁿ`, never more than `max`. The jitter keeps clients that failed together from
/// retrying together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// For calls to a remote server: up to 0.1 s before the first retry, 6.4 s at most.
    pub const REMOTE: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(6400),
    };

    /// The wait before retry `retry` (0 for the first).
    ///
    /// ```
    /// use std::time::Duration;
    /// use trainstore_core::retry::Backoff;
    ///
    /// let b = Backoff { base: Duration::from_millis(10), max: Duration::from_millis(50) };
    /// assert!(b.delay(0) <= Duration::from_millis(10));
    /// assert!(b.delay(30) <= Duration::from_millis(50));
    /// ```
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = self.base.saturating_mul(1 << retry.min(16)).min(self.max);
        Duration::from_millis(rand::random_range(0..=cap.as_millis().max(1) as u64))
    }
}

/// Runs `attempt(1)`, and after each transient failure ([`Error::retryable`]) `attempt(2)`,
/// … up to `max_retries` retries, waiting [`Backoff::REMOTE`] between them. Attempts and
/// waits share `deadline`: past it, the answer is `overdue()`. A failure says how many
/// attempts were made ([`Error::after_attempts`]). `what` names the operation in the warning
/// logged before each retry.
pub async fn retry_within<T, F, Fut>(
    what: &str,
    max_retries: u32,
    deadline: Instant,
    overdue: impl Fn() -> Error,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut made = 0u32;
    loop {
        made += 1;
        let outcome = tokio::time::timeout_at(deadline, attempt(made))
            .await
            .unwrap_or_else(|_| Err(overdue()));
        match outcome {
            Ok(value) => return Ok(value),
            Err(e) if e.retryable() && made <= max_retries => {
                tracing::warn!(operation = what, attempt = made, error = %e, "failed; retrying");
                let wait = Backoff::REMOTE.delay(made - 1);
                if tokio::time::timeout_at(deadline, tokio::time::sleep(wait))
                    .await
                    .is_err()
                {
                    return Err(overdue().after_attempts(made));
                }
            }
            Err(e) => return Err(e.after_attempts(made)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> Error {
        Error::Remote {
            service: "test".into(),
            operation: "read",
            reason: "connection reset".into(),
            transient: true,
        }
    }

    fn overdue() -> Error {
        Error::Timeout {
            operation: "read",
            endpoint: "test".into(),
            after: Duration::from_millis(50),
            attempts: 1,
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_one_succeeds() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let got = retry_within("read", 3, deadline, overdue, |n| async move {
            if n < 3 { Err(transient()) } else { Ok(n) }
        })
        .await;
        assert_eq!(got.unwrap(), 3);
    }

    #[tokio::test]
    async fn the_last_failure_counts_the_attempts_and_permanent_ones_are_not_retried() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let err = retry_within("read", 2, deadline, overdue, |_| async {
            Err::<(), _>(transient())
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("3 attempts"), "{err}");

        let mut calls = 0;
        let err = retry_within("read", 5, deadline, overdue, |_| {
            calls += 1;
            async { Err::<(), _>(Error::invalid("table", "x", "no such table")) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1, "{err}");
    }

    #[tokio::test]
    async fn the_deadline_cuts_an_attempt_short() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(50);
        let err = retry_within("read", 5, deadline, overdue, |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
