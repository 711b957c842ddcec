//! The shared-key handshake (HELO, PING, PONG) of the Forward protocol v1.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use sha2::{Digest, Sha512};

use super::ForwardSink;
use super::wire::{invalid_reply, map_get, put_str, read_reply, shorten};

impl ForwardSink {
    /// HELO, PING, PONG, as the Forward protocol v1 describes.
    pub(super) fn handshake(
        &self,
        stream: &TcpStream,
        key: &str,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let timeout = Self::bounded(self.config.ack_timeout, deadline);
        let helo = read_reply(stream, timeout, "HELO").map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                io::Error::new(
                    e.kind(),
                    format!("{e}: is the collector configured with a shared key?"),
                )
            } else {
                e
            }
        })?;
        let (nonce, auth) = parse_helo(&helo).ok_or_else(|| {
            invalid_reply(format!(
                "expected [\"HELO\", {{\"nonce\": ...}}], got {}",
                shorten(&helo)
            ))
        })?;
        let salt = hex::encode(random_bytes());
        let digest = sha512_hex(&[
            salt.as_bytes(),
            self.hostname.as_bytes(),
            &nonce,
            key.as_bytes(),
        ]);
        let mut ping = Vec::with_capacity(256);
        let _ = rmp::encode::write_array_len(&mut ping, 6);
        for s in ["PING", &self.hostname, &salt, &digest, "", ""] {
            put_str(&mut ping, s);
        }
        let mut writer = stream;
        writer.write_all(&ping)?;
        let timeout = Self::bounded(self.config.ack_timeout, deadline);
        let pong = read_reply(stream, timeout, "PONG")?;
        let Some((ok, reason, server_host, server_digest)) = parse_pong(&pong) else {
            return Err(invalid_reply(format!(
                "expected [\"PONG\", bool, reason, hostname, digest], got {}",
                shorten(&pong)
            )));
        };
        if !ok {
            let user_note = if auth.is_empty() {
                ""
            } else {
                " (the collector also asks for a username and password, which this sink does not send)"
            };
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the collector rejected the shared key: {reason}{user_note}"),
            ));
        }
        let expected = sha512_hex(&[
            salt.as_bytes(),
            server_host.as_bytes(),
            &nonce,
            key.as_bytes(),
        ]);
        if server_digest != expected {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the collector {server_host:?} accepted the handshake but its digest does not match \
                     the shared key: it is not the collector configured with this key"
                ),
            ));
        }
        Ok(())
    }
}

/// `["HELO", {"nonce": n, "auth": a, ...}]` gives `(n, a)`; nonce and
/// auth salt may be strings or binaries.
pub(super) fn parse_helo(value: &rmpv::Value) -> Option<(Vec<u8>, Vec<u8>)> {
    let items = value.as_array()?;
    if items.len() != 2 || items[0].as_str() != Some("HELO") {
        return None;
    }
    let nonce = map_get(&items[1], "nonce")?.as_slice()?.to_vec();
    let auth = map_get(&items[1], "auth")
        .and_then(|a| a.as_slice())
        .unwrap_or_default()
        .to_vec();
    Some((nonce, auth))
}

/// `["PONG", ok, reason, hostname, digest]`.
pub(super) fn parse_pong(value: &rmpv::Value) -> Option<(bool, String, String, String)> {
    let items = value.as_array()?;
    if items.len() != 5 || items[0].as_str() != Some("PONG") {
        return None;
    }
    let text = |v: &rmpv::Value| {
        v.as_slice()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    Some((
        items[1].as_bool()?,
        text(&items[2]),
        text(&items[3]),
        text(&items[4]),
    ))
}

pub(super) fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// 16 random bytes from the kernel; if `/dev/urandom` cannot be read, a
/// hash of the time, the process id and std's per-process random hash
/// keys (unique, though not secret).
pub(super) fn random_bytes() -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut out).is_ok() {
            return out;
        }
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::sys::realtime_ns());
    h.write_u32(std::process::id());
    let digest = Sha512::digest(h.finish().to_be_bytes());
    out.copy_from_slice(&digest[..16]);
    out
}

/// The kernel's hostname, or `"localhost"`.
pub(super) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
