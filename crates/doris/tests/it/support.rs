//! A throwaway database per test on the loopback MariaDB, and reading a source whole.

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use mysql_async::prelude::Queryable;
use trainstore_core::{DataSource, ScanRequest, Secret};

pub fn server_url() -> String {
    std::env::var("TRAINSTORE_TEST_MYSQL_URL").expect(
        "TRAINSTORE_TEST_MYSQL_URL is not set: run `eval \"$(scripts/test-services)\"` first",
    )
}

/// Everything `source` returns for an unfiltered scan (panics on any error).
pub async fn scan_all(source: &impl DataSource) -> Vec<RecordBatch> {
    source
        .scan(&ScanRequest::default())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
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
