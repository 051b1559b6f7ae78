//! The shared online store on Redis.
//!
//! Each entity is a hash `trainstore:{namespace}:{view}:{key bytes}` with the row (`d`) and
//! its version in hex (`v`, ordered like the row's times). A Lua script compares versions and
//! writes in one step on the server, so concurrent materializations of different windows
//! can never let an older row win. The namespace keeps workspaces sharing one Redis apart.

use std::fmt;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use trainstore_core::{Error, Result, Timestamp};

use super::codec;
use super::{OnlineStore, RowVisitor};

/// Rows per script call: large enough to amortize round trips, small enough not to block
/// the server for long.
const WRITE_CHUNK: usize = 1000;

const WRITE_NEWER: &str = r#"
local written = 0
for i, key in ipairs(KEYS) do
  local version = ARGV[2 * i - 1]
  local held = redis.call('HGET', key, 'v')
  if (not held) or held <= version then
    redis.call('HSET', key, 'v', version, 'd', ARGV[2 * i])
    written = written + 1
  end
end
return written
"#;

const ADVANCE: &str = r#"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if (not held) or tonumber(held) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 0
"#;

fn redis_error(operation: &'static str, e: redis::RedisError) -> Error {
    Error::Remote {
        service: "redis".into(),
        operation,
        reason: e.to_string(),
        transient: e.is_io_error() || e.is_timeout() || e.is_connection_dropped(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feature rows in Redis, shared by every process that names the same namespace.
#[derive(Clone)]
pub struct RedisOnlineStore {
    connection: ConnectionManager,
    /// `host:port/db`, safe to show.
    endpoint: String,
    prefix: String,
}

impl fmt::Debug for RedisOnlineStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisOnlineStore({}, {})", self.endpoint, self.prefix)
    }
}

impl RedisOnlineStore {
    /// Connects to `url` (`redis://[:password@]host:port/db`); keys start with
    /// `trainstore:{namespace}:`.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::invalid(
                "Redis URL",
                "(hidden: it may hold a password)",
                e.to_string(),
            )
        })?;
        let info = client.get_connection_info();
        let endpoint = format!("{}/{}", info.addr(), info.redis_settings().db());
        let connection = ConnectionManager::new(client)
            .await
            .map_err(|e| redis_error("connect", e))?;
        Ok(RedisOnlineStore {
            connection,
            endpoint,
            prefix: format!("trainstore:{namespace}:"),
        })
    }

    fn key(&self, view: &str, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + view.len() + 1 + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(view.as_bytes());
        k.push(b':');
        k.extend_from_slice(key);
        k
    }

    fn progress_key(&self) -> String {
        format!("{}_materialized_until", self.prefix)
    }
}

#[async_trait]
impl OnlineStore for RedisOnlineStore {
    fn describe(&self) -> String {
        format!("Redis online store {} ({})", self.endpoint, self.prefix)
    }

    async fn write(&self, view: &str, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<usize> {
        let script = redis::Script::new(WRITE_NEWER);
        let mut connection = self.connection.clone();
        let mut written = 0;
        for chunk in rows.chunks(WRITE_CHUNK) {
            let mut call = script.prepare_invoke();
            for (key, row) in chunk {
                call.key(self.key(view, key))
                    .arg(hex(codec::version(row)?))
                    .arg(row.as_slice());
            }
            let n: usize = call
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error("write", e))?;
            written += n;
        }
        Ok(written)
    }

    async fn read(&self, view: &str, keys: &[Vec<u8>], each: &mut RowVisitor<'_>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.hget(self.key(view, k), "d");
        }
        let mut connection = self.connection.clone();
        let rows: Vec<Option<Vec<u8>>> = pipe
            .query_async(&mut connection)
            .await
            .map_err(|e| redis_error("read", e))?;
        rows.iter().try_for_each(|r| each(r.as_deref()))
    }

    async fn materialized_until(&self, view: &str) -> Result<Option<Timestamp>> {
        let mut connection = self.connection.clone();
        let held: Option<i64> = redis::cmd("HGET")
            .arg(self.progress_key())
            .arg(view)
            .query_async(&mut connection)
            .await
            .map_err(|e| redis_error("read", e))?;
        Ok(held.map(Timestamp::from_millis))
    }

    async fn set_materialized_until(&self, view: &str, end: Timestamp) -> Result<()> {
        let mut connection = self.connection.clone();
        let _: i64 = redis::Script::new(ADVANCE)
            .key(self.progress_key())
            .arg(view)
            .arg(end.as_millis())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| redis_error("write", e))?;
        Ok(())
    }
}
