//! The Forward protocol on the wire: entries, Forward-mode messages,
//! replies read within a deadline.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::config::TimeEncoding;
use crate::record::truncate;

/// Largest reply (ack or handshake message) the sink reads from a
/// collector, in bytes.
const MAX_REPLY_BYTES: u64 = 64 * 1024;

/// Appends `[time, ` (array header and time) of one entry.
pub(super) fn encode_time(buf: &mut Vec<u8>, ts_ns: u64, time: TimeEncoding) {
    let secs = u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
    let nanos = (ts_ns % 1_000_000_000) as u32;
    buf.push(0x92); // fixarray of 2
    match time {
        TimeEncoding::EventTime => {
            let _ = rmp::encode::write_ext_meta(buf, 8, 0);
            buf.extend_from_slice(&secs.to_be_bytes());
            buf.extend_from_slice(&nanos.to_be_bytes());
        }
        TimeEncoding::IntegerSeconds => {
            let _ = rmp::encode::write_uint(buf, u64::from(secs));
        }
    }
}

/// One Forward-mode message: `[tag, [entries...], {"chunk"?, "size"}]`.
pub(super) fn encode_message(
    tag: &str,
    entries: &[u8],
    records: usize,
    chunk: Option<&str>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(entries.len() + tag.len() + 64);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_array_len(&mut buf, 3);
    put_str(&mut buf, tag);
    let _ = rmp::encode::write_array_len(&mut buf, records as u32);
    buf.extend_from_slice(entries);
    let _ = rmp::encode::write_map_len(&mut buf, if chunk.is_some() { 2 } else { 1 });
    if let Some(id) = chunk {
        put_str(&mut buf, "chunk");
        put_str(&mut buf, id);
    }
    put_str(&mut buf, "size");
    let _ = rmp::encode::write_uint(&mut buf, records as u64);
    buf
}

pub(super) fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(buf, s);
}

/// Fails when the collector closed the connection (or sent something
/// unasked for), so that a chunk is not written into a dead connection.
pub(super) fn check_open(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let peeked = stream.peek(&mut byte);
    stream.set_nonblocking(false)?;
    match peeked {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the collector closed the connection",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads one MessagePack value from the collector within `timeout`.
pub(super) fn read_reply(
    stream: &TcpStream,
    timeout: Duration,
    what: &str,
) -> io::Result<rmpv::Value> {
    let deadline = Instant::now() + timeout;
    let mut reader = DeadlineReader { stream, deadline }.take(MAX_REPLY_BYTES);
    rmpv::decode::read_value_with_max_depth(&mut reader, 16).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("the collector closed the connection before sending the {what}"),
        ),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no {what} from the collector within {timeout:?}"),
        ),
        _ => invalid_reply(format!("reading the {what}: {e}")),
    })
}

/// Reads from a stream, failing once `deadline` has passed.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

pub(super) fn invalid_reply(message: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from the collector: {message}"),
    )
}

/// A value's text, cut for error messages.
pub(super) fn shorten(value: &rmpv::Value) -> String {
    let text = value.to_string();
    let cut = truncate(&text, 200);
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        text
    }
}

pub(super) fn map_get<'a>(value: &'a rmpv::Value, key: &str) -> Option<&'a rmpv::Value> {
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Standard Base64 with padding.
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = (u32::from(group[0]) << 16)
            | (u32::from(*group.get(1).unwrap_or(&0)) << 8)
            | u32::from(*group.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
