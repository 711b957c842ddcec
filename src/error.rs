//! The crate's one public error type.

use std::fmt;
use std::io;

use crate::counters::Unavailable;

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
    /// A configuration value was rejected.
    InvalidConfig(String),
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
            Error::InvalidConfig(msg) => write!(f, "invalid configuration: {msg}"),
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
