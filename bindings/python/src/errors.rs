//! Maps Rust errors onto the Python hierarchy defined in `trainstore/exceptions.py`.
//!
//! The classes are defined in Python so they can also derive from the matching built-ins
//! (`ValueError`, `LookupError`, …) and be documented where users read.

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use trainstore::Error;

fn class_for(error: &Error) -> &'static str {
    match error {
        Error::InvalidInput { .. } => "InvalidInputError",
        Error::NotFound { .. } => "NotFoundError",
        Error::AlreadyExists { .. } => "AlreadyExistsError",
        Error::PermissionDenied { .. } => "PermissionDeniedError",
        Error::Leased { .. } => "LeasedError",
        Error::VersionConflict { .. } => "VersionConflictError",
        Error::UnsupportedStore { .. } => "UnsupportedStoreError",
        Error::UnsupportedLayout { .. } => "UnsupportedLayoutError",
        Error::NotSupported { .. } => "NotSupportedError",
        Error::Config { .. } => "ConfigError",
        Error::Corrupt { .. } => "CorruptDataError",
        Error::Malformed { .. } => "MalformedDataError",
        Error::Storage { .. } => "StorageError",
        Error::Remote { .. } => "RemoteError",
        Error::Timeout { .. } => "TimeoutError",
        Error::Cancelled => "CancelledError",
        _ => "TrainstoreError",
    }
}

/// The Python exception for `error`, with `retryable` set on it.
pub fn to_py(error: Error) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let module = py.import("trainstore.exceptions")?;
            let class = module.getattr(class_for(&error))?;
            let args = PyTuple::new(py, [error.to_string()])?;
            let instance = class.call1(args)?;
            instance.setattr("retryable", error.retryable())?;
            Ok(PyErr::from_value(instance))
        };
        build().unwrap_or_else(|e| e)
    })
}
