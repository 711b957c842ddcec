//! [`ForwardSink`]: records to a Fluentd Forward protocol collector over TCP.
//!
//! See the type's documentation for the format and the delivery rules.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

mod config;
mod handshake;
mod wire;

pub use config::{ForwardSinkBuilder, TimeEncoding};

use config::Config;
use handshake::parse_helo;
use wire::{
    base64, check_open, encode_message, encode_time, invalid_reply, map_get, read_reply, shorten,
};

use super::{Batch, Sink};

/// What a [`ForwardSink`] did, counted since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardStats {
    /// Records delivered: acked, or written when acks are off.
    pub records_delivered: u64,
    /// Chunks delivered.
    pub chunks_delivered: u64,
    /// Chunks sent again after a broken connection or a missing ack.
    pub chunks_resent: u64,
    /// Records sent again (the records of [`chunks_resent`](Self::chunks_resent)):
    /// a collector that keeps repeats may hold this many extra copies.
    pub records_resent: u64,
    /// Chunks given up after [`ForwardSinkBuilder::max_sends`] sends
    /// without an ack.
    pub chunks_dropped_resend_limit: u64,
    /// Records of those chunks (counted in [`dropped`](Self::dropped) too).
    pub dropped_resend_limit: u64,
    /// Connections established (handshake included).
    pub connects: u64,
    /// Connection attempts that failed before the handshake.
    pub connect_failures: u64,
    /// Handshakes that failed: key rejected, wrong digest, bad reply.
    pub handshake_failures: u64,
    /// Writes or ack waits that failed on an established connection.
    pub send_failures: u64,
    /// Records dropped by the sink: the buffer was full, or their chunk
    /// reached the send limit ([`dropped_resend_limit`](Self::dropped_resend_limit)).
    pub dropped: u64,
    /// Records in the buffer now (not yet delivered).
    pub buffered_records: u64,
    /// Bytes of entries in the buffer now.
    pub buffered_bytes: u64,
}

/// A chunk of entries encoded as one Forward-mode message.
struct Chunk {
    id: String,
    message: Vec<u8>,
    records: usize,
    entry_bytes: usize,
    sends: u32,
}

