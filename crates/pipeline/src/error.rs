//! The crate's one error type.

use crate::report::Report;

/// What can go wrong reading, validating or running a pipeline. A task that fails is not an
/// error of the run: the run ends `failed` and the task's state says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document has problems; the report lists every one.
    #[error("{0}")]
    Invalid(Report),

    /// A run was asked for with a parameter the document does not declare.
    #[error("unknown parameter {name:?}; the pipeline declares: {declared}")]
    UnknownParameter {
        /// The parameter given.
        name: String,
        /// The declared parameters, comma-separated.
        declared: String,
    },

    /// Tasks need more than the whole resource budget, so they could never start.
    #[error("{0}")]
    OverBudget(String),

    /// A run id or name that cannot name a run (only letters, digits, `-`, `_`, `.`).
    #[error("{what} {value:?} is not valid: {reason}")]
    InvalidName {
        /// What was being named.
        what: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        reason: &'static str,
    },

    /// No run with this id is stored.
    #[error("no run {0:?} in the run store")]
    RunNotFound(String),

    /// A run already exists under this id.
    #[error("a run {0:?} already exists in the run store")]
    RunExists(String),

    /// A run was resumed, or one of its tasks run, with a different pipeline definition.
    #[error(
        "run {run:?} was started from definition {recorded:?}, not {given:?}; resume it, or run its tasks, with the definition it ran"
    )]
    DefinitionChanged {
        /// The run.
        run: String,
        /// The definition recorded when it started.
        recorded: String,
        /// The definition given now.
        given: String,
    },

    /// A task of an existing run was run with other parameters than the run's (the
    /// document's defaults overridden by those given); every pod of a run must be given the
    /// same.
    #[error(
        "run {run:?} was started with other parameters ({differences}); run its tasks with the parameters it started with"
    )]
    ParametersChanged {
        /// The run.
        run: String,
        /// Each differing parameter with its recorded and given value, `; `-separated.
        differences: String,
    },

    /// A task of a run was asked for without the run's id.
    #[error("running one task of a run needs the run's id")]
    RunIdRequired,

    /// The pipeline has no task of this name.
    #[error("pipeline {pipeline:?} has no task {task:?}")]
    UnknownTask {
        /// The pipeline's name.
        pipeline: String,
        /// The task asked for.
        task: String,
    },

    /// A task was run before the tasks it waits for finished: Argo starts a task's pod only
    /// after them, so this is a misuse (a pod started by hand, or out of order).
    #[error(
        "task {task:?} of run {run:?} cannot run yet: the tasks it waits for must have succeeded or been skipped, and these have not: {upstream}"
    )]
    UpstreamUnfinished {
        /// The run.
        run: String,
        /// The task asked for.
        task: String,
        /// Each unfinished upstream task with its status (`"b" (running)`), `, `-separated.
        upstream: String,
    },

    /// A run's stored state does not read.
    #[error("run {run:?}: its stored state is damaged: {reason}")]
    Corrupt {
        /// The run.
        run: String,
        /// What is wrong.
        reason: String,
    },

    /// Reading or writing the run store failed.
    #[error("run store: {operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or object.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },

    /// A pipeline cannot be exported to Argo Workflows as asked: an option that is not
    /// valid, two tasks that would get the same Argo name, a document text that is not the
    /// pipeline's, a manifest too large for Kubernetes.
    #[error("cannot export to Argo Workflows: {what}: {reason}")]
    Export {
        /// What is wrong (an option, the task names, the document).
        what: String,
        /// Why, and what to do.
        reason: String,
    },

    /// An export option would write a credential into the manifest: its value is given
    /// literally where only a reference to a Kubernetes secret may be. The value itself is
    /// never repeated in the message.
    #[error(
        "{what} looks like a secret and is given as a literal value; give it as a reference to a Kubernetes secret (its name and key) so that nothing secret is written into the manifest"
    )]
    LiteralSecret {
        /// The option (`environment variable "AWS_SECRET_ACCESS_KEY"`).
        what: String,
    },

    /// The object store behind a run store failed.
    #[error("run store: {0}")]
    ObjectStore(#[from] trainstore_core::object_store::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
