//! [`ForwardSink`]: records to a Fluentd Forward protocol collector over TCP.
//!
//! See the type's documentation for the format and the delivery rules.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha512};

use crate::{Batch, Error, Sink};

/// Largest reply (ack or handshake message) the sink reads from a
/// collector, in bytes.
const MAX_REPLY_BYTES: u64 = 64 * 1024;
/// Longest tag accepted, in bytes.
const MAX_TAG_LEN: usize = 1024;

/// How the `time` of each entry is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeEncoding {
    /// EventTime: MessagePack ext type 0, 8 bytes: big-endian `u32`
    /// seconds then `u32` nanoseconds. Full precision; the default.
    #[default]
    EventTime,
    /// A MessagePack integer of whole seconds, for collectors that do not
    /// know EventTime.
    IntegerSeconds,
}

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
    /// Connections established (handshake included).
    pub connects: u64,
    /// Connection attempts that failed before the handshake.
    pub connect_failures: u64,
    /// Handshakes that failed: key rejected, wrong digest, bad reply.
    pub handshake_failures: u64,
    /// Writes or ack waits that failed on an established connection.
    pub send_failures: u64,
    /// Records dropped because the buffer was full.
    pub dropped: u64,
    /// Records in the buffer now (not yet delivered).
    pub buffered_records: u64,
    /// Bytes of entries in the buffer now.
    pub buffered_bytes: u64,
}

/// Configures a [`ForwardSink`]; made by [`ForwardSink::builder`].
#[derive(Clone)]
pub struct ForwardSinkBuilder {
    addr: String,
    tag: String,
    require_ack: bool,
    time: TimeEncoding,
    connect_timeout: Duration,
    write_timeout: Duration,
    ack_timeout: Duration,
    flush_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    buffer_records: usize,
    buffer_bytes: usize,
    chunk_records: usize,
    chunk_bytes: usize,
    shared_key: Option<String>,
    hostname: Option<String>,
}

impl fmt::Debug for ForwardSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardSinkBuilder")
            .field("addr", &self.addr)
            .field("tag", &self.tag)
            .field("require_ack", &self.require_ack)
            .field("time", &self.time)
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("ack_timeout", &self.ack_timeout)
            .field("flush_timeout", &self.flush_timeout)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("buffer_records", &self.buffer_records)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("chunk_records", &self.chunk_records)
            .field("chunk_bytes", &self.chunk_bytes)
            .field(
                "shared_key",
                &self.shared_key.as_ref().map(|_| "<redacted>"),
            )
            .field("hostname", &self.hostname)
            .finish()
    }
}

impl ForwardSinkBuilder {
    /// The tag (Scribe's category) of every message; default
    /// `"dynostats"`. Non-empty, at most 1024 bytes.
    pub fn tag(&mut self, tag: &str) -> &mut Self {
        self.tag = tag.to_string();
        self
    }

    /// Whether to ask for an ack per chunk and count a chunk delivered
    /// only once acked (default `true`).
    pub fn require_ack(&mut self, on: bool) -> &mut Self {
        self.require_ack = on;
        self
    }

    /// How entry times are written (default [`TimeEncoding::EventTime`]).
    pub fn time_encoding(&mut self, time: TimeEncoding) -> &mut Self {
        self.time = time;
        self
    }