/// Sends records to a Fluentd Forward protocol collector over TCP, with
/// acks, reconnection, a bounded buffer and an optional shared-key
/// handshake.
///
/// The Forward protocol (v1) is what Fluentd, Fluent Bit, Vector and the
/// OpenTelemetry Collector accept on their `forward` inputs (port 24224 by
/// convention). The tag plays the part of a Scribe category: collectors
/// route on it.
///
/// # On the wire
///
/// Records go in Forward mode, one message per chunk of records:
///
/// ```text
/// [tag, [[time, record], [time, record], ...], {"chunk": id, "size": n}]
/// ```
///
/// - `record` is the record's MessagePack map, byte for byte as the
///   [`Batch`] holds it.
/// - `time` is the record's `ts`, as an EventTime by default: MessagePack
///   ext type 0 of 8 bytes, big-endian seconds then nanoseconds since the
///   Unix epoch, so no precision is lost. [`TimeEncoding::IntegerSeconds`]
///   sends whole seconds instead, for collectors that predate EventTime
///   (Fluentd 0.12).
/// - `size` is the number of entries. `chunk` is a unique id, the Base64
///   text of 128 bits, sent only when acks are on.
///
/// # Delivery
///
/// With acks on (the default), a chunk counts as delivered only when the
/// collector answers `{"ack": id}`. The sink sends one chunk at a time and
/// waits for its ack. A chunk that was not acked (the connection broke, the
/// ack did not come within the ack timeout) stays in the buffer and is sent
/// again, with the same id, after reconnecting: delivery is **at least
/// once**, and a collector can drop a repeated chunk by its id.
///
/// A chunk is sent at most [`ForwardSinkBuilder::max_sends`] times
/// ([`ForwardSink::DEFAULT_MAX_SENDS`] by default). When a send fails and
/// the chunk has been sent that many times, it is given up: its records
/// are counted as dropped by the sink ([`ForwardStats::dropped_resend_limit`],
/// [`Sink::dropped`]; `records_dropped_by_sink` in status records) with the
/// reason in [`ForwardSink::last_error`]. Every resend is counted
/// ([`ForwardStats::chunks_resent`], [`ForwardStats::records_resent`],
/// [`Sink::resent`]; `records_resent` in status records).
///
/// **What collectors do with repeats.** The Forward protocol lets a
/// collector drop a chunk whose id it has already acked, but not every
/// collector does: Fluent Bit's `forward` input acks and keeps every copy
/// (a frozen collector that comes back after the sink reconnected twice
/// holds the chunk three times). With Fluent Bit, a frozen collector means
/// duplicates, up to `max_sends - 1` extra copies per chunk; `records_resent`
/// says how many records may be repeated, and records carry a unique `id`
/// a reader can deduplicate on.
///
/// With acks off, a chunk counts as delivered once written to the socket.
/// The sink checks that the collector has not closed the connection before
/// each write, but what the collector loses after the kernel accepted the
/// bytes is lost unseen: use acks where every record matters.
///
/// # When the collector is down
///
/// [`Sink::write_batch`] adds the batch's records to a bounded buffer and
/// sends what it can. When the collector cannot be reached, the sink tries
/// again after a delay that starts at [`ForwardSinkBuilder::backoff`]'s
/// first value and doubles after every failure up to its cap; a delivered
/// chunk resets it. Between attempts `write_batch` only buffers, so a
/// down collector costs the writer thread at most one connection attempt
/// per delay.
///
/// The buffer holds records accepted but not yet delivered, including the
/// chunk awaiting its ack, and is bounded both in records and in bytes.
/// When a new record does not fit, the sink first delivers what it can;
/// if there is still no room, **the new record is dropped** (the oldest
/// are kept) and counted in [`Sink::dropped`]. Records already in
/// the buffer may be in flight, and keeping them keeps every chunk id
/// naming the same records when it is sent again.
///
/// [`Sink::flush`] keeps trying (connecting after each delay) until the
/// buffer is empty or the flush timeout has passed; then it fails with the
/// number of records still buffered and the last error. It also fails when
/// chunks were given up at the send limit since the previous flush.
///
/// # Every wait is bounded
///
/// The sink runs on the pipeline's writer thread and blocks on I/O there,
/// but never without a bound: connecting waits at most the connect
/// timeout, each write at most the write timeout, each ack or handshake
/// reply at most the ack timeout, and a flush at most the flush timeout
/// (plus one of those). The address is resolved once, by
/// [`ForwardSinkBuilder::build`], because name resolution cannot be
/// bounded.
///
/// # Shared-key handshake
///
/// With [`ForwardSinkBuilder::shared_key`] set, every connection starts
/// with the protocol's handshake: the collector sends `HELO` with a nonce,
/// the sink answers `PING` with its hostname, a fresh salt and
/// `sha512_hex(salt + hostname + nonce + shared_key)`, the collector
/// answers `PONG`, and the sink checks the collector's own digest
/// (`sha512_hex(salt + collector_hostname + nonce + shared_key)`) before
/// sending any record. A rejected key or a wrong digest is an error
/// counted in [`ForwardStats::handshake_failures`], retried with backoff.
/// Username and password authentication are not supported. The handshake
/// proves both sides know the key; it does not encrypt anything.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use dynostats::{sink::Batch, sink::ForwardSink, Record, RecordKind, sink::Sink};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut sink = ForwardSink::builder("127.0.0.1:24224")
///     .tag("dynostats.checkout")
///     .buffer_records(50_000)
///     .ack_timeout(Duration::from_secs(2))
///     .build()?;
/// let mut batch = Batch::new();
/// batch.push(&Record::new(RecordKind::Region, "checkout"));
/// sink.write_batch(&batch)?;
/// sink.flush()?;
/// println!("{:?}", sink.stats());
/// # Ok(())
/// # }
/// ```
pub struct ForwardSink {
    name: String,
    config: Config,
    hostname: String,
    addrs: Vec<SocketAddr>,
    conn: Option<TcpStream>,
    /// Encoded `[time, record]` entries not yet in a chunk, oldest first.
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    /// The chunk being delivered (sent, or to be sent again).
    inflight: Option<Chunk>,
    /// No connection attempt before this instant.
    retry_at: Option<Instant>,
    /// The next backoff delay.
    backoff: Duration,
    id_prefix: [u8; 8],
    chunk_seq: u64,
    stats: ForwardStats,
    last_error: Option<String>,
    /// `dropped_resend_limit` when the last flush reported it.
    reported_resend_drops: u64,
}

