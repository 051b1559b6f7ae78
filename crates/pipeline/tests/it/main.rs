//! Integration tests of trainstore-pipeline, one binary to save link time.

mod documents;
mod executor;
mod schema;
mod store;
mod support;
