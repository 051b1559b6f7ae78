//! Doris feature snapshots: the snapshot schema, the parser into typed Arrow, and the sources
//! that read them from Doris (over the MySQL protocol or Arrow Flight SQL) and from files.
//!
//! - [`SnapshotSchema`] (defined in `trainstore_core::snapshot`, where the feature store sees it
//!   too): the design document's layout or a flat table.
//! - [`parse`]: [`SnapshotParser`] and its [`ParseReport`].
//! - [`mysql`]: [`DorisSource`], Doris (or MariaDB/MySQL) over the MySQL protocol, read by a
//!   text-protocol client of its own that decodes rows straight into Arrow builders.
//! - [`file`](mod@file): [`FileSource`], Parquet, CSV and JSON-lines snapshot files on any mount.
//! - [`table`]: [`ParquetSource`], typed Parquet files read as stored.
//! - [`flight`]: [`flight::FlightSource`], Doris over Arrow Flight SQL.
//! - [`sql`]: validated identifiers and the literal encoder.
//! - [`net`]: [`Timeouts`], the connect and read deadlines every network client keeps.
//! - [`write`](mod@write): idempotent write-back of Arrow batches under a label.
//! - [`load`]: raw snapshot rows loaded into a MySQL-protocol table (tests, benchmarks, demo).
//! - [`synth`]: [`SnapshotGenerator`], seeded synthetic snapshots for tests, benchmarks and demos.

pub mod file;
pub mod flight;
mod floats;
pub mod load;
pub mod mysql;
pub mod net;
pub mod parse;
mod resume;
mod scan;
pub mod sql;
mod stream;
pub mod synth;
pub mod table;
pub mod write;

pub use file::{FileFormat, FileSource, write_snapshot_file};
pub use mysql::{Dialect, DorisSource, ReadOptions};
pub use net::Timeouts;
pub use parse::{ColumnReport, ParseIssue, ParseReport, SnapshotParser};
pub use synth::{SnapshotGenerator, SynthConfig};
pub use table::ParquetSource;
pub use trainstore_core::snapshot::{
    FeatureField, FeatureKind, SnapshotSchema, SnapshotSchemaBuilder,
};
