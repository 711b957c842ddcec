//! [`UdpSink`]: records as UDP datagrams to a local agent.
//!
//! See the type's documentation for the format and the delivery rules.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use super::{Batch, Sink};
use crate::error::{ConfigError, ConfigErrorKind, Error};

/// What a [`UdpSink`] did, counted since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpStats {
    /// Datagrams the kernel accepted.
    pub datagrams_sent: u64,
    /// Records in those datagrams.
    pub records_sent: u64,
    /// Records larger than [`UdpSink::MAX_DATAGRAM`], dropped.
    pub oversize_dropped: u64,
    /// Errors `send` returned. An `ECONNREFUSED` reports an ICMP error for
    /// an earlier datagram; the current one is then sent once more, and
    /// counted in [`send_error_dropped`](Self::send_error_dropped) only if
    /// that fails too.
    pub send_errors: u64,
    /// Records in datagrams whose `send` failed, dropped.
    pub send_error_dropped: u64,
}

/// Configures a [`UdpSink`]; made by [`UdpSink::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct UdpSinkBuilder {
    addr: String,
    datagram_limit: usize,
    pack: bool,
}

impl UdpSinkBuilder {
    /// Largest datagram the sink builds from several records, in bytes
    /// (default [`UdpSink::DEFAULT_DATAGRAM_LIMIT`]); between 1 and [`UdpSink::MAX_DATAGRAM`].
    pub fn datagram_limit(mut self, bytes: usize) -> Self {
        self.datagram_limit = bytes;
        self
    }

    /// Whether several records may share a datagram (default `true`).
    /// With `false`, every record is its own datagram.
    pub fn pack(mut self, pack: bool) -> Self {
        self.pack = pack;
        self
    }

    /// Resolves the address and opens the socket.
    ///
    /// The address is resolved once, here, so that writing never waits on
    /// name resolution. Fails with [`Error::InvalidConfig`] for a limit out
    /// of range or an address that does not resolve, and with
    /// [`Error::Io`] when the socket cannot be opened.
    pub fn build(self) -> Result<UdpSink, Error> {
        const LIMIT: &str = "UdpSinkBuilder::datagram_limit";
        if self.datagram_limit == 0 {
            return Err(ConfigError::new(LIMIT, ConfigErrorKind::Zero).into());
        }
        if self.datagram_limit > UdpSink::MAX_DATAGRAM {
            let kind = ConfigErrorKind::TooLarge {
                value: self.datagram_limit as u64,
                max: UdpSink::MAX_DATAGRAM as u64,
            };
            return Err(ConfigError::new(LIMIT, kind).into());
        }
        let target = resolve(&self.addr)?;
        let local: SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(|source| Error::Io {
            context: format!("opening a UDP socket for {}", self.addr),
            source,
        })?;
        // Connecting makes the kernel report ICMP errors (ECONNREFUSED) on
        // later sends, which are counted.
        socket.connect(target).map_err(|source| Error::Io {
            context: format!("connecting a UDP socket to {target}"),
            source,
        })?;
        Ok(UdpSink {
            socket,
            name: format!("udp:{}", self.addr),
            datagram_limit: self.datagram_limit,
            pack: self.pack,
            datagram: Vec::with_capacity(self.datagram_limit),
            datagram_records: 0,
            stats: UdpStats::default(),
        })
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    let unresolvable = |reason: String| {
        let kind = ConfigErrorKind::Unresolvable {
            addr: addr.to_string(),
            reason,
        };
        Error::from(ConfigError::new("UdpSink::builder", kind))
    };
    let mut addrs = addr
        .to_socket_addrs()
        .map_err(|e| unresolvable(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| unresolvable("it resolves to no address".to_string()))
}

/// Sends records as UDP datagrams to a local agent, several per datagram
/// under a size limit.
///
/// Each datagram holds one record, or several records back to back (a
/// plain concatenation of MessagePack maps, the same format as a record
/// file) as long as the datagram stays under a size limit, 1400 bytes by
/// default so that it fits in one Ethernet frame. A record larger than the
/// limit is sent alone when it fits in the largest UDP datagram
/// ([`UdpSink::MAX_DATAGRAM`] bytes); larger still, it is dropped and counted.
///
/// UDP is best effort: a datagram the network or the agent loses is not
/// seen by the sink. What the kernel does report (an oversize record, a
/// failed `send`, `ECONNREFUSED` after the agent's port sent back an ICMP
/// "port unreachable") is counted in [`UdpStats`] and never stops the
/// sink. Use [`ForwardSink`](super::ForwardSink) where every record must
/// arrive.
///
/// ```
/// use std::net::UdpSocket;
/// use std::time::Duration;
/// use dynostats::{sink::Batch, Record, RecordKind, sink::Sink, sink::UdpSink};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A stand-in for the local agent.
/// let agent = UdpSocket::bind("127.0.0.1:0")?;
/// agent.set_read_timeout(Some(Duration::from_secs(10)))?;
///
/// let mut sink = UdpSink::builder(&agent.local_addr()?.to_string())
///     .datagram_limit(1200)
///     .build()?;
/// let mut batch = Batch::new();
/// batch.push(&Record::new(RecordKind::Region, "checkout"));
/// batch.push(&Record::new(RecordKind::Region, "search"));
/// sink.write_batch(&batch)?;
///
/// // Both small records share one datagram.
/// let mut buf = [0u8; 1500];
/// let n = agent.recv(&mut buf)?;
/// assert_eq!(n, batch.bytes().len());
/// assert_eq!(sink.stats().datagrams_sent, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct UdpSink {
    socket: UdpSocket,
    name: String,
    datagram_limit: usize,
    pack: bool,
    /// The datagram being filled.
    datagram: Vec<u8>,
    datagram_records: u64,
    stats: UdpStats,
}

impl UdpSink {
    /// Largest UDP payload over IPv4 (65535 bytes minus the IP and UDP
    /// headers); a record larger than this cannot be sent and is dropped.
    pub const MAX_DATAGRAM: usize = 65_507;
    /// Default datagram size limit, in bytes: under a 1500-byte Ethernet MTU
    /// with room for IP and UDP headers and tunnels.
    pub const DEFAULT_DATAGRAM_LIMIT: usize = 1400;

