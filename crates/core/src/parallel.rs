//! CPU-bound work spread over the machine's cores, for the hot loops that do not stream
//! (parsing slices of a batch, gathering the columns of a join's answer).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The threads [`map_indexed`] runs on: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `work(0) .. work(count - 1)` on up to one thread per core, results in index order.
///
/// Items are handed out one at a time, so uneven items (a list column next to a float
/// column) still keep every thread busy.
///
/// ```
/// let squares = trainstore_core::parallel::map_indexed(4, |i| i * i);
/// assert_eq!(squares, vec![0, 1, 4, 9]);
/// ```
pub fn map_indexed<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads().min(count);
    if threads <= 1 {
        return (0..count).map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let out = work(i);
                    results.lock().expect("results")[i] = Some(out);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every item done"))
        .collect()
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
}
