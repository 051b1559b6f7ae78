//! The authentication plugins the read path's own client logs in with: how it reads the
//! server's request to switch plugins, what it answers each plugin with, and the RSA
//! encryption `caching_sha2_password` asks for on a plain connection. The exchange itself is
//! `WireConn::log_in` (`wire`).
//!
//! Spoken: `mysql_native_password`, `caching_sha2_password` (MySQL 8, Doris 2.1+),
//! `mysql_clear_password` (Doris with LDAP; over TLS only, unless the URL says
//! `enable_cleartext_plugin=true` as it does for mysql_async) and MariaDB's `client_ed25519`.

use mysql_common::crypto::rsa::{GetRandom, Pkcs1OaepPadding, PublicKey};
use mysql_common::packets::AuthPlugin;
use mysql_common::proto::MySerialize;
use num_bigint::BigUint;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;

/// `caching_sha2_password`'s "more data" packet starts with this.
pub(crate) const SHA2_MORE_DATA: u8 = 0x01;
/// After `SHA2_MORE_DATA`: the scramble matched the server's cache, an OK packet follows.
pub(crate) const SHA2_FAST_AUTH_OK: u8 = 0x03;
/// After `SHA2_MORE_DATA`: the server needs the password itself.
pub(crate) const SHA2_FULL_AUTH: u8 = 0x04;
/// The client's request for the server's RSA public key.
pub(crate) const SHA2_PUBLIC_KEY_REQUEST: u8 = 0x02;

/// The plugins spoken, for messages.
const SPOKEN: &str = "mysql_native_password, caching_sha2_password, mysql_clear_password and \
                      client_ed25519";
/// A plugin name from the server is quoted in messages up to this many characters.
const NAME_SHOWN: usize = 64;
/// RSA-OAEP with SHA-1 takes up to the key's length less this many bytes.
const OAEP_OVERHEAD: usize = 2 * 20 + 2;
/// Shorter RSA keys are refused: they protect nothing.
const MIN_RSA_BITS: u64 = 1024;

/// A server's request that the client log in with another plugin.
pub(crate) struct Switch<'a> {
    pub plugin: AuthPlugin<'a>,
    /// The plugin's challenge, as sent.
    data: &'a [u8],
}

impl<'a> Switch<'a> {
    /// Reads an auth switch request: 0xFE, the plugin's name ending in NUL, its data.
    pub fn parse(payload: &'a [u8]) -> Result<Self, String> {
        let rest = payload
            .strip_prefix(&[0xFE])
            .ok_or("an authentication switch must start with 0xFE")?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("an authentication switch names no plugin")?;
        Ok(Switch {
            plugin: AuthPlugin::from_bytes(&rest[..end]),
            data: &rest[end + 1..],
        })
    }

    /// The nonce the plugin's answer signs or scrambles. The scrambling plugins send theirs
    /// ending in NUL; ed25519's is 32 random bytes, any of which, the last too, may be 0.
    pub fn nonce(&self) -> &'a [u8] {
        match self.plugin {
            AuthPlugin::Ed25519 => self.data,
            _ => self.data.strip_suffix(&[0]).unwrap_or(self.data),
        }
    }
}

/// What the connection a password would cross is like.
#[derive(Clone, Copy)]
pub(crate) struct Channel {
    /// TLS: a password may cross as it is.
    pub encrypted: bool,
    /// The URL's `enable_cleartext_plugin=true`: `mysql_clear_password` may send the password
    /// unencrypted.
    pub cleartext_allowed: bool,
}

/// The answer to the server's switch to `plugin` with `nonce`; the error says why the reader
/// will not answer (never with the password).
pub(crate) fn answer(
    plugin: &AuthPlugin<'_>,
    password: Option<&str>,
    nonce: &[u8],
    channel: Channel,
) -> Result<Vec<u8>, String> {
    match plugin {
        AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password | AuthPlugin::Ed25519 => {
            Ok(scramble(plugin, password, nonce))
        }
        AuthPlugin::MysqlClearPassword if channel.encrypted || channel.cleartext_allowed => {
            Ok(nul_terminated(password))
        }
        AuthPlugin::MysqlClearPassword => Err(
            "the account's authentication plugin mysql_clear_password would send the password \
             unencrypted: connect with TLS (require_ssl=true or ssl_ca=...), or allow it with \
             enable_cleartext_plugin=true in the URL"
                .to_owned(),
        ),
        other => Err(format!(
            "the account's authentication plugin {} is not supported (the reader speaks \
             {SPOKEN})",
            plugin_name(other)
        )),
    }
}

/// The answer `plugin` gives `nonce` without sending the password (empty for no password).
pub(crate) fn scramble(plugin: &AuthPlugin<'_>, password: Option<&str>, nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(data) = plugin.gen_data(password, nonce) {
        data.serialize(&mut out);
    }
    out
}

/// The password as it is, ending in NUL: how `mysql_clear_password`, and
/// `caching_sha2_password` over TLS, send it.
pub(crate) fn nul_terminated(password: Option<&str>) -> Vec<u8> {
    let mut out = password.unwrap_or_default().as_bytes().to_vec();
    out.push(0);
    out
}

