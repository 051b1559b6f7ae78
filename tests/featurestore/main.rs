//! Integration tests of the feature store (`trainstore-featurestore`), one binary to save link
//! time, here in the facade package because its sources are the facade's: the registry
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
