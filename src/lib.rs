//! trainstore: point-in-time-correct, versioned training sets from Doris feature snapshots.
//!
//! This facade is the one API over every trainstore crate. Open a [`Workspace`] on any mount
//! (a local directory, `memory://`, `s3://`, or a named `mount://`), then work through it.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let ws = trainstore::Workspace::open("memory://quickstart").await?;
//! println!("workspace at {}", ws.url());
//! # Ok::<_, trainstore::Error>(())
//! # }).unwrap();
//! ```

pub mod allocator;
pub mod features;
pub mod models;
pub mod pipelines;
pub mod settings;
pub mod snapshots;
pub mod sources;
pub mod workspace;

/// The README's Rust examples, run as doctests (its other blocks are run by the Python tests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}

pub use settings::{LiteralSecrets, Settings};
pub use snapshots::SnapshotSummary;
pub use sources::source_factories;
pub use trainstore_core as core;
pub use trainstore_core::{Error, Result};
pub use trainstore_doris as doris;
pub use trainstore_featurestore as featurestore;
pub use trainstore_train as train;
pub use workspace::{
    GC_GRACE, GcReport, LAYOUT_VERSION, ONLINE_STORE_ENV, VerifyReport, Workspace, WorkspaceConfig,
    WorkspaceInfo,
};
