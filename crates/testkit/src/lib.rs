//! Test support shared by trainstore's crates (dev-dependency only, never published).
//!
//! [`FaultProxy`] sits between a client under test and a real server on loopback and misbehaves
//! on request: it stalls, resets or truncates connections after a given number of bytes, so
//! tests can check that no network call hangs and that errors name the endpoint.
//! [`create_bucket`] makes a bucket on the loopback S3 server.

pub mod golden;
mod proxy;

pub use proxy::{Fault, FaultProxy};

/// Creates `bucket` on the S3 server at `endpoint` (`http://host:port`) with a bare HTTP
/// request: the loopback server does not check signatures for bucket creation, and
/// object_store has no bucket API.
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("S3 server reachable");
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "bucket creation failed: {response}"
    );
}
