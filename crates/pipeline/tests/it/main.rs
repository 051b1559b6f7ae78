//! Integration tests of trainstore-pipeline, one binary to save link time.

mod argo;
mod documents;
mod executor;
mod json_schema;
mod pods;
mod schema;
mod store;
mod support;
