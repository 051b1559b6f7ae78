//! Integration tests of trainstore-featurestore, one binary to save link time: the registry
//! on a real catalog, and historical retrieval over real Parquet and snapshot files.

mod historical;
mod online;
mod registry;
mod support;
