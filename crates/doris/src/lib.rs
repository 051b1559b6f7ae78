//! Doris feature snapshots: the snapshot schema, the parser into typed Arrow, and (in later
//! steps) the Doris readers over the MySQL protocol and Arrow Flight SQL.
//!
//! - [`schema`]: [`SnapshotSchema`], the design document's layout or a flat table.
//! - [`parse`]: [`SnapshotParser`] and its [`ParseReport`].

pub mod parse;
mod scan;
pub mod schema;

pub use parse::{ColumnReport, ParseIssue, ParseReport, SnapshotParser};
pub use schema::{FeatureField, FeatureKind, SnapshotSchema, SnapshotSchemaBuilder};
