//! The read path's own MySQL-protocol client. Rows are decoded where they land, in one large
//! read buffer, and handed out as borrowed cells, so each byte is copied once on its way from
//! the socket to an Arrow builder. mysql_async (which loading and write-back keep) reads
//! through an 8 KiB frame buffer and turns every row into a `Row` of owned cells: reading a
//! million design-document rows through it took 2.6–2.8 s of client CPU, through this 1.4–1.6 s
//! (BENCHMARKS.md).
//!
//! It speaks what a reader needs from a Doris FE (or MariaDB, MySQL): TCP, plain or with TLS
//! (`tls`), the authentication plugins of `auth`, `COM_QUERY` and text-protocol result sets.
//! Handshake and error packets are parsed by `mysql_common`, the protocol crate under
//! mysql_async; packet framing and rows are ours.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::Opts;
use mysql_common::constants::CapabilityFlags;
use mysql_common::constants::UTF8MB4_GENERAL_CI;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, ErrPacket, HandshakePacket, HandshakeResponse, SslRequest,
};
use mysql_common::proto::MySerialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::{self, Channel, Switch};
use super::tls::{Stream, Tls};
use crate::net::Timeouts;

/// The read buffer: the most one `recv` can bring (a packet larger than this grows it).
const READ_BUFFER: usize = 1 << 20;
/// A payload this long continues in the next packet.
const MAX_FRAGMENT: usize = 0xFF_FFFF;
/// The largest packet we tell the server we accept.
const MAX_PACKET: u32 = 1 << 30;
const COM_QUERY: u8 = 0x03;
/// MariaDB's "connection was killed" and "server shutdown in progress": the next connection
/// may well succeed.
const TRANSIENT_SERVER_ERRORS: [u16; 2] = [1927, 1053];

/// What went wrong on the wire.
#[derive(Debug)]
pub(crate) enum WireError {
    Io(std::io::Error),
    /// The server's error packet.
    Server {
        code: u16,
        message: String,
    },
    /// The server sent something this client does not expect or support.
    Protocol(String),
    /// The server did not answer in time: `phase` is `connect`, `handshake` or `read`.
    TimedOut {
        phase: &'static str,
        after: Duration,
    },
    /// The TLS handshake failed: the server's certificate is not trusted, or it speaks no TLS
    /// we do. Trying again will not help.
    Tls(std::io::Error),
}

pub(crate) type WireResult<T> = std::result::Result<T, WireError>;

impl WireError {
    /// A dropped connection or a killed session: reading again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            WireError::Io(_) | WireError::TimedOut { .. } => true,
            WireError::Server { code, .. } => TRANSIENT_SERVER_ERRORS.contains(code),
            WireError::Protocol(_) | WireError::Tls(_) => false,
        }
    }

    /// The server's error code, if the server refused.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            WireError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "connection: {e}"),
            WireError::Server { code, message } => write!(f, "server error {code}: {message}"),
            WireError::Protocol(what) => write!(f, "protocol: {what}"),
            WireError::TimedOut { phase, after } => {
                write!(f, "no answer to {phase} within {after:?}")
            }
            WireError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e)
    }
}

fn protocol(what: impl Into<String>) -> WireError {
    WireError::Protocol(what.into())
}

/// A complete packet in the buffer, or how many bytes from the read position one needs.
enum Frame {
    Ready(Range<usize>),
    Need(usize),
}

/// One connection.
pub(crate) struct WireConn {
    stream: Stream,
    /// Bytes received; `pos..end` is not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The sequence number the next packet carries, either way.
    seq: u8,
    capabilities: CapabilityFlags,
    /// A result set is still arriving: the connection cannot take another query.
    busy: bool,
    /// The current row's cells, as ranges of its payload (`None` for NULL).
    cells: Vec<Option<(usize, usize)>>,
    /// How long one read or write may wait on the server.
    read_timeout: Duration,
    /// The longest payload accepted: what the handshake announces ([`MAX_PACKET`]), so a
    /// hostile server cannot make the buffer grow without bound (tests lower it).
    max_payload: usize,
}

