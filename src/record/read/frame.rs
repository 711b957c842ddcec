//! Framing: where a record ends in the stream. The reader's buffer is
//! refilled while the record at its front is incomplete, and the stream
//! ends on framing damage (a truncated tail, a length beyond the limit,
//! bytes that are not a MessagePack map at a record boundary), since the
//! next record boundary is then unknown.

use std::io::{self, Read};

use super::RecordReader;
use crate::error::Error;

/// Bytes read from the source at a time, at most (unless one record
/// needs more).
const CHUNK: usize = 256 << 10;
/// The first read: small inputs get a small buffer, and a hostile prefix
/// is refused after reading little.
const START: usize = 8 << 10;

/// Why decoding stopped before the end of a record.
pub(super) enum Stop {
    /// The bytes end inside the record: read more, or it is truncated.
    Incomplete,
    /// The record cannot be framed: the stream is damaged from here on.
    Framing(String),
}

impl<R: Read> RecordReader<R> {
    /// Ends the stream on `error`, keeping it in the damage; returns a
    /// copy of it for the caller.
    pub(super) fn stop(&mut self, error: Error) -> Error {
        self.done = true;
        let copy = match &error {
            Error::Truncated { offset } => Error::Truncated { offset: *offset },
            Error::Decode { offset, message } => Error::Decode {
                offset: *offset,
                message: message.clone(),
            },
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            _ => Error::Closed,
        };
        self.damage.cut = Some(error);
        copy
    }

    /// Reads more bytes after the unconsumed ones, moving them to the
    /// front. The buffer starts at 8 KiB and doubles up to 256 KiB (or the
    /// record size limit, if smaller); it grows further, up to the limit,
    /// only when one record is longer than that.
    pub(super) fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let normal = CHUNK.min(self.max_len.saturating_add(1)).max(START);
        if self.end == self.buf.len() || self.buf.len() < normal {
            let cap = if self.end >= normal {
                self.max_len.saturating_add(1)
            } else {
                normal
            };
            let grown = (self.buf.len() * 2).max(START).min(cap.max(self.end + 1));
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A hint when the bytes look like a compressed file.
pub(super) fn magic_hint(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        " (these are the magic bytes of gzip: a compressed file? `dynostats report` reads it)"
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        " (these are the magic bytes of zstd: a compressed file? `dynostats report` reads it)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::super::read;
    use super::super::tests::two_records;
    use crate::error::Error;

    #[test]
    fn every_truncation_point_reports_the_record_start() {
        let (bytes, first) = two_records();
        for cut in 1..bytes.len() {
            let results: Vec<_> = read(&bytes[..cut]).collect();
            let expected_ok = if cut >= first { 1 } else { 0 };
            if cut == first {
                assert_eq!(results.len(), 1, "cut {cut}");
                assert!(results[0].is_ok());
                continue;
            }
            assert_eq!(results.len(), expected_ok + 1, "cut {cut}");
            match &results[expected_ok] {
                Err(Error::Truncated { offset }) => {
                    assert_eq!(*offset, if cut > first { first as u64 } else { 0 })
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_length_is_an_error_without_allocation() {
        let (mut bytes, first) = two_records();
        bytes.truncate(first);
        // A map whose first key claims to be a 4 GiB string.
        bytes.extend_from_slice(&[0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, b'x']);
        let mut it = read(&bytes[..]);
        assert!(it.next().unwrap().is_ok());
        match it.next() {
            Some(Err(Error::Decode { offset, message })) => {
                assert_eq!(offset, first as u64);
                assert!(message.contains("limit"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(it.next().is_none());
        // A map claiming 2^32-1 entries fails early too.
        let hostile = [0xdf, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(
            read(&hostile[..]).next(),
            Some(Err(Error::Decode { offset: 0, .. }))
        ));
    }

    #[test]
    fn garbage_between_records_names_its_offset() {
        let (bytes, first) = two_records();
        let mut damaged = bytes[..first].to_vec();
        damaged.extend_from_slice(&[0xc1, 0x00, 0x00]);
        damaged.extend_from_slice(&bytes[first..]);
        let results: Vec<_> = read(&damaged[..]).collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].as_ref().unwrap().name, "a");
        match &results[1] {
            Err(Error::Decode { offset, .. }) => assert_eq!(*offset, first as u64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_damaged_byte_leaves_earlier_records_intact() {
        let (bytes, first) = two_records();
        for pos in first..bytes.len() {
            for value in [0x00, 0x7f, 0x80, 0xc1, 0xd9, 0xdb, 0xdf, 0xff] {
                let mut damaged = bytes.clone();
                damaged[pos] = value;
                let results: Vec<_> = read(&damaged[..]).collect();
                assert_eq!(
                    results[0].as_ref().unwrap().name,
                    "a",
                    "byte {pos} = {value:#x}"
                );
                for result in &results[1..] {
                    match result {
                        Ok(_) => {}
                        Err(Error::Truncated { offset } | Error::Decode { offset, .. }) => {
                            assert!(*offset >= first as u64 && *offset < damaged.len() as u64)
                        }
                        Err(other) => panic!("byte {pos} = {value:#x}: {other}"),
                    }
                }
            }
        }
    }

    #[test]
    fn limit_is_configurable() {
        let (bytes, _) = two_records();
        let mut it = read(&bytes[..]).max_record_len(8);
        assert!(matches!(
            it.next(),
            Some(Err(Error::Decode { offset: 0, .. }))
        ));
    }

    /// A reader that hands out one byte per call: every record crosses a
    /// buffer boundary.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn records_split_across_reads_decode_whole() {
        let (bytes, _) = two_records();
        let names: Vec<String> = read(Trickle(&bytes))
            .map(|r| r.unwrap().name.into())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