impl fmt::Debug for ForwardSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardSink")
            .field("name", &self.name)
            .field("connected", &self.conn.is_some())
            .field("stats", &self.stats())
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

impl ForwardSink {
    /// How many times a chunk is sent, at most, by default
    /// ([`ForwardSinkBuilder::max_sends`]).
    pub const DEFAULT_MAX_SENDS: u32 = 5;

    /// A builder for a sink sending to the collector at `addr`
    /// (`host:port`, usually port 24224).
    pub fn builder(addr: &str) -> ForwardSinkBuilder {
        ForwardSinkBuilder::new(addr)
    }

    /// What the sink delivered, buffered and dropped so far.
    pub fn stats(&self) -> ForwardStats {
        let inflight_records = self.inflight.as_ref().map_or(0, |c| c.records);
        let inflight_bytes = self.inflight.as_ref().map_or(0, |c| c.entry_bytes);
        ForwardStats {
            buffered_records: (self.pending.len() + inflight_records) as u64,
            buffered_bytes: (self.pending_bytes + inflight_bytes) as u64,
            ..self.stats
        }
    }

    /// The last connection, handshake or delivery error, if any, e.g.
    /// `"connecting to 127.0.0.1:24224: Connection refused"`.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether the sink holds an open connection to the collector.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn buffered(&self) -> (usize, usize) {
        let s = self.stats();
        (s.buffered_records as usize, s.buffered_bytes as usize)
    }

    /// Takes the oldest pending entries into a new chunk.
    fn next_chunk(&mut self) -> Chunk {
        let mut entries = Vec::new();
        let mut records = 0usize;
        while let Some(front) = self.pending.front() {
            if records > 0
                && (records >= self.config.chunk_records
                    || entries.len() + front.len() > self.config.chunk_bytes)
            {
                break;
            }
            let entry = self.pending.pop_front().unwrap_or_default();
            self.pending_bytes -= entry.len();
            entries.extend_from_slice(&entry);
            records += 1;
        }
        self.chunk_seq += 1;
        let id = if self.config.require_ack {
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&self.id_prefix);
            raw[8..].copy_from_slice(&self.chunk_seq.to_be_bytes());
            Some(base64(&raw))
        } else {
            None
        };
        let message = encode_message(&self.config.tag, &entries, records, id.as_deref());
        Chunk {
            id: id.unwrap_or_default(),
            message,
            records,
            entry_bytes: entries.len(),
            sends: 0,
        }
    }

    /// Sends buffered chunks until the buffer is empty, or a failure when
    /// `deadline` is `None`, or `deadline`.
    fn deliver(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            if self.inflight.is_none() {
                if self.pending.is_empty() {
                    return Ok(());
                }
                let chunk = self.next_chunk();
                self.inflight = Some(chunk);
            }
            if self.conn.is_none() {
                let now = Instant::now();
                if let Some(at) = self.retry_at.filter(|&at| at > now) {
                    match deadline {
                        Some(d) if at < d => thread::sleep(at - now),
                        _ => return Err(self.undelivered(deadline.is_some())),
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(self.undelivered(true));
                }
                match self.open(deadline) {
                    Ok(stream) => {
                        self.stats.connects += 1;
                        self.conn = Some(stream);
                    }
                    Err(e) => {
                        self.failed(e, deadline);
                        continue;
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.undelivered(true));
            }
            match self.send_inflight(deadline) {
                Ok(()) => {
                    if let Some(chunk) = self.inflight.take() {
                        self.stats.records_delivered += chunk.records as u64;
                        self.stats.chunks_delivered += 1;
                    }
                    self.backoff = self.config.backoff_initial;
                    self.retry_at = None;
                }
                Err(e) => {
                    self.stats.send_failures += 1;
                    if let Some(stream) = self.conn.take() {
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                    self.failed(e, deadline);
                    self.give_up_after_max_sends();
                }
            }
        }
    }

    /// Drops the in-flight chunk once it has been sent
    /// [`ForwardSinkBuilder::max_sends`] times, counting its records.
    fn give_up_after_max_sends(&mut self) {
        let Some(chunk) = self.inflight.as_ref() else {
            return;
        };
        if chunk.sends < self.config.max_sends {
            return;
        }
        let (id, sends, records) = (chunk.id.clone(), chunk.sends, chunk.records as u64);
        self.inflight = None;
        self.stats.chunks_dropped_resend_limit += 1;
        self.stats.dropped_resend_limit += records;
        self.stats.dropped += records;
        let last = self.last_error.take().unwrap_or_default();
        self.last_error = Some(format!(
            "chunk {id} of {records} records dropped after {sends} sends without an ack \
             (max_sends); last error: {last}"
        ));
    }

    /// Notes a failure and schedules the next connection attempt. A
    /// timeout of an attempt that the flush's `deadline` cut short says
    /// less than the failure before it (a rejected key, a refused
    /// connection), which is kept as the last error.
    fn failed(&mut self, error: io::Error, deadline: Option<Instant>) {
        let cut_short = error.kind() == io::ErrorKind::TimedOut
            && deadline.is_some_and(|d| Instant::now() >= d)
            && self.last_error.is_some();
        if !cut_short {
            self.last_error = Some(error.to_string());
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
    }

    /// The error of a flush (or delivery) that did not empty the buffer.
    fn undelivered(&self, timed_out: bool) -> io::Error {
        let (records, _) = self.buffered();
        let last = self.last_error.as_deref().unwrap_or("no error yet");
        let kind = if timed_out {
            io::ErrorKind::TimedOut
        } else {
            io::ErrorKind::NotConnected
        };
        io::Error::new(
            kind,
            format!(
                "{}: {records} records not delivered yet, kept in the buffer; last error: {last}",
                self.name
            ),
        )
    }

    /// `timeout`, shortened to what is left before `deadline`.
    fn bounded(timeout: Duration, deadline: Option<Instant>) -> Duration {
        let t = match deadline {
            Some(d) => timeout.min(d.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        // Never zero: the socket calls refuse a zero timeout.
        t.max(Duration::from_millis(1))
    }

    /// Connects (trying each resolved address) and runs the handshake.
    fn open(&mut self, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let timeout = Self::bounded(self.config.connect_timeout, deadline);
        let mut last = None;
        let mut stream = None;
        for addr in &self.addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => {
                    last = Some(io::Error::new(
                        e.kind(),
                        format!("connecting to {addr}: {e}"),
                    ))
                }
            }
        }
        let Some(stream) = stream else {
            self.stats.connect_failures += 1;
            return Err(last.unwrap_or_else(|| io::Error::other("no address to connect to")));
        };
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Self::bounded(self.config.write_timeout, deadline)))?;
        if let Some(key) = self.config.shared_key.clone() {
            if let Err(e) = self.handshake(&stream, &key, deadline) {
                self.stats.handshake_failures += 1;
                let _ = stream.shutdown(Shutdown::Both);
                return Err(io::Error::new(
                    e.kind(),
                    format!("Forward handshake with {}: {e}", self.config.addr),
                ));
            }
        }
        Ok(stream)
    }

    /// Writes the in-flight chunk and, with acks on, waits for its ack.
    fn send_inflight(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let (Some(stream), Some(chunk)) = (self.conn.as_ref(), self.inflight.as_mut()) else {
            return Err(io::Error::other("no connection or no chunk to send"));
        };
        check_open(stream)?;
        if chunk.sends > 0 {
            self.stats.chunks_resent += 1;
            self.stats.records_resent += chunk.records as u64;
        }
        chunk.sends += 1;
        stream.set_write_timeout(Some(Self::bounded(self.config.write_timeout, deadline)))?;
        let mut writer = stream;
        writer
            .write_all(&chunk.message)
            .map_err(|e| io::Error::new(e.kind(), format!("sending a chunk: {e}")))?;
        if !self.config.require_ack {
            return Ok(());
        }
        let timeout = Self::bounded(self.config.ack_timeout, deadline);
        let started = Instant::now();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no ack for chunk {} within {timeout:?}", chunk.id),
                ));
            }
            let reply = read_reply(stream, left, "ack")?;
            if let Some(ack) = map_get(&reply, "ack") {
                if ack.as_slice() == Some(chunk.id.as_bytes()) {
                    return Ok(());
                }
                // An ack for another chunk: not ours, keep waiting.
                continue;
            }
            if parse_helo(&reply).is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the collector asks for a shared-key handshake (it sent HELO): \
                     configure the sink's shared key",
                ));
            }
            return Err(invalid_reply(format!(
                "expected {{\"ack\": {:?}}}, got {}",
                chunk.id,
                shorten(&reply)
            )));
        }
    }
}

