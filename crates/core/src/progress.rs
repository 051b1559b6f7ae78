//! The one interface long operations report progress through.
//!
//! Library code calls [`Progress`]; the CLI draws it as a terminal bar, Python as a notebook
//! bar, and both fall back to plain lines when not attached to a terminal. Implementations
//! must be cheap: callers may advance once per file or per batch.

use std::sync::Arc;

/// Receives progress of one operation at a time.
pub trait Progress: Send + Sync {
    /// A new operation starts; `total` is in the unit the operation counts (bytes, rows, files).
    fn begin(&self, label: &str, total: Option<u64>);
    /// `delta` more units are done.
    fn advance(&self, delta: u64);
    /// The operation finished (successfully or not).
    fn finish(&self);
}

/// Shared handle to a progress sink.
pub type ProgressRef = Arc<dyn Progress>;

/// Ignores all progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// One operation reported to a [`Progress`]: begun when made, finished when dropped, so an
/// operation that fails part-way still ends its bar.
///
/// ```
/// use trainstore_core::{NoProgress, Operation};
/// let rows = Operation::begin(&NoProgress, "reading rows", None);
/// rows.advance(1_000);
/// ```
pub struct Operation<'a>(&'a dyn Progress);

impl<'a> Operation<'a> {
    /// Begins `label` on `progress`; `total` as for [`Progress::begin`].
    pub fn begin(progress: &'a dyn Progress, label: &str, total: Option<u64>) -> Self {
        progress.begin(label, total);
        Operation(progress)
    }

    /// `delta` more units are done.
    pub fn advance(&self, delta: u64) {
        self.0.advance(delta);
    }
}

impl Drop for Operation<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}
