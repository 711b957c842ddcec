//! The crate's one public error type.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::counters::{Counter, Unavailable};

/// Everything that can go wrong in `dynostats`.
///
/// Each variant carries what a person needs to act on it: the OS error
/// number where there is one, and a sentence saying what to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A counter could not be opened or read on this machine.
    CounterUnavailable(Unavailable),
    /// An I/O operation failed; `context` says which.
    Io {
        /// What was being done, e.g. "opening /var/log/app.msgpack".
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A record stream could not be decoded at `offset` bytes from its start.
    Decode {
        /// Byte offset of the first byte of the record that failed.
        offset: u64,
        /// What was wrong.
        message: String,
    },
    /// A record stream ended in the middle of a record (a writer crashed
    /// mid-write, or the file was cut).
    Truncated {
        /// Byte offset of the first byte of the incomplete record.
        offset: u64,
    },
    /// A configuration value was rejected: which setting, and what is
    /// wrong with it.
    InvalidConfig(ConfigError),
    /// The pipeline was shut down, or its writer thread stopped.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CounterUnavailable(u) => fmt::Display::fmt(u, f),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Decode { offset, message } => {
                write!(f, "corrupt record at byte offset {offset}: {message}")
            }
            Error::Truncated { offset } => write!(
                f,
                "truncated record at byte offset {offset}: the stream ends inside a record"
            ),
            Error::InvalidConfig(e) => write!(f, "invalid configuration: {e}"),
            Error::Closed => f.write_str("the dynostats pipeline is shut down"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::InvalidConfig(e)
    }
}

/// A configuration value that a builder refused: which setting, and what
/// is wrong with it. Carried by [`Error::InvalidConfig`].
///
/// ```
/// use dynostats::sink::MemorySink;
/// use dynostats::{ConfigError, ConfigErrorKind, Error, Pipeline};
///
/// let err = Pipeline::builder().sink(MemorySink::new()).queue_capacity(0).build();
/// match err {
///     Err(Error::InvalidConfig(ConfigError { setting, kind: ConfigErrorKind::Zero, .. })) => {
///         assert_eq!(setting, "PipelineBuilder::queue_capacity")
///     }
///     other => panic!("expected a configuration error, got {other:?}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The setting, as the builder method that sets it (e.g.
    /// `"PipelineBuilder::queue_capacity"`, `"UdpSink::builder"` for the
    /// address given there).
    pub setting: &'static str,
    /// What is wrong with its value.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, kind: ConfigErrorKind) -> ConfigError {
        ConfigError { setting, kind }
    }
}

/// What is wrong with a setting's value ([`ConfigError::kind`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A count, size or duration that must be positive is zero.
    Zero,
    /// A number above its largest allowed value.
    TooLarge {
        /// The value given.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A string that must not be empty is empty.
    Empty,
    /// A string longer than allowed, in bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The most bytes allowed.
        max: usize,
    },
    /// A backoff whose cap is below its first delay.
    CapBelowFirst {
        /// The first delay.
        first: Duration,
        /// The cap.
        cap: Duration,
    },
    /// Something the builder needs was never given (a pipeline without a
    /// sink).
    Missing,
    /// An address that does not resolve to a socket address.
    Unresolvable {
        /// The address as given.
        addr: String,
        /// What the resolver said.
        reason: String,
    },
    /// A value of the wrong form (a URL that does not parse, a name that
    /// is not an identifier).
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// A counter that `needed_by` reads from the thread counters of
    /// [`snapshot`](crate::counters::snapshot), which the setting left out
    /// of their set.
    CounterLeftOut {
        /// The counter.
        counter: Counter,
        /// What needs it.
        needed_by: &'static str,
    },
}

/// A sentence a person can act on, naming the setting, e.g.
/// ``the value given to `PipelineBuilder::batch_size` must not be zero``.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let setting = self.setting;
        match &self.kind {
            ConfigErrorKind::Zero => write!(f, "the value given to `{setting}` must not be zero"),
            ConfigErrorKind::TooLarge { value, max } => write!(
                f,
                "the value given to `{setting}` is {value}, above its maximum of {max}"
            ),
            ConfigErrorKind::Empty => write!(f, "the value given to `{setting}` must not be empty"),
            ConfigErrorKind::TooLong { len, max } => write!(
                f,
                "the value given to `{setting}` is {len} bytes long, above its maximum of {max} \
                 bytes"
            ),
            ConfigErrorKind::CapBelowFirst { first, cap } => write!(
                f,
                "the cap given to `{setting}` ({cap:?}) is below its first delay ({first:?})"
            ),
            ConfigErrorKind::Missing => write!(f, "`{setting}` must be called at least once"),
            ConfigErrorKind::Unresolvable { addr, reason } => write!(
                f,
                "cannot resolve the address {addr:?} given to `{setting}` ({reason}): give \
                 host:port, an IP address or host name and a port"
            ),
            ConfigErrorKind::Malformed { reason } => {
                write!(f, "the value given to `{setting}` is malformed: {reason}")
            }
            ConfigErrorKind::CounterLeftOut { counter, needed_by } => write!(
                f,
                "{needed_by} reads the thread counters of dynostats::snapshot, and {counter} \
                 is not in their set (`{setting}` left it out)"
            ),
        }
    }
}