/// `caching_sha2_password`'s full authentication over a plain connection: the NUL-terminated
/// password XORed with the nonce (repeated), encrypted with RSA-OAEP to the server's public
/// key (`pem`, as the server sent it).
pub(crate) fn sha2_encrypted_password(
    password: Option<&str>,
    nonce: &[u8],
    pem: &[u8],
) -> Result<Vec<u8>, String> {
    if nonce.is_empty() {
        return Err("caching_sha2_password: the server sent an empty nonce".to_owned());
    }
    let key = rsa_public_key(pem)?;
    let mut block = nul_terminated(password);
    for (byte, mask) in block.iter_mut().zip(nonce.iter().cycle()) {
        *byte ^= mask;
    }
    if block.len() + OAEP_OVERHEAD > key.num_octets() {
        return Err(format!(
            "caching_sha2_password: the password is too long for the server's {}-byte RSA key",
            key.num_octets()
        ));
    }
    Ok(key.encrypt_block(&block, Pkcs1OaepPadding::new(GetRandom)))
}

/// An RSA public key from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo, as MySQL sends it),
/// checked before use: mysql_common's own parser panics on a malformed key.
fn rsa_public_key(pem: &[u8]) -> Result<PublicKey, String> {
    let bad = |why: &str| format!("caching_sha2_password: the server's RSA public key {why}");
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem)
        .map_err(|e| bad(&format!("is no PEM public key ({e})")))?;
    let malformed = || bad("is malformed");
    let mut info = Der(spki.as_ref()).take(SEQUENCE).ok_or_else(malformed)?;
    let mut algorithm = info.take(SEQUENCE).ok_or_else(malformed)?;
    if algorithm.take(OBJECT_ID).map(|d| d.0) != Some(RSA_ENCRYPTION) {
        return Err(bad("is not an RSA key"));
    }
    let key = match info.take(BIT_STRING).ok_or_else(malformed)?.0 {
        [0, key @ ..] => key,
        _ => return Err(malformed()),
    };
    let mut key = Der(key).take(SEQUENCE).ok_or_else(malformed)?;
    let modulus = BigUint::from_bytes_be(key.take(INTEGER).ok_or_else(malformed)?.0);
    let exponent = BigUint::from_bytes_be(key.take(INTEGER).ok_or_else(malformed)?.0);
    if modulus.bits() < MIN_RSA_BITS || exponent.bits() < 2 {
        return Err(bad(&format!(
            "is too weak ({} bits, exponent {exponent})",
            modulus.bits()
        )));
    }
    Ok(PublicKey::new(modulus, exponent))
}

const SEQUENCE: u8 = 0x30;
const OBJECT_ID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const INTEGER: u8 = 0x02;
/// The object identifier 1.2.840.113549.1.1.1, rsaEncryption.
const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// DER bytes read front to back, each read checked against what is left.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The contents of the next element, which must be tagged `tag`.
    fn take(&mut self, tag: u8) -> Option<Der<'a>> {
        let (&found, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        if found != tag {
            return None;
        }
        let (len, rest) = match first {
            0..=0x7F => (usize::from(first), rest),
            0x81..=0x84 => {
                let width = usize::from(first & 0x7F);
                let (bytes, rest) = rest.split_at_checked(width)?;
                let len = bytes.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
                (len, rest)
            }
            _ => return None,
        };
        let (contents, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some(Der(contents))
    }
}