    /// A builder for a sink sending to `addr` (`host:port`).
    pub fn builder(addr: &str) -> UdpSinkBuilder {
        UdpSinkBuilder {
            addr: addr.to_string(),
            datagram_limit: UdpSink::DEFAULT_DATAGRAM_LIMIT,
            pack: true,
        }
    }

    /// What the sink sent and dropped so far.
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// The local address of the sink's socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends the datagram being filled, if any.
    fn send_pending(&mut self) {
        if self.datagram_records == 0 {
            return;
        }
        self.send(true);
        self.datagram.clear();
        self.datagram_records = 0;
    }

    fn send(&mut self, retry: bool) {
        match self.socket.send(&self.datagram) {
            Ok(_) => {
                self.stats.datagrams_sent += 1;
                self.stats.records_sent += self.datagram_records;
            }
            // ECONNREFUSED reports an ICMP error for an earlier datagram;
            // this one was not sent, and the error is now cleared.
            Err(e) if retry && e.kind() == io::ErrorKind::ConnectionRefused => {
                self.stats.send_errors += 1;
                self.send(false);
            }
            Err(e) if retry && e.kind() == io::ErrorKind::Interrupted => self.send(false),
            Err(_) => {
                if retry {
                    self.stats.send_errors += 1;
                }
                self.stats.send_error_dropped += self.datagram_records;
            }
        }
    }
}

impl Sink for UdpSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Sends every record of `batch`; never fails: what could not be sent
    /// is counted in [`UdpSink::stats`] and [`Sink::dropped`].
    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        for record in batch.iter() {
            let len = record.bytes.len();
            if len > UdpSink::MAX_DATAGRAM {
                self.stats.oversize_dropped += 1;
                continue;
            }
            let fits = self.pack && self.datagram.len() + len <= self.datagram_limit;
            if !fits {
                self.send_pending();
            }
            self.datagram.extend_from_slice(record.bytes);
            self.datagram_records += 1;
        }
        self.send_pending();
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.stats.oversize_dropped + self.stats.send_error_dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_out_of_range_is_a_config_error() {
        for limit in [0, UdpSink::MAX_DATAGRAM + 1] {
            let err = UdpSink::builder("127.0.0.1:9")
                .datagram_limit(limit)
                .build()
                .unwrap_err();
            match err {
                Error::InvalidConfig(ConfigError {
                    setting: "UdpSinkBuilder::datagram_limit",
                    kind: ConfigErrorKind::Zero | ConfigErrorKind::TooLarge { .. },
                }) => {}
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn unresolvable_address_is_a_config_error() {
        let err = UdpSink::builder("no port here").build().unwrap_err();
        match &err {
            Error::InvalidConfig(ConfigError {
                setting: "UdpSink::builder",
                kind: ConfigErrorKind::Unresolvable { addr, .. },
            }) => assert_eq!(addr, "no port here"),
            other => panic!("{other}"),
        }
        // The sentence says what to give instead.
        assert!(err.to_string().contains("give host:port"), "{err}");
    }
}
