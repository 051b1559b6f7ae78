//! A loopback TCP proxy that forwards to a real server and injects faults.
//!
//! Every connection counts the bytes it has forwarded, both directions together; the current
//! [`Fault`] decides what happens once that count reaches its `after`. The fault can be changed
//! while connections are open (connect through a healthy proxy, then make it stall), and it
//! applies to each connection's next bytes. The proxy stops by itself after [`LIFETIME`] or
//! when dropped, closing every connection, so a test that fails never leaves it running.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How long a proxy runs at most: far longer than any test needs, short enough that a stalled
/// connection cannot outlive a hung test run by much.
pub const LIFETIME: Duration = Duration::from_secs(120);

/// What the proxy does to a connection once it has forwarded `after` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards everything.
    PassThrough,
    /// Forwards nothing more but keeps both connections open: a server that went silent
    /// (`after: 0` is one that accepts and never answers).
    Stall { after: u64 },
    /// Closes the client's connection abruptly (a TCP reset) and the server's.
    Reset { after: u64 },
    /// Closes both connections cleanly, as if the stream had ended there.
    Truncate { after: u64 },
}

impl Fault {
    /// The bytes still forwarded, `None` for no limit.
    fn budget(self, forwarded: u64) -> Option<u64> {
        match self {
            Fault::PassThrough => None,
            Fault::Stall { after } | Fault::Reset { after } | Fault::Truncate { after } => {
                Some(after.saturating_sub(forwarded))
            }
        }
    }
}

/// A running proxy on `127.0.0.1`; dropping it closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `target` that behaves as `fault` says.
    pub async fn start(target: SocketAddr, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let fault = Arc::new(Mutex::new(fault));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (fault, accepted) = (fault.clone(), accepted.clone());
            async move {
                // The connections live in the set: when the proxy stops, they are closed.
                let mut connections = JoinSet::new();
                let serve = async {
                    while let Ok((client, _)) = listener.accept().await {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        connections.spawn(forward(client, target, fault.clone()));
                    }
                };
                let _ = tokio::time::timeout(LIFETIME, serve).await;
            }
        });
        FaultProxy {
            addr,
            fault,
            accepted,
            task,
        }
    }

    /// The address clients connect to instead of the server's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the fault, for the next bytes of open connections and for new ones.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("fault lock") = fault;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards between `client` and a new connection to `target` until either side ends or the
/// fault strikes.
async fn forward(mut client: TcpStream, target: SocketAddr, fault: Arc<Mutex<Fault>>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let mut forwarded = 0u64;
    let (mut up, mut down) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    let (mut client_open, mut server_open) = (true, true);
    while client_open || server_open {
        let current = *fault.lock().expect("fault lock");
        if current.budget(forwarded) == Some(0) {
            return strike(current, client, server).await;
        }
        // Each direction's bytes go out as they come; the other direction is read meanwhile.
        let (from_client, n) = tokio::select! {
            n = client.read(&mut up), if client_open => (true, n.unwrap_or(0)),
            n = server.read(&mut down), if server_open => (false, n.unwrap_or(0)),
        };
        let (to, data) = if from_client {
            (&mut server, &up)
        } else {
            (&mut client, &down)
        };
        if n == 0 {
            let _ = to.shutdown().await;
            if from_client {
                client_open = false;
            } else {
                server_open = false;
            }
            continue;
        }
        let current = *fault.lock().expect("fault lock");
        let allowed = current.budget(forwarded).map_or(n, |b| n.min(b as usize));
        if to.write_all(&data[..allowed]).await.is_err() {
            return;
        }
        forwarded += allowed as u64;
    }
}

/// Does what `fault` says to a connection whose budget is spent.
async fn strike(fault: Fault, client: TcpStream, mut server: TcpStream) {
    match fault {
        Fault::PassThrough => {}
        Fault::Stall { .. } => {
            // Holds both sockets, reading nothing, until the proxy stops.
            std::future::pending::<()>().await;
        }
        Fault::Reset { .. } => {
            let _ = client.set_zero_linger();
        }
        Fault::Truncate { .. } => {
            let mut client = client;
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
        }
    }
    drop(server);
}
