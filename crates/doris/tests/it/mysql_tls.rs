//! MySQL-protocol reads over TLS, against a MariaDB of the tests' own that serves a
//! certificate the tests made (the shared loopback MariaDB has no TLS and is not ours to
//! reconfigure). The server is started once per test binary, on a free loopback port with a
//! throwaway data directory, and stops when the binary exits.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use mysql_async::prelude::Queryable;
use trainstore_core::{Error, Secret};
use trainstore_doris::load::load_design_doc_rows;
use trainstore_doris::{
    Dialect, DorisSource, ReadOptions, SnapshotGenerator, SnapshotSchema, SynthConfig, Timeouts,
};

use crate::certs::TestCa;
use crate::support::scan_all;

/// Creates the data directory, starts the server in the background, and waits until the test
/// binary's end of stdin closes (it has exited) to stop it and delete the directory. PAM
/// accounts ask clients for `mysql_clear_password`, as Doris with LDAP does (the in-process
/// `auth_pam_v1`: the other needs a setuid helper). The server and its bootstrap get a temporary
/// directory of their own: a MariaDB starting up deletes the `#sql*` files it finds in its
/// temporary directory, which in a shared `/tmp` are the other server's tables in use.
const SERVE: &str = r#"
set -eu
PATH="$PATH:/usr/sbin:/usr/bin"
dir=$1 port=$2 user=$(id -un)
export TMPDIR="$dir/tmp"
mkdir -p "$TMPDIR"
mariadb-install-db --no-defaults --user="$user" --datadir="$dir/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
mariadbd --no-defaults --user="$user" --datadir="$dir/data" --bind-address=127.0.0.1 \
    --port="$port" --socket="$dir/mariadb.sock" --pid-file="$dir/mariadb.pid" --skip-log-bin \
    --tmpdir="$TMPDIR" \
    --innodb-buffer-pool-size=16M --ssl-ca="$dir/ca.pem" --ssl-cert="$dir/server.pem" \
    --ssl-key="$dir/server-key.pem" --plugin-load-add=auth_pam_v1 \
    --loose-pam-use-cleartext-plugin=ON >"$dir/server.log" 2>&1 &
server=$!
read -r _ || true
kill "$server"
wait "$server" || true
rm -rf "$dir"
"#;

/// The TLS MariaDB: where it listens and the CA that signed its certificate.
pub struct TlsServer {
    pub port: u16,
    /// The CA certificate, as a file a URL's `ssl_ca` can name.
    pub ca: PathBuf,
    /// A CA that signed nothing the server shows.
    pub unknown_ca: PathBuf,
    _process: Child,
}

/// The server, started by the first test that asks. Its certificate names `localhost` only,
/// so dialling 127.0.0.1 tests the host-name check.
pub fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "trainstore-tls-mariadb-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new("trainstore test CA");
        let server = ca.server(&["localhost"]);
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server-key.pem"), &server.key_pem).unwrap();
        let ca_path = ca.write(&dir, "ca.pem");
        let unknown_ca = TestCa::new("unknown test CA").write(&dir, "unknown-ca.pem");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new("bash")
            .args(["-c", SERVE, "serve"])
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .expect("bash runs");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the TLS MariaDB did not start (logs in {})",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        TlsServer {
            port,
            ca: ca_path,
            unknown_ca,
            _process: process,
        }
    })
}

impl TlsServer {
    /// A root connection over plain TCP, for setting up.
    async fn admin(&self) -> mysql_async::Conn {
        let url = format!("mysql://root@127.0.0.1:{}", self.port);
        mysql_async::Conn::from_url(url).await.unwrap()
    }

    /// A database and an account that may use it, which the server lets in over TLS only; their
    /// names, and rows for the design document's table.
    async fn loaded(&self) -> (String, String, Vec<RecordBatch>) {
        let name = format!("ts_tls_{:016x}", rand_u64());
        let user = format!("{name}_r");
        let mut admin = self.admin().await;
        for statement in [
            format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
            format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'tls-only-secret' REQUIRE SSL"),
            format!("GRANT ALL ON `{name}`.* TO '{user}'@'%'"),
        ] {
            admin.query_drop(statement).await.unwrap();
        }
        admin.disconnect().await.unwrap();
        let raw: Vec<RecordBatch> = SnapshotGenerator::new(SynthConfig {
            devices: 4,
            nodes_per_device: 2,
            snapshots: 30,
            ..SynthConfig::default()
        })
        .unwrap()
        .batches(100)
        .collect();
        (name, user, raw)
    }

