//! [`ForwardSinkBuilder`]: a Forward sink's settings, checked at `build`.

use std::collections::VecDeque;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::handshake::{random_bytes, system_hostname};
use super::{ForwardSink, ForwardStats};
use crate::error::{ConfigError, ConfigErrorKind, Error};
#[allow(unused_imports)] // Named by the docs.
use crate::sink::Sink;

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

/// Configures a [`ForwardSink`]; made by [`ForwardSink::builder`].
#[derive(Clone)]
#[must_use]
pub struct ForwardSinkBuilder {
    config: Config,
}

/// What a [`ForwardSink`] was built with.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) addr: String,
    pub(super) tag: String,
    pub(super) require_ack: bool,
    pub(super) time: TimeEncoding,
    pub(super) connect_timeout: Duration,
    pub(super) write_timeout: Duration,
    pub(super) ack_timeout: Duration,
    pub(super) flush_timeout: Duration,
    pub(super) backoff_initial: Duration,
    pub(super) backoff_max: Duration,
    pub(super) buffer_records: usize,
    pub(super) buffer_bytes: usize,
    pub(super) chunk_records: usize,
    pub(super) chunk_bytes: usize,
    pub(super) max_sends: u32,
    pub(super) shared_key: Option<String>,
    pub(super) hostname: Option<String>,
}

impl fmt::Debug for Config {
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
            .field("max_sends", &self.max_sends)
            .field(
                "shared_key",
                &self.shared_key.as_ref().map(|_| "<redacted>"),
            )
            .field("hostname", &self.hostname)
            .finish()
    }
}

impl fmt::Debug for ForwardSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl ForwardSinkBuilder {
    /// The defaults, for the collector at `addr`.
    pub(super) fn new(addr: &str) -> ForwardSinkBuilder {
        ForwardSinkBuilder {
            config: Config {
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
                max_sends: ForwardSink::DEFAULT_MAX_SENDS,
                shared_key: None,
                hostname: None,
            },
        }
    }

    /// The tag (Scribe's category) of every message; default
    /// `"dynostats"`. Non-empty, at most 1024 bytes.
    pub fn tag(mut self, tag: &str) -> Self {
        self.config.tag = tag.to_string();
        self
    }

    /// Whether to ask for an ack per chunk and count a chunk delivered
    /// only once acked (default `true`).
    pub fn require_ack(mut self, on: bool) -> Self {
        self.config.require_ack = on;
        self
    }

    /// How entry times are written (default [`TimeEncoding::EventTime`]).
    pub fn time_encoding(mut self, time: TimeEncoding) -> Self {
        self.config.time = time;
        self
    }

