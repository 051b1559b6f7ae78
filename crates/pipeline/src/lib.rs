//! Pipelines: documents in the design document's format (`apiVersion: train-platform/v1`,
//! `kind: Pipeline`), validated with every problem located, and a DAG executor that runs them
//! with a caller's task runner.
//!
//! This crate knows nothing of Doris, features or models: task types are names a caller
//! registers ([`TaskTypes`]) and a [`TaskRunner`] it supplies gives them meaning.
//!
//! - [`document`]: [`Pipeline`] and its parts; [`Pipeline::parse`] reads YAML or JSON.
//! - [`report`]: the [`Report`] of a document's problems, each [`Issue`] with its path and line.
//! - [`runner`]: the [`TaskRunner`] trait and what a task attempt is given.
//! - [`budget`]: the [`Budget`] of CPU, memory and GPUs tasks share.
//! - [`executor`]: the [`Executor`]: parallelism within the budget, priority, retries, timeouts,
//!   cancellation, `when`, resume.
//! - [`state`]: a run's [`RunState`] and the [`Event`]s that change it.
//! - [`store`]: the [`RunStore`] runs are persisted in, on a directory or an object store.
//! - [`argo`]: [`argo::export`] writes a pipeline as an Argo Workflows `Workflow` that runs
//!   each task in a pod, with [`ArgoOptions`] for the workspace, image, volumes and secrets.
//!
//! The format and the executor's rules for users are in `docs/pipelines.md`.

#![warn(missing_docs)]

pub mod argo;
pub mod budget;
mod condition;
pub mod document;
pub mod error;
pub mod executor;
mod graph;
mod node;
mod quantity;
mod read;
mod refs;
pub mod report;
pub mod runner;
pub mod state;
pub mod store;
mod validate;

pub use argo::{ArgoEnv, ArgoEnvValue, ArgoOptions, ArgoVolume, ImagePullPolicy};
pub use budget::{Amount, Budget, Oversize};
pub use document::{
    API_VERSION, Dependency, Edge, EdgeOrigin, Input, KEYS, KIND, MAX_RETRIES, Metadata, Output,
    Pipeline, Resources, Source, Task, TaskTypes,
};
pub use error::{Error, Result};
pub use executor::{Executor, ExecutorOptions, RunRequest, TaskOutcome, generated_id};
pub use quantity::{format_cpu, format_memory};
pub use refs::Reference;
pub use report::{Issue, IssueKind, Report};
pub use runner::{
    Invocation, LogSink, Outputs, TaskContext, TaskFailure, TaskRunner, TaskRunnerRef,
};
pub use state::{Change, Event, RunState, RunStatus, RunSummary, TaskState, TaskStatus};
pub use store::{
    LocalRunStore, ObjectRunStore, RunStore, RunStoreRef, check_name, history, load_run,
};

/// Re-exported so runners and callers use the same cancellation token type.
pub use tokio_util::sync::CancellationToken;
/// Re-exported: the backoff [`ExecutorOptions::backoff`] takes.
pub use trainstore_core::retry::Backoff;
