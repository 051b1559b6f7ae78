//! CPU-bound work on one compute pool (rayon's, one thread per core), never on the threads
//! that run async tasks: [`compute`] moves a piece of work there from async code, and
//! [`map_indexed`] spreads a hot loop (parsing slices of a batch, gathering the columns of a
//! join's answer) over the pool.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// The threads of the compute pool: one per core.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// `work(0) .. work(count - 1)` on the compute pool, results in index order.
///
/// Items are handed out one at a time, so uneven items (a list column next to a float
/// column) still keep every thread busy. Called from a pool thread, it shares the pool.
///
/// ```
/// let squares = trainstore_core::parallel::map_indexed(4, |i| i * i);
/// assert_eq!(squares, vec![0, 1, 4, 9]);
/// ```
pub fn map_indexed<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    (0..count)
        .into_par_iter()
        .with_max_len(1)
        .map(work)
        .collect()
}

/// Runs `work` on the compute pool and waits for it without holding an async worker. A
/// panic in `work` comes back as [`Error::Internal`] naming `operation`.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let sum = trainstore_core::parallel::compute("sum", || (1..=10).sum::<u32>()).await;
/// assert_eq!(sum.unwrap(), 55);
/// # });
/// ```
pub async fn compute<T: Send + 'static>(
    operation: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    });
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(payload)) => Err(Error::from_panic(operation, &*payload)),
        Err(_) => Err(Error::Internal {
            operation: operation.into(),
            reason: "the compute pool dropped the work".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_order_whatever_the_threads_finish_first() {
        let out = map_indexed(64, |i| {
            std::thread::sleep(std::time::Duration::from_micros(((64 - i) * 20) as u64));
            i * 3
        });
        assert_eq!(out, (0..64).map(|i| i * 3).collect::<Vec<_>>());
        assert!(map_indexed(0, |i| i).is_empty());
    }

    #[tokio::test]
    async fn computed_work_runs_off_the_async_thread_and_a_panic_becomes_an_error() {
        let caller = std::thread::current().id();
        let ran_on = compute("where", || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(ran_on, caller);
        let err = compute("explode", || -> u8 { panic!("boom") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }
}
