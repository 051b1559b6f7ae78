//! Integration tests of trainstore-doris, one binary to save link time.
//!
//! MySQL-protocol tests need the MariaDB from `scripts/test-services`
//! (`TRAINSTORE_TEST_MYSQL_URL`); each test works in a database of its own. TLS tests start a
//! MariaDB of their own (`mysql_tls`), from the same installation.

mod certs;
mod file;
mod filters;
mod flight;
mod mysql;
mod mysql_tls;
mod parse;
mod support;
mod table;
mod write;
