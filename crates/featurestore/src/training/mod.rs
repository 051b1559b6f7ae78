//! Training-set versions: immutable, quality-scored, selectable sets of rows, kept as
//! Parquet files and a manifest in a workspace's versioned catalog.
//!
//! - [`quality`]: the quality of a set, computed in one pass while it is written.
//! - [`drift`]: how far each feature's distribution moved between two sets (PSI, KS).

pub mod drift;
pub mod quality;