impl WireConn {
    /// Connects, over TLS when `tls` is given, and logs in with the URL's user, password and
    /// database, all within the connect timeout.
    pub async fn connect(opts: &Opts, timeouts: Timeouts, tls: Option<&Tls>) -> WireResult<Self> {
        let deadline = tokio::time::Instant::now() + timeouts.connect;
        let timed_out = |phase| WireError::TimedOut {
            phase,
            after: timeouts.connect,
        };
        let tcp = TcpStream::connect((opts.ip_or_hostname(), opts.tcp_port()));
        let stream = tokio::time::timeout_at(deadline, tcp)
            .await
            .map_err(|_| timed_out("connect"))??;
        stream.set_nodelay(true)?;
        // Logging in waits on the connect deadline alone; reads wait the read timeout after.
        let conn = WireConn::over(Stream::Plain(stream), timeouts.connect);
        let log_in = async move {
            let mut conn = conn;
            let hello = conn.hello().await?;
            if let Some(tls) = tls {
                conn = conn.encrypt(tls, &hello).await?;
            }
            conn.log_in(opts, &hello).await?;
            Ok(conn)
        };
        let mut conn = tokio::time::timeout_at(deadline, log_in)
            .await
            .map_err(|_| timed_out("handshake"))?
            .map_err(|e| match e {
                WireError::TimedOut { .. } => timed_out("handshake"),
                e => e,
            })?;
        conn.read_timeout = timeouts.read;
        Ok(conn)
    }

    fn over(stream: Stream, read_timeout: Duration) -> Self {
        WireConn {
            stream,
            buf: vec![0; READ_BUFFER],
            pos: 0,
            end: 0,
            seq: 0,
            capabilities: CapabilityFlags::empty(),
            busy: false,
            cells: Vec::new(),
            read_timeout,
            max_payload: MAX_PACKET as usize,
        }
    }

    /// Reads the server's greeting and settles the capabilities both sides use.
    async fn hello(&mut self) -> WireResult<Hello> {
        let hello = self.packet().await?;
        let hello = &self.buf[hello];
        if hello.first() == Some(&0xFF) {
            return Err(server_error(hello, CapabilityFlags::empty()));
        }
        let handshake: HandshakePacket<'_> = ParseBuf(hello)
            .parse(())
            .map_err(|e| protocol(format!("bad handshake: {e}")))?;
        let required = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH;
        if !handshake.capabilities().contains(required) {
            return Err(protocol(
                "the server predates the 4.1 protocol with authentication plugins",
            ));
        }
        self.capabilities = handshake.capabilities()
            & (required
                | CapabilityFlags::CLIENT_LONG_PASSWORD
                | CapabilityFlags::CLIENT_LONG_FLAG
                | CapabilityFlags::CLIENT_TRANSACTIONS
                | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA);
        let mut nonce = handshake.scramble_1_ref().to_vec();
        nonce.extend_from_slice(handshake.scramble_2_ref().unwrap_or_default());
        nonce.resize(20, 0);
        let version = handshake
            .maria_db_server_version_parsed()
            .or_else(|| handshake.server_version_parsed())
            .unwrap_or((0, 0, 0));
        Ok(Hello {
            nonce,
            version,
            offers_tls: handshake
                .capabilities()
                .contains(CapabilityFlags::CLIENT_SSL),
        })
    }

    /// Asks the server to switch to TLS (an `SSLRequest`) and runs the TLS handshake; the
    /// login then goes over the encrypted connection.
    async fn encrypt(mut self, tls: &Tls, hello: &Hello) -> WireResult<Self> {
        if !hello.offers_tls {
            return Err(protocol(
                "the URL asks for TLS (require_ssl) but the server does not offer it",
            ));
        }
        self.capabilities |= CapabilityFlags::CLIENT_SSL;
        let mut request = Vec::new();
        SslRequest::new(self.capabilities, MAX_PACKET, UTF8MB4_GENERAL_CI as u8)
            .serialize(&mut request);
        self.write_packet(&request).await?;
        // Bytes that came before the handshake would be read as if they had been encrypted.
        if self.pos != self.end {
            return Err(protocol("the server sent data before the TLS handshake"));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(protocol("TLS requested twice"));
        };
        Ok(WireConn {
            stream: tls.wrap(tcp).await.map_err(WireError::Tls)?,
            ..self
        })
    }

