//! Integration tests of trainstore-featurestore, one binary to save link time: the registry
//! on a real catalog, historical retrieval over real Parquet and snapshot files, the pushdown
//! engine on MariaDB, and the online stores.

mod derived;
mod historical;
mod hostile_input;
mod offline;
mod online;
mod pushdown;
mod registry;
mod sharing;
mod support;
mod training_sets;
