//! Progress reports forwarded to a Python object with `begin(label, total)`, `advance(n)` and
//! `finish()` (see `trainstore/progress.py`, which draws a notebook-friendly bar).

use std::sync::Arc;

use pyo3::prelude::*;
use trainstore::core::{NoProgress, Progress, ProgressRef};

struct PyProgress(Py<PyAny>);

impl Progress for PyProgress {
    fn begin(&self, label: &str, total: Option<u64>) {
        Python::attach(|py| report(self.0.call_method1(py, "begin", (label, total))));
    }
    fn advance(&self, delta: u64) {
        Python::attach(|py| report(self.0.call_method1(py, "advance", (delta,))));
    }
    fn finish(&self) {
        Python::attach(|py| report(self.0.call_method0(py, "finish")));
    }
}

/// A broken progress bar must not fail the work it reports on; its error is logged instead.
fn report(result: PyResult<Py<PyAny>>) {
    if let Err(e) = result {
        tracing::warn!("progress callback failed: {e}");
    }
}

/// The sink for an optional Python progress object.
pub fn sink(progress: Option<Py<PyAny>>) -> ProgressRef {
    match progress {
        Some(p) => Arc::new(PyProgress(p)),
        None => Arc::new(NoProgress),
    }
}
