//! Integration tests of trainstore-core, one binary to save link time.
//!
//! S3 tests need the S3-compatible server from `scripts/test-services`
//! (`TRAINSTORE_TEST_S3_ENDPOINT`); each test works in a bucket of its own.

mod catalog;
mod golden;
mod secrets;
mod storage_conformance;
mod support;