    fn url(&self, user: &str, host: &str, db: &str, params: &str) -> Secret {
        Secret::new(format!(
            "mysql://{user}:tls-only-secret@{host}:{}/{db}?{params}",
            self.port
        ))
    }
}

async fn connect(url: &Secret) -> trainstore_core::Result<DorisSource> {
    DorisSource::connect(
        url,
        "snapshots",
        SnapshotSchema::design_doc(),
        ReadOptions {
            partitions: 3,
            max_retries: 0,
            ..ReadOptions::default()
        },
    )
    .await
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_over_tls_from_a_server_whose_certificate_chains_to_the_given_ca() {
    let server = tls_server();
    let (db, user, raw) = server.loaded().await;
    let ca = format!("ssl_ca={}", server.ca.display());
    // Loading goes through mysql_async, over TLS to an account that requires it: the same
    // `ssl_ca` works there (over TCP: mysql_async would switch to the server's socket).
    let load = server.url(
        &user,
        "localhost",
        &db,
        &format!("{ca}&prefer_socket=false"),
    );
    load_design_doc_rows(&load, "snapshots", "test", raw.clone(), Timeouts::default())
        .await
        .unwrap();

    let source = connect(&server.url(&user, "localhost", &db, &ca))
        .await
        .unwrap();
    assert_eq!(source.dialect(), Dialect::MariaDb);
    assert_eq!(rows(&scan_all(&source).await), rows(&raw));
    // Parts read in parallel open more connections, each encrypted, and a second scan reuses
    // them.
    assert_eq!(rows(&scan_all(&source).await), rows(&raw));

    let plain = server.url(&user, "localhost", &db, "");
    let err = connect(&plain).await.unwrap_err();
    assert!(
        err.to_string().contains("Access denied"),
        "the account requires TLS, so a plain connection is refused: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_url_does_not_trust_are_refused_clearly_unless_told_not_to_check() {
    let server = tls_server();
    let (db, user, raw) = server.loaded().await;
    let root = Secret::new(format!("mysql://root@127.0.0.1:{}/{db}", server.port));
    load_design_doc_rows(&root, "snapshots", "test", raw, Timeouts::default())
        .await
        .unwrap();
    let endpoint = format!("127.0.0.1:{}", server.port);
    let unknown = format!("ssl_ca={}", server.unknown_ca.display());
    let ca = format!("ssl_ca={}", server.ca.display());
    let cases = [
        // A CA that signed nothing the server shows.
        ("localhost", unknown.clone(), "UnknownIssuer"),
        // The public roots only.
        ("localhost", "require_ssl=true".to_owned(), "UnknownIssuer"),
        // The right CA, but the certificate names `localhost`, not the address dialled.
        ("127.0.0.1", ca.clone(), "not valid for name"),
    ];
    for (host, params, why) in cases {
        let err = connect(&server.url(&user, host, &db, &params))
            .await
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            matches!(
                err,
                Error::Remote {
                    transient: false,
                    ..
                }
            ),
            "{params}: a certificate will not improve by retrying: {err:?}"
        );
        assert!(
            text.contains("TLS") && text.contains("certificate") && text.contains(why),
            "{params}: {text}"
        );
        assert!(
            text.contains(&endpoint.replace("127.0.0.1", host)),
            "{params}: names the server: {text}"
        );
        assert!(!text.contains("tls-only-secret"), "{text}");
    }
    for (host, params) in [
        ("localhost", format!("{unknown}&verify_ca=false")),
        ("127.0.0.1", format!("{ca}&verify_identity=false")),
    ] {
        connect(&server.url(&user, host, &db, &params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
    }
    let err = connect(&server.url(&user, "localhost", &db, "ssl_ca=/nonexistent/ca.pem"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. })
            && err.to_string().contains("/nonexistent/ca.pem"),
        "{err}"
    );
}

impl TlsServer {
    /// Loads `raw` into `db` as root and has `user` log in with what `identified` names
    /// (`VIA ed25519 USING PASSWORD('...')`).
    async fn with_plugin(&self, db: &str, user: &str, raw: &[RecordBatch], identified: &str) {
        let root = Secret::new(format!("mysql://root@127.0.0.1:{}/{db}", self.port));
        load_design_doc_rows(
            &root,
            "snapshots",
            "test",
            raw.to_vec(),
            Timeouts::default(),
        )
        .await
        .unwrap();
        let mut admin = self.admin().await;
        admin
            .query_drop(format!("ALTER USER '{user}'@'%' IDENTIFIED {identified}"))
            .await
            .unwrap();
        admin.disconnect().await.unwrap();
    }
}

/// The error of a login refused for `plugin`: final, naming the plugin and the server, never
/// the password.
fn assert_refused(err: &Error, plugin: &str, endpoint: &str, password: &str) {
    let text = format!("{err} {err:?}");
    assert!(
        matches!(
            err,
            Error::Remote {
                transient: false,
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains(plugin), "names the plugin: {text}");
    assert!(text.contains(endpoint), "names the server: {text}");
    assert!(!text.contains(password), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ed25519_account_reads_and_its_wrong_password_is_refused_unechoed() {
    let server = tls_server();
    let (db, user, raw) = server.loaded().await;
    let mut admin = server.admin().await;
    // Installing an installed plugin fails; either way it is there afterwards.
    let _ = admin.query_drop("INSTALL SONAME 'auth_ed25519'").await;
    admin.disconnect().await.unwrap();
    server
        .with_plugin(
            &db,
            &user,
            &raw,
            "VIA ed25519 USING PASSWORD('tls-only-secret')",
        )
        .await;
    let ca = format!("ssl_ca={}", server.ca.display());
    // Each part of a scan logs in on a connection of its own, each with a fresh nonce.
    let source = connect(&server.url(&user, "localhost", &db, &ca))
        .await
        .unwrap();
    assert_eq!(rows(&scan_all(&source).await), rows(&raw));

    let wrong = Secret::new(format!(
        "mysql://{user}:not-the-ed25519-secret@localhost:{}/{db}?{ca}",
        server.port
    ));
    let err = connect(&wrong).await.unwrap_err();
    assert!(err.to_string().contains("Access denied"), "{err}");
    let endpoint = format!("localhost:{}", server.port);
    assert_refused(&err, &user, &endpoint, "not-the-ed25519-secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_with_a_plugin_the_reader_does_not_speak_is_refused_naming_it() {
    let server = tls_server();
    let (db, user, raw) = server.loaded().await;
    // Pre-4.1 password hashing: MariaDB still has it, the reader will not answer it.
    server
        .with_plugin(
            &db,
            &user,
            &raw,
            "VIA mysql_old_password USING PASSWORD('tls-only-secret')",
        )
        .await;
    let ca = format!("ssl_ca={}", server.ca.display());
    let err = connect(&server.url(&user, "localhost", &db, &ca))
        .await
        .unwrap_err();
    let endpoint = format!("localhost:{}", server.port);
    assert_refused(&err, "mysql_old_password", &endpoint, "tls-only-secret");
    assert!(err.to_string().contains("not supported"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_password_is_sent_over_tls_or_when_the_url_allows_and_refused_otherwise() {
    let server = tls_server();
    let (db, user, raw) = server.loaded().await;
    // A PAM service no file configures: PAM's `other` refuses the password, but only once the
    // server has it, so "Access denied" says it was sent.
    server
        .with_plugin(
            &db,
            &user,
            &raw,
            "VIA pam USING 'trainstore-unconfigured' REQUIRE NONE",
        )
        .await;
    let endpoint = format!("localhost:{}", server.port);
    let plain = server.url(&user, "localhost", &db, "");
    let err = connect(&plain).await.unwrap_err();
    assert_refused(&err, "mysql_clear_password", &endpoint, "tls-only-secret");
    assert!(
        err.to_string().contains("enable_cleartext_plugin=true"),
        "says how to allow it: {err}"
    );

    let ca = format!("ssl_ca={}", server.ca.display());
    for params in [ca, "enable_cleartext_plugin=true".to_owned()] {
        let err = connect(&server.url(&user, "localhost", &db, &params))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Access denied"), "{params}: {err}");
        assert!(!format!("{err:?}").contains("tls-only-secret"), "{err:?}");
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