impl Sink for ForwardSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Buffers the records and delivers what it can without waiting for a
    /// reconnect delay. When the buffer is full it first delivers to make
    /// room; records that still do not fit are dropped and counted. Never fails: undelivered records stay buffered, and the
    /// last error is in [`ForwardSink::last_error`].
    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        let (mut records, mut bytes) = self.buffered();
        // Whether delivering now may make room (it stops helping once it
        // frees nothing: the collector is down or in a reconnect delay).
        let mut may_deliver = true;
        for record in batch.iter() {
            let mut entry = Vec::with_capacity(record.bytes.len() + 16);
            encode_time(&mut entry, record.ts, self.config.time);
            entry.extend_from_slice(record.bytes);
            let (max_records, max_bytes) = (self.config.buffer_records, self.config.buffer_bytes);
            let fits = |records: usize, bytes: usize| {
                records < max_records && bytes + entry.len() <= max_bytes
            };
            if !fits(records, bytes) && may_deliver {
                let _ = self.deliver(None);
                let before = records;
                (records, bytes) = self.buffered();
                may_deliver = records < before;
            }
            if !fits(records, bytes) {
                self.stats.dropped += 1;
                continue;
            }
            records += 1;
            bytes += entry.len();
            self.pending_bytes += entry.len();
            self.pending.push_back(entry);
        }
        // Undelivered records stay buffered: not an error of this batch.
        let _ = self.deliver(None);
        Ok(())
    }

    /// Delivers the whole buffer, retrying connections, for at most the
    /// flush timeout; fails with the number of records still buffered.
    fn flush(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.config.flush_timeout;
        // A flush tries at once, whatever the reconnect delay.
        if self.conn.is_none() {
            self.retry_at = None;
        }
        self.deliver(Some(deadline))?;
        let given_up = self.stats.dropped_resend_limit - self.reported_resend_drops;
        self.reported_resend_drops = self.stats.dropped_resend_limit;
        if given_up > 0 {
            let last = self.last_error.as_deref().unwrap_or("");
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{}: {given_up} records dropped: {last}", self.name),
            ));
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.stats.dropped
    }

    fn buffered(&self) -> u64 {
        self.stats().buffered_records
    }

    fn resent(&self) -> u64 {
        self.stats.records_resent
    }
}

