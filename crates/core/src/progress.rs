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
