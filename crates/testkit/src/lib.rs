//! Test support shared by trainstore's crates (dev-dependency only, never published).
//!
//! [`FaultProxy`] sits between a client under test and a real server on loopback and misbehaves
//! on request: it stalls, resets or truncates connections after a given number of bytes, so
//! tests can check that no network call hangs and that errors name the endpoint.

mod proxy;

pub use proxy::{Fault, FaultProxy};