#[cfg(test)]
mod tests {
    use super::handshake::sha512_hex;
    use super::*;
    use crate::error::{ConfigError, ConfigErrorKind, Error};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(base64(&[0xff; 16]).len(), 24);
    }

    #[test]
    fn event_time_is_ext0_big_endian_seconds_then_nanos() {
        let mut buf = Vec::new();
        encode_time(&mut buf, 1_700_000_000_123_456_789, TimeEncoding::EventTime);
        let mut want = vec![0x92, 0xd7, 0x00];
        want.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        want.extend_from_slice(&123_456_789u32.to_be_bytes());
        assert_eq!(buf, want);

        let mut buf = Vec::new();
        encode_time(
            &mut buf,
            1_700_000_000_999_999_999,
            TimeEncoding::IntegerSeconds,
        );
        assert_eq!(buf, [0x92, 0xce, 0x65, 0x53, 0xf1, 0x00]);
    }

    #[test]
    fn sha512_hex_matches_known_digest() {
        // sha512("abc") from FIPS 180-2, fed in two parts.
        assert_eq!(
            sha512_hex(&[b"a", b"bc"]),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn helo_accepts_binary_or_string_nonce() {
        use rmpv::Value;
        let helo = |nonce: Value| {
            Value::Array(vec![
                Value::from("HELO"),
                Value::Map(vec![
                    (Value::from("nonce"), nonce),
                    (Value::from("auth"), Value::from("")),
                ]),
            ])
        };
        assert_eq!(
            parse_helo(&helo(Value::Binary(vec![1, 2, 3]))),
            Some((vec![1, 2, 3], vec![]))
        );
        assert_eq!(
            parse_helo(&helo(Value::from("abc"))),
            Some((b"abc".to_vec(), vec![]))
        );
        assert_eq!(parse_helo(&Value::from("HELO")), None);
    }

    #[test]
    fn invalid_config_is_rejected_with_a_reason() {
        type Change = fn(ForwardSinkBuilder) -> ForwardSinkBuilder;
        let cases: [(&str, ConfigErrorKind, Change); 6] = [
            ("ForwardSinkBuilder::tag", ConfigErrorKind::Empty, |b| {
                b.tag("")
            }),
            (
                "ForwardSinkBuilder::tag",
                ConfigErrorKind::TooLong {
                    len: 1025,
                    max: 1024,
                },
                |b| b.tag(&"t".repeat(1025)),
            ),
            (
                "ForwardSinkBuilder::ack_timeout",
                ConfigErrorKind::Zero,
                |b| b.ack_timeout(Duration::ZERO),
            ),
            (
                "ForwardSinkBuilder::backoff",
                ConfigErrorKind::CapBelowFirst {
                    first: Duration::from_secs(2),
                    cap: Duration::from_secs(1),
                },
                |b| b.backoff(Duration::from_secs(2), Duration::from_secs(1)),
            ),
            (
                "ForwardSinkBuilder::buffer_records",
                ConfigErrorKind::Zero,
                |b| b.buffer_records(0),
            ),
            (
                "ForwardSinkBuilder::max_sends",
                ConfigErrorKind::Zero,
                |b| b.max_sends(0),
            ),
        ];
        for (setting, kind, change) in cases {
            match change(ForwardSink::builder("127.0.0.1:24224")).build() {
                Err(Error::InvalidConfig(e)) => {
                    assert_eq!(e, ConfigError::new(setting, kind), "{e}")
                }
                other => panic!("{setting}: {other:?}"),
            }
        }
        match ForwardSink::builder("nowhere").build() {
            Err(Error::InvalidConfig(ConfigError {
                setting: "ForwardSink::builder",
                kind: ConfigErrorKind::Unresolvable { addr, .. },
            })) => assert_eq!(addr, "nowhere"),
            other => panic!("{other:?}"),
        }
    }
}
