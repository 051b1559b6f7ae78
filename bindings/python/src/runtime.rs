//! One tokio runtime per process, entered with the GIL released.
//!
//! The runtime is rebuilt after `fork` (PyTorch DataLoader workers fork), and Ctrl-C in a
//! notebook cancels the running operation: signals are checked every 100 ms while Rust works.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use trainstore::Error;

use crate::errors::to_py;

fn runtime() -> Arc<Runtime> {
    static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    match slot.as_ref() {
        Some((owner, rt)) if *owner == pid => rt.clone(),
        _ => {
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("trainstore")
                    .build()
                    .expect("tokio runtime"),
            );
            // A runtime inherited through fork has no threads; forget it without dropping.
            if let Some((_, stale)) = slot.replace((pid, rt.clone())) {
                std::mem::forget(stale);
            }
            rt
        }
    }
}

/// Runs `future` (the work of `operation`, e.g. `"Workspace.open"`) to completion with the
/// GIL released, mapping errors to Python exceptions.
///
/// A panic in the work becomes a `TrainstoreError` naming the operation: pyo3's own
/// `PanicException` derives from `BaseException`, which `except Exception` lets through.
pub fn run<T, F>(py: Python<'_>, operation: &'static str, future: F) -> PyResult<T>
where
    F: Future<Output = trainstore::Result<T>> + Send,
    T: Send,
{
    let rt = runtime();
    let outcome = py.detach(|| {
        let work = async {
            // Biased: a future done at its first poll (an online lookup) never starts the
            // signal timer, whose registration wakes a runtime thread.
            tokio::select! {
                biased;
                result = AssertUnwindSafe(future).catch_unwind() => match result {
                    Ok(result) => result.map_err(Interrupt::Failed),
                    Err(panic) => Err(Interrupt::Failed(Error::from_panic(operation, &*panic))),
                },
                signal = signals() => Err(Interrupt::Signal(signal)),
            }
        };
        rt.block_on(work)
    });
    match outcome {
        Ok(v) => Ok(v),
        Err(Interrupt::Failed(e)) => Err(to_py(e)),
        Err(Interrupt::Signal(e)) => Err(e),
    }
}

/// Runs `future` like [`run`], except that a signal (Ctrl-C) does not drop it: `interrupt` is
/// called (it cancels the work's token) and the work is awaited until it has wound down (a
/// pipeline run records its tasks cancelled and saves its state); then the signal's exception
/// is raised, whatever the work returned.
pub fn run_cancellable<T, F>(
    py: Python<'_>,
    operation: &'static str,
    interrupt: impl FnOnce() + Send,
    future: F,
) -> PyResult<T>
where
    F: Future<Output = trainstore::Result<T>> + Send,
    T: Send,
{
    let rt = runtime();
    let (outcome, signal) = py.detach(|| {
        rt.block_on(async {
            let mut work = std::pin::pin!(AssertUnwindSafe(future).catch_unwind());
            let mut interrupt = Some(interrupt);
            let mut signal = None;
            loop {
                tokio::select! {
                    biased;
                    result = &mut work => {
                        let result = result.unwrap_or_else(|panic| {
                            Err(Error::from_panic(operation, &*panic))
                        });
                        return (result, signal);
                    }
                    raised = signals(), if signal.is_none() => {
                        if let Some(interrupt) = interrupt.take() {
                            interrupt();
                        }
                        signal = Some(raised);
                    }
                }
            }
        })
    });
    match (outcome, signal) {
        (_, Some(signal)) => Err(signal),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(to_py(e)),
    }
}

/// Checks for pending signals (Ctrl-C) every 100 ms; returns the first one raised.
async fn signals() -> PyErr {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            return e;
        }
    }
}

enum Interrupt {
    Failed(Error),
    Signal(PyErr),
}
