//! A throwaway database per test on the loopback MariaDB, and reading a source whole.

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use mysql_async::prelude::Queryable;
use trainstore_core::{DataSource, RecordBatchStream, Result, ScanRequest, Secret};

pub fn server_url() -> String {
    std::env::var("TRAINSTORE_TEST_MYSQL_URL").expect(
        "TRAINSTORE_TEST_MYSQL_URL is not set: run `eval \"$(scripts/test-services)\"` first",
    )
}

/// Everything `source` returns for an unfiltered scan (panics on any error).
pub async fn scan_all(source: &impl DataSource) -> Vec<RecordBatch> {
    collect(source.scan(&ScanRequest::default()).await).await
}

/// Every batch of a scan that must start and end well (panics on any error).
pub async fn collect(stream: Result<RecordBatchStream>) -> Vec<RecordBatch> {
    stream.unwrap().try_collect().await.unwrap()
}

/// A database created for one test and dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("ts_test_{:016x}", rand_u64());
        let mut conn = mysql_async::Conn::from_url(server_url())
            .await
            .expect("MariaDB reachable");
        conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        TestDb { name }
    }

    /// The URL of this database.
    pub fn url(&self) -> Secret {
        Secret::new(format!(
            "{}/{}",
            server_url().trim_end_matches('/'),
            self.name
        ))
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(self.url().expose())
            .await
            .unwrap()
    }

    pub async fn drop_db(self) {
        let mut conn = self.conn().await;
        conn.query_drop(format!("DROP DATABASE `{}`", self.name))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// The loopback MariaDB's address, for a proxy in front of it.
pub fn server_addr() -> std::net::SocketAddr {
    let url = server_url();
    let authority = url.rsplit('@').next().unwrap_or(&url);
    let authority = authority.trim_start_matches("mysql://");
    let authority = authority.split('/').next().unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(authority)
        .unwrap()
        .next()
        .unwrap()
}

/// `db`'s URL, leading through `proxy` instead of to the server.
pub fn url_through(db: &TestDb, proxy: &trainstore_testkit::FaultProxy) -> Secret {
    let server = server_addr().to_string();
    Secret::new(
        db.url()
            .expose()
            .replacen(&server, &proxy.addr().to_string(), 1),
    )
}

/// `url` with [`PASSWORD`], for servers that never get to check it.
pub fn with_password(url: &Secret) -> Secret {
    Secret::new(
        url.expose()
            .replacen("mysql://root@", &format!("mysql://root:{PASSWORD}@"), 1),
    )
}

/// A password no error may show.
pub const PASSWORD: &str = "hunter2secret";

/// Checks a network error: a timeout of `phase` naming `endpoint`, without the password.
pub fn assert_timeout(err: &trainstore_core::Error, phase: &str, endpoint: std::net::SocketAddr) {
    let text = err.to_string();
    assert!(
        matches!(err, trainstore_core::Error::Timeout { operation, .. } if *operation == phase),
        "expected a {phase} timeout: {text}"
    );
    assert!(text.contains(&endpoint.to_string()), "{text}");
    assert!(!format!("{text} {err:?}").contains(PASSWORD), "{err:?}");
}