/// A plugin's name as the server sent it, shortened, for a message.
fn plugin_name(plugin: &AuthPlugin<'_>) -> String {
    String::from_utf8_lossy(plugin.as_bytes())
        .chars()
        .take(NAME_SHOWN)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;
    use std::process::Command;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    const PLAIN: Channel = Channel {
        encrypted: false,
        cleartext_allowed: false,
    };

    #[test]
    fn a_switch_keeps_ed25519s_nonce_whole_and_drops_the_scramblers_nul() {
        let mut ed25519 = b"\xFEclient_ed25519\0".to_vec();
        let nonce: Vec<u8> = (1..=31).chain([0]).collect();
        ed25519.extend_from_slice(&nonce);
        let switch = Switch::parse(&ed25519).unwrap();
        assert_eq!(switch.plugin, AuthPlugin::Ed25519);
        assert_eq!(
            switch.nonce(),
            &nonce[..],
            "a nonce ending in 0 is still 32 bytes"
        );

        let native = b"\xFEmysql_native_password\x0001234567890123456789\0";
        let switch = Switch::parse(native).unwrap();
        assert_eq!(switch.plugin, AuthPlugin::MysqlNativePassword);
        assert_eq!(switch.nonce(), b"01234567890123456789");

        for bad in [
            &b""[..],
            b"\xFE",
            b"\xFEno-terminator",
            b"\x00mysql_native_password\0",
        ] {
            assert!(Switch::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_clear_password_goes_over_tls_or_when_allowed_and_is_refused_otherwise() {
        let clear = AuthPlugin::MysqlClearPassword;
        let secret = Some("ldap-secret");
        let err = answer(&clear, secret, b"", PLAIN).unwrap_err();
        assert!(
            err.contains("mysql_clear_password")
                && err.contains("enable_cleartext_plugin=true")
                && !err.contains("ldap-secret"),
            "{err}"
        );
        for channel in [
            Channel {
                encrypted: true,
                cleartext_allowed: false,
            },
            Channel {
                encrypted: false,
                cleartext_allowed: true,
            },
        ] {
            assert_eq!(
                answer(&clear, secret, b"", channel).unwrap(),
                b"ldap-secret\0"
            );
        }
        assert_eq!(answer(&clear, None, b"", channel_tls()).unwrap(), b"\0");
    }

    fn channel_tls() -> Channel {
        Channel {
            encrypted: true,
            ..PLAIN
        }
    }

    #[test]
    fn scrambling_plugins_answer_with_their_scramble_and_others_are_refused_by_name() {
        let nonce = b"01234567890123456789";
        let sha2 = answer(&AuthPlugin::CachingSha2Password, Some("pw"), nonce, PLAIN).unwrap();
        assert_eq!(
            sha2,
            mysql_common::scramble::scramble_sha256(nonce, b"pw").unwrap()
        );
        assert!(
            answer(&AuthPlugin::CachingSha2Password, None, nonce, PLAIN)
                .unwrap()
                .is_empty()
        );
        let ed25519 = answer(&AuthPlugin::Ed25519, Some("pw"), &[7; 32], PLAIN).unwrap();
        assert_eq!(ed25519.len(), 64, "a signature");
        let long_name = "x".repeat(1000);
        for (plugin, name) in [
            (AuthPlugin::MysqlOldPassword, "mysql_old_password"),
            (
                AuthPlugin::from_bytes(b"auth_gssapi_client"),
                "auth_gssapi_client",
            ),
            (
                AuthPlugin::from_bytes(long_name.as_bytes()),
                &long_name[..64],
            ),
        ] {
            let err = answer(&plugin, Some("pw"), nonce, channel_tls()).unwrap_err();
            assert!(err.contains(name) && err.contains("not supported"), "{err}");
            assert!(err.len() < 300, "a long name is shortened: {err}");
        }
    }

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A fresh RSA key pair: the private key's file and the public key's PEM.
    pub(crate) fn rsa_key(dir: &Path, bits: u32) -> (String, Vec<u8>) {
        let key = dir.join("key.pem").display().to_string();
        let bits = format!("rsa_keygen_bits:{bits}");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &bits,
            "-out",
            &key,
        ]);
        let public = openssl(&["pkey", "-in", &key, "-pubout"]);
        (key, public)
    }

    /// `sealed` decrypted with the private key in `key`.
    pub(crate) fn open(dir: &Path, key: &str, sealed: &[u8]) -> Vec<u8> {
        let file = dir.join("sealed");
        std::fs::write(&file, sealed).unwrap();
        let file = file.display().to_string();
        let oaep = "rsa_padding_mode:oaep";
        openssl(&[
            "pkeyutl", "-decrypt", "-inkey", key, "-pkeyopt", oaep, "-in", &file,
        ])
    }

    /// `bytes` XORed with `nonce`, repeated.
    pub(crate) fn xor(bytes: &[u8], nonce: &[u8]) -> Vec<u8> {
        bytes
            .iter()
            .zip(nonce.iter().cycle())
            .map(|(b, n)| b ^ n)
            .collect()
    }

    #[test]
    fn the_sha2_password_sealed_to_the_servers_key_opens_to_the_password_xor_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = rsa_key(dir.path(), 2048);
        let nonce = b"abcdefghij0123456789";
        let sealed =
            sha2_encrypted_password(Some("a-password-longer-than-20"), nonce, &public).unwrap();
        assert_eq!(sealed.len(), 256);
        assert_eq!(
            open(dir.path(), &key, &sealed),
            xor(b"a-password-longer-than-20\0", nonce)
        );

        let err = sha2_encrypted_password(Some(&"p".repeat(300)), nonce, &public).unwrap_err();
        assert!(err.contains("too long") && !err.contains("ppp"), "{err}");
    }

    #[test]
    fn a_hostile_or_weak_public_key_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = rsa_key(dir.path(), 2048);
        let der = SubjectPublicKeyInfoDer::from_pem_slice(&public).unwrap();
        let pem = |der: &[u8]| {
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                STANDARD.encode(der)
            )
            .into_bytes()
        };
        let mut huge_length = der.as_ref().to_vec();
        huge_length[1] = 0x84;
        let ec = rcgen::KeyPair::generate().unwrap().public_key_pem();
        let (_, small) = rsa_key(dir.path(), 512);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not a key".to_vec(), "no PEM public key"),
            (pem(b"\x30\x03\x02\x01"), "malformed"),
            (pem(&der.as_ref()[..der.as_ref().len() / 2]), "malformed"),
            (pem(&huge_length), "malformed"),
            (ec.into_bytes(), "not an RSA key"),
            (small, "too weak"),
        ];
        for (key, why) in cases {
            let err = sha2_encrypted_password(Some("pw"), b"nonce", &key).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
        assert!(sha2_encrypted_password(Some("pw"), b"", &public).is_err());
    }
}