    /// Logs in as the URL's user. The first answer is `mysql_native_password`'s, what Doris
    /// accounts use; an account with another plugin makes the server ask to switch, once.
    async fn log_in(&mut self, opts: &Opts, hello: &Hello) -> WireResult<()> {
        let plugin = AuthPlugin::MysqlNativePassword;
        let response = HandshakeResponse::new(
            Some(auth::scramble(&plugin, opts.pass(), &hello.nonce)),
            hello.version,
            opts.user().map(str::as_bytes),
            opts.db_name().map(str::as_bytes),
            Some(plugin),
            self.capabilities,
            None,
            MAX_PACKET,
        );
        let mut payload = Vec::new();
        response.serialize(&mut payload);
        self.write_packet(&payload).await?;

        let channel = Channel {
            encrypted: matches!(self.stream, Stream::Tls(_)),
            cleartext_allowed: opts.enable_cleartext_plugin(),
        };
        // The plugin switched to and its nonce, once the server has asked.
        let mut switched: Option<(AuthPlugin<'static>, Vec<u8>)> = None;
        loop {
            let reply = self.packet().await?;
            let reply = &self.buf[reply];
            match (reply.first(), &switched) {
                (Some(0x00), _) => return Ok(()),
                (Some(0xFF), _) => return Err(server_error(reply, self.capabilities)),
                (Some(0xFE), None) => {
                    let switch = Switch::parse(reply).map_err(protocol)?;
                    let answer = auth::answer(&switch.plugin, opts.pass(), switch.nonce(), channel)
                        .map_err(protocol)?;
                    switched = Some((switch.plugin.clone().into_owned(), switch.nonce().to_vec()));
                    self.write_packet(&answer).await?;
                }
                (Some(&auth::SHA2_MORE_DATA), Some((AuthPlugin::CachingSha2Password, nonce))) => {
                    match reply.get(1) {
                        // The OK packet follows.
                        Some(&auth::SHA2_FAST_AUTH_OK) => {}
                        Some(&auth::SHA2_FULL_AUTH) => {
                            let nonce = nonce.clone();
                            self.sha2_full_auth(opts.pass(), &nonce, channel).await?;
                        }
                        _ => return Err(protocol("unexpected caching_sha2_password packet")),
                    }
                }
                _ => return Err(protocol("unexpected packet while logging in")),
            }
        }
    }

    /// Sends the password for `caching_sha2_password`'s full authentication: as it is over
    /// TLS, else encrypted to the public key the server is asked for.
    async fn sha2_full_auth(
        &mut self,
        password: Option<&str>,
        nonce: &[u8],
        channel: Channel,
    ) -> WireResult<()> {
        if channel.encrypted {
            return self.write_packet(&auth::nul_terminated(password)).await;
        }
        self.write_packet(&[auth::SHA2_PUBLIC_KEY_REQUEST]).await?;
        let key = self.packet().await?;
        let key = &self.buf[key];
        let pem = match key {
            [auth::SHA2_MORE_DATA, pem @ ..] => pem,
            [0xFF, ..] => return Err(server_error(key, self.capabilities)),
            _ => {
                return Err(protocol(
                    "caching_sha2_password: no public key from the server",
                ));
            }
        };
        let encrypted = auth::sha2_encrypted_password(password, nonce, pem).map_err(protocol)?;
        self.write_packet(&encrypted).await
    }

    /// Runs `sql`, which returns no rows (or rows nobody needs).
    pub async fn execute(&mut self, sql: &str) -> WireResult<()> {
        let mut result = self.query(sql).await?;
        while result.next_row().await?.is_some() {}
        Ok(())
    }

    /// Runs `sql` and returns its rows as text, for small answers.
    pub async fn text_rows(&mut self, sql: &str) -> WireResult<Vec<Vec<Option<String>>>> {
        let mut result = self.query(sql).await?;
        let mut rows = Vec::new();
        while let Some(row) = result.next_row().await? {
            rows.push(
                row.cells()
                    .map(|c| c.map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect(),
            );
        }
        Ok(rows)
    }

    /// Sends `sql` and reads up to its first row.
    pub async fn query(&mut self, sql: &str) -> WireResult<ResultSet<'_>> {
        if self.busy {
            return Err(protocol("a query while the previous result is unread"));
        }
        self.seq = 0;
        let mut payload = Vec::with_capacity(1 + sql.len());
        payload.push(COM_QUERY);
        payload.extend_from_slice(sql.as_bytes());
        self.write_packet(&payload).await?;
        let head = self.packet().await?;
        let head = &self.buf[head];
        let columns = match head.first() {
            Some(0x00) => {
                return Ok(ResultSet {
                    conn: self,
                    columns: 0,
                    done: true,
                });
            }
            Some(0xFF) => return Err(server_error(head, self.capabilities)),
            Some(0xFB) => return Err(protocol("LOAD DATA LOCAL INFILE is not supported")),
            _ => match lenenc(head, &mut 0) {
                Some(Some(n)) if n > 0 => n as usize,
                _ => return Err(protocol("bad result set header")),
            },
        };
        self.busy = true;
        for _ in 0..columns {
            self.packet().await?;
        }
        let eof = self.packet().await?;
        if !is_eof(&self.buf[eof]) {
            return Err(protocol("no end of the column definitions"));
        }
        Ok(ResultSet {
            conn: self,
            columns,
            done: false,
        })
    }

    /// Whether the connection can take a query: no result is pending, and the server has not
    /// closed it (an idle connection's socket has nothing to read until the server hangs up).
    pub fn is_reusable(&self) -> bool {
        if self.busy || self.pos != self.end {
            return false;
        }
        matches!(self.stream.tcp().try_read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// The next packet's payload, joined from its fragments, as a range of the buffer (valid
    /// until the next read).
    async fn packet(&mut self) -> WireResult<Range<usize>> {
        loop {
            match self.frame()? {
                Frame::Ready(payload) => return Ok(payload),
                Frame::Need(bytes) => self.fill(bytes).await?,
            }
        }
    }

    /// The packet at the read position, if the buffer holds all of it. Fragments of a long
    /// payload are moved together over the headers between them.
    fn frame(&mut self) -> WireResult<Frame> {
        let available = self.end - self.pos;
        let (mut size, mut payload) = (0, 0);
        loop {
            if available < size + 4 {
                return Ok(Frame::Need(size + 4));
            }
            let header = self.pos + size;
            let len = u24(&self.buf[header..]);
            payload += len;
            if payload > self.max_payload {
                return Err(protocol(format!(
                    "the server sent a packet of more than {} bytes, the most this client accepts",
                    self.max_payload
                )));
            }
            if available < size + 4 + len {
                return Ok(Frame::Need(size + 4 + len));
            }
            size += 4 + len;
            if len < MAX_FRAGMENT {
                break;
            }
        }
        let start = self.pos + 4;
        let (mut write, mut read) = (start, self.pos);
        while read < self.pos + size {
            let len = u24(&self.buf[read..]);
            let seq = self.buf[read + 3];
            if seq != self.seq {
                return Err(protocol(format!(
                    "packet {seq} out of order (expected {})",
                    self.seq
                )));
            }
            self.seq = seq.wrapping_add(1);
            if write != read + 4 {
                self.buf.copy_within(read + 4..read + 4 + len, write);
            }
            write += len;
            read += 4 + len;
        }
        self.pos = read;
        Ok(Frame::Ready(start..write))
    }

    /// Reads until `need` bytes past the read position are in the buffer.
    async fn fill(&mut self, need: usize) -> WireResult<()> {
        // Unread bytes move to the front when what is needed would not fit behind them.
        if self.pos + need > self.buf.len() || self.pos == self.end {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        // Grown for a long packet, the buffer shrinks back once what it holds, moved to the
        // front, fits again.
        let size = need.max(READ_BUFFER);
        if self.buf.len() < size || (self.buf.len() > size && self.pos == 0 && self.end <= size) {
            self.buf.resize(size, 0);
            self.buf.shrink_to_fit();
        }
        while self.end - self.pos < need {
            // One timer per receive, not per row: a receive brings many rows.
            let n = tokio::time::timeout(
                self.read_timeout,
                self.stream.read(&mut self.buf[self.end..]),
            )
            .await
            .map_err(|_| self.timed_out())??;
            if n == 0 {
                return Err(WireError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.end += n;
        }
        Ok(())
    }

    /// Sends `payload` as one packet (fragments past 16 MiB).
    async fn write_packet(&mut self, payload: &[u8]) -> WireResult<()> {
        let mut out = Vec::with_capacity(payload.len() + 4 * (payload.len() / MAX_FRAGMENT + 1));
        // The first fragment shorter than the longest ends the packet (so a payload of whole
        // fragments, or none, ends with an empty one).
        let mut rest = payload;
        loop {
            let (fragment, after) = rest.split_at(rest.len().min(MAX_FRAGMENT));
            out.extend_from_slice(&(fragment.len() as u32).to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(fragment);
            if fragment.len() < MAX_FRAGMENT {
                break;
            }
            rest = after;
        }
        tokio::time::timeout(self.read_timeout, self.stream.write_all(&out))
            .await
            .map_err(|_| self.timed_out())??;
        Ok(())
    }

    /// A server that stopped reading or answering.
    fn timed_out(&self) -> WireError {
        WireError::TimedOut {
            phase: "read",
            after: self.read_timeout,
        }
    }
}

/// What the server's greeting tells the login.
struct Hello {
    /// The scramble passwords are answered with.
    nonce: Vec<u8>,
    version: (u16, u16, u16),
    offers_tls: bool,
}

/// The rows of one query, read as they arrive.
pub(crate) struct ResultSet<'c> {
    conn: &'c mut WireConn,
    columns: usize,
    done: bool,
}

impl ResultSet<'_> {
    /// Columns per row (0 for a statement without a result set).
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The next row, or `None` once the result has ended.
    pub async fn next_row(&mut self) -> WireResult<Option<Row<'_>>> {
        if self.done {
            return Ok(None);
        }
        let payload = self.conn.packet().await?;
        let conn = &mut *self.conn;
        let data = &conn.buf[payload];
        if is_eof(data) || data.first() == Some(&0xFF) {
            self.done = true;
            conn.busy = false;
            if is_eof(data) {
                return Ok(None);
            }
            return Err(server_error(data, conn.capabilities));
        }
        conn.cells.clear();
        let mut at = 0;
        for _ in 0..self.columns {
            match lenenc(data, &mut at) {
                Some(Some(len)) => {
                    let end = at.saturating_add(len as usize);
                    if end > data.len() {
                        return Err(protocol("a row cell runs past its packet"));
                    }
                    conn.cells.push(Some((at, end)));
                    at = end;
                }
                Some(None) => conn.cells.push(None),
                None => return Err(protocol("a row ends before its last cell")),
            }
        }
        if at != data.len() {
            return Err(protocol("a row has more cells than its result"));
        }
        Ok(Some(Row {
            data,
            cells: &conn.cells,
        }))
    }
}

/// One row's cells, borrowed from the read buffer.
pub(crate) struct Row<'a> {
    data: &'a [u8],
    cells: &'a [Option<(usize, usize)>],
}

impl<'a> Row<'a> {
    /// Cell `i` as sent (text), `None` for NULL.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.cells[i].map(|(start, end)| &self.data[start..end])
    }

    pub fn cells(&self) -> impl Iterator<Item = Option<&'a [u8]>> + '_ {
        (0..self.cells.len()).map(|i| self.get(i))
    }
}

/// The connections of one source, each set up by the same statements: at most `max_in_use`
/// lent out at once (a caller past the limit waits for one to come back) and as many kept
/// idle for the next read, so never more than twice that open.
pub(crate) struct WirePool {
    opts: Opts,
    timeouts: Timeouts,
    tls: Option<Tls>,
    setup: Vec<String>,
    idle: Mutex<Vec<WireConn>>,
    max_idle: usize,
    in_use: Arc<Semaphore>,
}

/// A connection lent by a [`WirePool`], counted against its limit until dropped or put back.
pub(crate) struct Pooled {
    conn: WireConn,
    _lent: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pooled {
    type Target = WireConn;
    fn deref(&self) -> &WireConn {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut WireConn {
        &mut self.conn
    }
}

impl WirePool {
    /// A pool lending at most `max_in_use` connections (at least one), `first` already set
    /// up and idle.
    pub fn new(
        opts: Opts,
        timeouts: Timeouts,
        tls: Option<Tls>,
        setup: Vec<String>,
        max_in_use: usize,
        first: WireConn,
    ) -> Self {
        let max_in_use = max_in_use.max(1);
        WirePool {
            opts,
            timeouts,
            tls,
            setup,
            idle: Mutex::new(vec![first]),
            max_idle: max_in_use,
            in_use: Arc::new(Semaphore::new(max_in_use)),
        }
    }

    /// An idle connection, or a new one, once fewer than the limit are lent out.
    pub async fn get(&self) -> WireResult<Pooled> {
        let lent = self
            .in_use
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        loop {
            let idle = self.idle.lock().expect("pool lock").pop();
            match idle {
                Some(conn) if conn.is_reusable() => return Ok(Pooled { conn, _lent: lent }),
                Some(_) => continue,
                None => break,
            }
        }
        let mut conn = WireConn::connect(&self.opts, self.timeouts, self.tls.as_ref()).await?;
        for statement in &self.setup {
            conn.execute(statement).await?;
        }
        Ok(Pooled { conn, _lent: lent })
    }

    /// Takes `pooled` back: kept for the next read if it can take a query and the pool has
    /// room, closed otherwise.
    pub fn put(&self, pooled: Pooled) {
        let Pooled { conn, _lent } = pooled;
        if conn.is_reusable() {
            let mut idle = self.idle.lock().expect("pool lock");
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }
}

fn server_error(payload: &[u8], capabilities: CapabilityFlags) -> WireError {
    match ParseBuf(payload).parse::<ErrPacket<'_>>(capabilities) {
        Ok(ErrPacket::Error(e)) => WireError::Server {
            code: e.error_code(),
            message: e.message_str().into_owned(),
        },
        _ => protocol("bad error packet"),
    }
}

/// An EOF packet: it ends column definitions and rows (a row starting with 0xFE is longer).
fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFE) && payload.len() < 9
}

fn u24(b: &[u8]) -> usize {
    usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16
}

/// A length-encoded integer at `*at`: `Some(None)` is SQL NULL, `None` a truncated packet.
fn lenenc(data: &[u8], at: &mut usize) -> Option<Option<u64>> {
    let first = *data.get(*at)?;
    let width = match first {
        0..=0xFA => {
            *at += 1;
            return Some(Some(u64::from(first)));
        }
        0xFB => {
            *at += 1;
            return Some(None);
        }
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        0xFF => return None,
    };
    let bytes = data.get(*at + 1..*at + 1 + width)?;
    *at += 1 + width;
    let mut value = [0u8; 8];
    value[..width].copy_from_slice(bytes);
    Some(Some(u64::from_le_bytes(value)))
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Two ends of a loopback connection.
    async fn pair() -> (WireConn, WireConn) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        let patience = Duration::from_secs(30);
        (
            WireConn::over(Stream::Plain(client.unwrap()), patience),
            WireConn::over(Stream::Plain(server.unwrap().0), patience),
        )
    }

    #[tokio::test]
    async fn payloads_of_any_length_cross_in_fragments_and_are_joined_whole() {
        let (mut from, mut to) = pair().await;
        let lengths = [
            0,
            5,
            MAX_FRAGMENT,
            MAX_FRAGMENT + 7,
            2 * MAX_FRAGMENT,
            READ_BUFFER + 1,
        ];
        let writer = async {
            for (i, &len) in lengths.iter().enumerate() {
                let payload: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
                from.write_packet(&payload).await.unwrap();
            }
            from
        };
        let reader = async {
            let mut got = Vec::new();
            for _ in lengths {
                let payload = to.packet().await.unwrap();
                got.push(to.buf[payload].to_vec());
            }
            got
        };
        let (mut from, got) = tokio::join!(writer, reader);
        for (i, (&len, payload)) in lengths.iter().zip(&got).enumerate() {
            assert_eq!(payload.len(), len);
            assert!(
                payload
                    .iter()
                    .enumerate()
                    .all(|(b, &v)| v == (b * 7 + i) as u8),
                "payload {i} of {len} bytes"
            );
        }
        assert!(to.buf.len() > READ_BUFFER, "grown for the longest");
        from.write_packet(b"short").await.unwrap();
        let short = to.packet().await.unwrap();
        assert_eq!(&to.buf[short], b"short");
        assert_eq!(to.buf.len(), READ_BUFFER, "back to its usual size");
    }

    #[tokio::test]
    async fn a_packet_longer_than_announced_is_refused() {
        let (mut from, mut to) = pair().await;
        to.max_payload = 2 * MAX_FRAGMENT;
        let at_the_limit = vec![1u8; 2 * MAX_FRAGMENT];
        let beyond = vec![2u8; 2 * MAX_FRAGMENT + 1];
        let writer = async {
            from.write_packet(&at_the_limit).await.unwrap();
            // The reader gives up on the second packet and may close before all of it is sent.
            let _ = from.write_packet(&beyond).await;
        };
        let reader = async {
            let first = to.packet().await.map(|p| p.len());
            let second = to.packet().await.map(|p| p.len());
            (first, second)
        };
        let ((), (first, second)) = tokio::join!(writer, reader);
        assert_eq!(first.unwrap(), 2 * MAX_FRAGMENT);
        let err = second.unwrap_err();
        assert!(
            err.to_string().contains("the most this client accepts"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_packet_out_of_sequence_is_an_error_not_data() {
        let (mut from, mut to) = pair().await;
        from.write_packet(b"first").await.unwrap();
        from.seq = 7;
        from.write_packet(b"second").await.unwrap();
        let first = to.packet().await.unwrap();
        assert_eq!(&to.buf[first], b"first");
        let err = to.packet().await.unwrap_err();
        assert!(matches!(err, WireError::Protocol(_)), "{err}");
    }

    /// A server's OK packet.
    const OK: [u8; 7] = [0, 0, 0, 2, 0, 0, 0];

    /// Logs `client` in as a reader whose account uses `caching_sha2_password`, while
    /// `server` switches it there and then plays `after_scramble` (given the nonce).
    async fn sha2_log_in(
        mut client: WireConn,
        mut server: WireConn,
        after_scramble: impl AsyncFnOnce(&mut WireConn, &[u8]),
    ) -> WireResult<()> {
        let opts = Opts::from_url("mysql://reader:sha2-secret@127.0.0.1:1/db").unwrap();
        let hello = Hello {
            nonce: vec![b'h'; 20],
            version: (8, 0, 34),
            offers_tls: false,
        };
        let nonce = *b"abcdefghij0123456789";
        let script = async {
            server.packet().await.unwrap();
            let mut switch = b"\xFEcaching_sha2_password\0".to_vec();
            switch.extend_from_slice(&nonce);
            switch.push(0);
            server.write_packet(&switch).await.unwrap();
            let scramble = server.packet().await.unwrap();
            let want = mysql_common::scramble::scramble_sha256(&nonce, b"sha2-secret").unwrap();
            assert_eq!(server.buf[scramble], want);
            after_scramble(&mut server, &nonce).await;
        };
        let (login, ()) = tokio::join!(client.log_in(&opts, &hello), script);
        login
    }

    #[tokio::test]
    async fn caching_sha2_password_logs_in_by_its_fast_path() {
        let (client, server) = pair().await;
        sha2_log_in(client, server, async |server, _| {
            server.write_packet(&[0x01, 0x03]).await.unwrap();
            server.write_packet(&OK).await.unwrap();
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn caching_sha2_passwords_full_authentication_on_plain_tcp_seals_it_to_the_servers_key() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = auth::tests::rsa_key(dir.path(), 2048);
        let (client, server) = pair().await;
        sha2_log_in(client, server, async |server, nonce| {
            server.write_packet(&[0x01, 0x04]).await.unwrap();
            let request = server.packet().await.unwrap();
            assert_eq!(server.buf[request], [0x02], "asks for the public key");
            let mut key_packet = vec![0x01];
            key_packet.extend_from_slice(&public);
            server.write_packet(&key_packet).await.unwrap();
            let sealed = server.packet().await.unwrap();
            let opened = auth::tests::open(dir.path(), &key, &server.buf[sealed]);
            assert_eq!(opened, auth::tests::xor(b"sha2-secret\0", nonce));
            server.write_packet(&OK).await.unwrap();
        })
        .await
        .unwrap();

        // A server that answers the key request with garbage gets an error, not a panic.
        let (client, server) = pair().await;
        let err = sha2_log_in(client, server, async |server, _| {
            server.write_packet(&[0x01, 0x04]).await.unwrap();
            server.packet().await.unwrap();
            server
                .write_packet(b"\x01-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .await
                .unwrap();
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("RSA public key"), "{err}");
    }

    #[test]
    fn length_encoded_integers_of_every_width_null_and_truncation() {
        // Bytes, the value read, the bytes it takes.
        type Case = (&'static [u8], Option<Option<u64>>, usize);
        let cases: [Case; 7] = [
            (&[0x05], Some(Some(5)), 1),
            (&[0xFB], Some(None), 1),
            (&[0xFC, 0x34, 0x12], Some(Some(0x1234)), 3),
            (&[0xFD, 0x56, 0x34, 0x12], Some(Some(0x12_3456)), 4),
            (
                &[0xFE, 1, 0, 0, 0, 0, 0, 0, 0x80],
                Some(Some(0x8000_0000_0000_0001)),
                9,
            ),
            (&[0xFC, 0x34], None, 0),
            (&[0xFF], None, 0),
        ];
        for (bytes, want, used) in cases {
            let mut at = 0;
            assert_eq!(lenenc(bytes, &mut at), want, "{bytes:?}");
            if want.is_some() {
                assert_eq!(at, used, "{bytes:?}");
            }
        }
    }
}