    /// Longest wait for a TCP connection (default 1 s).
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest wait for one socket write to make progress (default 5 s).
    pub fn write_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.write_timeout = timeout;
        self
    }

    /// Longest wait for a chunk's ack, and for each handshake reply
    /// (default 5 s).
    pub fn ack_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.ack_timeout = timeout;
        self
    }

    /// Longest time [`Sink::flush`] keeps trying to deliver the buffer
    /// (default 10 s).
    pub fn flush_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.flush_timeout = timeout;
        self
    }

    /// Delay before reconnecting after a failure: `initial`, doubled after
    /// each further failure up to `max` (default 100 ms up to 30 s).
    pub fn backoff(&mut self, initial: Duration, max: Duration) -> &mut Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Most records buffered while undelivered (default 10 000); beyond
    /// it new records are dropped and counted.
    pub fn buffer_records(&mut self, records: usize) -> &mut Self {
        self.buffer_records = records;
        self
    }

    /// Most bytes of entries buffered while undelivered (default 16 MiB);
    /// beyond it new records are dropped and counted.
    pub fn buffer_bytes(&mut self, bytes: usize) -> &mut Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Most records in one chunk (default 1000).
    pub fn chunk_records(&mut self, records: usize) -> &mut Self {
        self.chunk_records = records;
        self
    }

    /// Most bytes of entries in one chunk (default 512 KiB); a single
    /// larger record is sent as a chunk of its own.
    pub fn chunk_bytes(&mut self, bytes: usize) -> &mut Self {
        self.chunk_bytes = bytes;
        self
    }

    /// Turns on the shared-key handshake with this key.
    pub fn shared_key(&mut self, key: &str) -> &mut Self {
        self.shared_key = Some(key.to_string());
        self
    }

    /// The hostname sent in the handshake (default: the kernel's
    /// hostname). Fluentd refuses a handshake whose two hostnames are
    /// equal, so give a different one when the collector runs on the same
    /// host under the host's name.
    pub fn hostname(&mut self, hostname: &str) -> &mut Self {
        self.hostname = Some(hostname.to_string());
        self
    }

    /// Checks the configuration and resolves the address. Does not
    /// connect: the first [`Sink::write_batch`] does.
    ///
    /// Fails with [`Error::InvalidConfig`] for an address that does not
    /// resolve, an empty or overlong tag, a zero timeout or limit, or a
    /// backoff whose cap is below its first delay.
    pub fn build(&self) -> Result<ForwardSink, Error> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        if self.tag.is_empty() || self.tag.len() > MAX_TAG_LEN {
            return invalid(format!(
                "Forward tag {:?} must be 1 to {MAX_TAG_LEN} bytes long",
                self.tag
            ));
        }
        for (what, d) in [
            ("connect timeout", self.connect_timeout),
            ("write timeout", self.write_timeout),
            ("ack timeout", self.ack_timeout),
            ("flush timeout", self.flush_timeout),
            ("first backoff delay", self.backoff_initial),
        ] {
            if d.is_zero() {
                return invalid(format!("the Forward sink's {what} must not be zero"));
            }
        }
        if self.backoff_max < self.backoff_initial {
            return invalid(format!(
                "the Forward sink's backoff cap ({:?}) is below its first delay ({:?})",
                self.backoff_max, self.backoff_initial
            ));
        }
        for (what, n) in [
            ("buffer record limit", self.buffer_records),
            ("buffer byte limit", self.buffer_bytes),
            ("chunk record limit", self.chunk_records),
            ("chunk byte limit", self.chunk_bytes),
        ] {
            if n == 0 {
                return invalid(format!("the Forward sink's {what} must not be zero"));
            }
        }
        if self.chunk_records > u32::MAX as usize {
            return invalid("the Forward sink's chunk record limit is above 2^32 - 1".into());
        }
        let addrs: Vec<SocketAddr> = self
            .addr
            .to_socket_addrs()
            .map_err(|e| {
                Error::InvalidConfig(format!(
                    "cannot resolve the Forward collector address {:?}: {e}; give host:port, e.g. 127.0.0.1:24224",
                    self.addr
                ))
            })?
            .collect();
        if addrs.is_empty() {
            return invalid(format!("{:?} resolves to no address", self.addr));
        }
        let hostname = self.hostname.clone().unwrap_or_else(system_hostname);
        let mut id_prefix = [0u8; 8];
        id_prefix.copy_from_slice(&random_bytes()[..8]);
        Ok(ForwardSink {
            name: format!("forward:{}/{}", self.addr, self.tag),
            config: self.clone(),
            hostname,
            addrs,
            conn: None,
            pending: VecDeque::new(),
            pending_bytes: 0,
            inflight: None,
            retry_at: None,
            backoff: self.backoff_initial,
            id_prefix,
            chunk_seq: 0,
            stats: ForwardStats::default(),
            last_error: None,
        })
    }
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
/// again, with the same id, after reconnecting: delivery is at least once,
/// and a collector can drop a repeated chunk by its id.
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
/// number of records still buffered and the last error.
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
/// use dynostats::{Batch, ForwardSink, Record, RecordKind, Sink};
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
    config: ForwardSinkBuilder,
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
    /// A builder for a sink sending to the collector at `addr`
    /// (`host:port`, usually port 24224).
    pub fn builder(addr: &str) -> ForwardSinkBuilder {
        ForwardSinkBuilder {
            addr: addr.to_string(),
            tag: "dynostats".to_string(),
            require_ack: true,
            time: TimeEncoding::EventTime,
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            buffer_records: 10_000,
            buffer_bytes: 16 << 20,
            chunk_records: 1000,
            chunk_bytes: 512 << 10,
            shared_key: None,
            hostname: None,
        }
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
                        self.failed(e);
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
                    self.failed(e);
                }
            }
        }
    }

    /// Notes a failure and schedules the next connection attempt.
    fn failed(&mut self, error: io::Error) {
        self.last_error = Some(error.to_string());
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

    /// HELO, PING, PONG, as the Forward protocol v1 describes.
    fn handshake(
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

    /// Writes the in-flight chunk and, with acks on, waits for its ack.
    fn send_inflight(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let (Some(stream), Some(chunk)) = (self.conn.as_ref(), self.inflight.as_mut()) else {
            return Err(io::Error::other("no connection or no chunk to send"));
        };
        check_open(stream)?;
        if chunk.sends > 0 {
            self.stats.chunks_resent += 1;
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
        self.deliver(Some(deadline))
    }

    fn dropped(&self) -> u64 {
        self.stats.dropped
    }
}

/// Appends `[time, ` (array header and time) of one entry.
fn encode_time(buf: &mut Vec<u8>, ts_ns: u64, time: TimeEncoding) {
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
fn encode_message(tag: &str, entries: &[u8], records: usize, chunk: Option<&str>) -> Vec<u8> {
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

fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(buf, s);
}

/// Fails when the collector closed the connection (or sent something
/// unasked for), so that a chunk is not written into a dead connection.
fn check_open(stream: &TcpStream) -> io::Result<()> {
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
fn read_reply(stream: &TcpStream, timeout: Duration, what: &str) -> io::Result<rmpv::Value> {
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

fn invalid_reply(message: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from the collector: {message}"),
    )
}

/// A value's text, cut for error messages.
fn shorten(value: &rmpv::Value) -> String {
    let mut text = value.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

fn map_get<'a>(value: &'a rmpv::Value, key: &str) -> Option<&'a rmpv::Value> {
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// `["HELO", {"nonce": n, "auth": a, ...}]` gives `(n, a)`; nonce and
/// auth salt may be strings or binaries.
fn parse_helo(value: &rmpv::Value) -> Option<(Vec<u8>, Vec<u8>)> {
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
fn parse_pong(value: &rmpv::Value) -> Option<(bool, String, String, String)> {
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

fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Standard Base64 with padding.
fn base64(bytes: &[u8]) -> String {
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

/// 16 random bytes from the kernel; if `/dev/urandom` cannot be read, a
/// hash of the time, the process id and std's per-process random hash
/// keys (unique, though not secret).
fn random_bytes() -> [u8; 16] {
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
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        type Change = fn(&mut ForwardSinkBuilder);
        let cases: [(&str, Change); 4] = [
            ("tag", |b| {
                b.tag("");
            }),
            ("ack timeout", |b| {
                b.ack_timeout(Duration::ZERO);
            }),
            ("backoff cap", |b| {
                b.backoff(Duration::from_secs(2), Duration::from_secs(1));
            }),
            ("buffer record limit", |b| {
                b.buffer_records(0);
            }),
        ];
        for (what, change) in cases {
            let mut b = ForwardSink::builder("127.0.0.1:24224");
            change(&mut b);
            let err = b.build().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig(m) if m.contains(what)),
                "{what}: {err}"
            );
        }
        let err = ForwardSink::builder("nowhere").build().unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig(m) if m.contains("host:port")));
    }
}