    /// Longest wait for a TCP connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Longest wait for one socket write to make progress (default 5 s).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// Longest wait for a chunk's ack, and for each handshake reply
    /// (default 5 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// Longest time [`Sink::flush`] keeps trying to deliver the buffer
    /// (default 10 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.config.flush_timeout = timeout;
        self
    }

    /// Delay before reconnecting after a failure: `initial`, doubled after
    /// each further failure up to `max` (default 100 ms up to 30 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.backoff_initial = initial;
        self.config.backoff_max = max;
        self
    }

    /// Most records buffered while undelivered (default 10 000); beyond
    /// it new records are dropped and counted.
    pub fn buffer_records(mut self, records: usize) -> Self {
        self.config.buffer_records = records;
        self
    }

    /// Most bytes of entries buffered while undelivered (default 16 MiB);
    /// beyond it new records are dropped and counted.
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.config.buffer_bytes = bytes;
        self
    }

    /// Most records in one chunk (default 1000).
    pub fn chunk_records(mut self, records: usize) -> Self {
        self.config.chunk_records = records;
        self
    }

    /// Most bytes of entries in one chunk (default 512 KiB); a single
    /// larger record is sent as a chunk of its own.
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.config.chunk_bytes = bytes;
        self
    }

    /// How many times one chunk is sent before its records are given up
    /// (default [`ForwardSink::DEFAULT_MAX_SENDS`]; at least 1). A chunk
    /// sent that many times without an ack is dropped: its records are
    /// counted in [`ForwardStats::dropped_resend_limit`] (and in
    /// [`Sink::dropped`]) and the last error says so. This bounds the
    /// copies a collector that keeps repeats (Fluent Bit) can receive.
    pub fn max_sends(mut self, sends: u32) -> Self {
        self.config.max_sends = sends;
        self
    }

    /// Turns on the shared-key handshake with this key.
    pub fn shared_key(mut self, key: &str) -> Self {
        self.config.shared_key = Some(key.to_string());
        self
    }

    /// The hostname sent in the handshake (default: the kernel's
    /// hostname). Fluentd refuses a handshake whose two hostnames are
    /// equal, so give a different one when the collector runs on the same
    /// host under the host's name.
    pub fn hostname(mut self, hostname: &str) -> Self {
        self.config.hostname = Some(hostname.to_string());
        self
    }

    /// Checks the configuration and resolves the address. Does not
    /// connect: the first [`Sink::write_batch`] does.
    ///
    /// Fails with [`Error::InvalidConfig`] for an address that does not
    /// resolve, an empty or overlong tag, a zero timeout or limit, or a
    /// backoff whose cap is below its first delay.
    pub fn build(self) -> Result<ForwardSink, Error> {
        let c = &self.config;
        let invalid = |setting, kind| Err(Error::from(ConfigError::new(setting, kind)));
        if c.tag.is_empty() {
            return invalid("ForwardSinkBuilder::tag", ConfigErrorKind::Empty);
        }
        if c.tag.len() > MAX_TAG_LEN {
            let kind = ConfigErrorKind::TooLong {
                len: c.tag.len(),
                max: MAX_TAG_LEN,
            };
            return invalid("ForwardSinkBuilder::tag", kind);
        }
        for (setting, d) in [
            ("ForwardSinkBuilder::connect_timeout", c.connect_timeout),
            ("ForwardSinkBuilder::write_timeout", c.write_timeout),
            ("ForwardSinkBuilder::ack_timeout", c.ack_timeout),
            ("ForwardSinkBuilder::flush_timeout", c.flush_timeout),
            ("ForwardSinkBuilder::backoff", c.backoff_initial),
        ] {
            if d.is_zero() {
                return invalid(setting, ConfigErrorKind::Zero);
            }
        }
        if c.backoff_max < c.backoff_initial {
            let kind = ConfigErrorKind::CapBelowFirst {
                first: c.backoff_initial,
                cap: c.backoff_max,
            };
            return invalid("ForwardSinkBuilder::backoff", kind);
        }
        for (setting, n) in [
            ("ForwardSinkBuilder::buffer_records", c.buffer_records),
            ("ForwardSinkBuilder::buffer_bytes", c.buffer_bytes),
            ("ForwardSinkBuilder::chunk_records", c.chunk_records),
            ("ForwardSinkBuilder::chunk_bytes", c.chunk_bytes),
            ("ForwardSinkBuilder::max_sends", c.max_sends as usize),
        ] {
            if n == 0 {
                return invalid(setting, ConfigErrorKind::Zero);
            }
        }
        if c.chunk_records > u32::MAX as usize {
            let kind = ConfigErrorKind::TooLarge {
                value: c.chunk_records as u64,
                max: u64::from(u32::MAX),
            };
            return invalid("ForwardSinkBuilder::chunk_records", kind);
        }
        let unresolvable = |reason: String| ConfigErrorKind::Unresolvable {
            addr: c.addr.clone(),
            reason,
        };
        let addrs: Vec<SocketAddr> = match c.addr.to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(e) => return invalid("ForwardSink::builder", unresolvable(e.to_string())),
        };
        if addrs.is_empty() {
            let reason = "it resolves to no address".to_string();
            return invalid("ForwardSink::builder", unresolvable(reason));
        }
        let hostname = c.hostname.clone().unwrap_or_else(system_hostname);
        let mut id_prefix = [0u8; 8];
        id_prefix.copy_from_slice(&random_bytes()[..8]);
        let name = format!("forward:{}/{}", c.addr, c.tag);
        let backoff = c.backoff_initial;
        Ok(ForwardSink {
            name,
            config: self.config,
            hostname,
            addrs,
            conn: None,
            pending: VecDeque::new(),
            pending_bytes: 0,
            inflight: None,
            retry_at: None,
            backoff,
            id_prefix,
            chunk_seq: 0,
            stats: ForwardStats::default(),
            last_error: None,
            reported_resend_drops: 0,
        })
    }
}
