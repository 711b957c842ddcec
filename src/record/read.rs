//! Reading records back from a file or stream.
//!
//! A record stream is a plain concatenation of MessagePack maps. The
//! reader first finds where one MessagePack object ends (walking its
//! markers and lengths, without trusting any length further than the
//! bytes actually present and the record size limit), then decodes that
//! object into a [`Record`]. So a hostile length prefix cannot make it
//! allocate more than [`RecordReader::DEFAULT_MAX_RECORD_LEN`] bytes, and every error
//! names the byte offset of the record concerned.

use std::fmt;
use std::io::{self, BufReader, Read};

use serde::Deserialize;

use super::Record;
use crate::error::Error;

impl<R> RecordReader<R> {
    /// Largest record the reader accepts by default, in bytes (4 MiB).
    /// Records written by this crate are a few hundred bytes.
    pub const DEFAULT_MAX_RECORD_LEN: usize = 4 << 20;
}

/// Reads records from `reader` (a file, a socket, a byte slice).
///
/// The iterator yields every record in order, then ends. On damage it
/// yields one error naming the byte offset of the damaged record:
///
/// - [`Error::Truncated`] when the stream ends inside a record (a writer
///   crashed mid-write); the iteration then ends.
/// - [`Error::Decode`] when the bytes are not a MessagePack map, or one
///   longer than the limit; the iteration then ends, since the next record
///   boundary is unknown.
/// - [`Error::Decode`] when a well-formed MessagePack map is not a record
///   (e.g. a field of the wrong type, or arrays nested more than 32 levels
///   deep); the iteration goes on with the next object.
///
/// ```
/// use dynostats::{Error, Record, RecordKind};
///
/// let mut bytes = Record::new(RecordKind::Region, "a").to_msgpack();
/// let second = Record::new(RecordKind::Region, "b").to_msgpack();
/// let cut = bytes.len() as u64;
/// bytes.extend_from_slice(&second[..second.len() - 3]); // crash mid-write
///
/// let mut records = dynostats::read(&bytes[..]);
/// assert_eq!(records.next().unwrap().unwrap().name, "a");
/// match records.next() {
///     Some(Err(Error::Truncated { offset })) => assert_eq!(offset, cut),
///     other => panic!("expected a truncation error, got {other:?}"),
/// }
/// assert!(records.next().is_none());
/// ```
pub fn read<R: Read>(reader: R) -> RecordReader<R> {
    RecordReader::new(reader)
}

/// The iterator returned by [`read`].
pub struct RecordReader<R> {
    inner: BufReader<R>,
    /// Bytes consumed so far.
    offset: u64,
    max_len: usize,
    /// The bytes of the object being read.
    buf: Vec<u8>,
    done: bool,
}

impl<R> fmt::Debug for RecordReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordReader")
            .field("offset", &self.offset)
            .field("max_len", &self.max_len)
            .field("done", &self.done)
            .finish()
    }
}

/// How one object ended.
enum Framed {
    /// A complete object is in `buf`.
    Object,
    /// The stream ended cleanly between objects.
    End,
}

impl<R: Read> RecordReader<R> {
    /// A reader of `reader` (buffered internally).
    pub fn new(reader: R) -> RecordReader<R> {
        RecordReader {
            inner: BufReader::new(reader),
            offset: 0,
            max_len: Self::DEFAULT_MAX_RECORD_LEN,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Sets the largest record accepted, in bytes
    /// ([`RecordReader::DEFAULT_MAX_RECORD_LEN`]); a longer one is an [`Error::Decode`].
    #[must_use]
    pub fn max_record_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// Bytes consumed so far: the offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads exactly `n` more bytes into `buf`, within the size limit.
    fn take(&mut self, start: u64, n: u64) -> Result<(), Error> {
        if self.buf.len() as u64 + n > self.max_len as u64 {
            return Err(self.too_long(start, n));
        }
        let got = (&mut self.inner)
            .take(n)
            .read_to_end(&mut self.buf)
            .map_err(|e| io_error(start, e))?;
        self.offset += got as u64;
        if (got as u64) < n {
            return Err(Error::Truncated { offset: start });
        }
        Ok(())
    }

    fn too_long(&self, start: u64, more: u64) -> Error {
        Error::Decode {
            offset: start,
            message: format!(
                "the record would be longer than the limit of {} bytes \
                 ({} bytes read, {} more announced): a corrupt length?",
                self.max_len,
                self.buf.len(),
                more
            ),
        }
    }

    /// A big-endian length of `width` bytes, read into `buf`.
    fn length(&mut self, start: u64, width: usize) -> Result<u64, Error> {
        self.take(start, width as u64)?;
        let bytes = &self.buf[self.buf.len() - width..];
        Ok(bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    }

    /// Reads one whole MessagePack object (a map at the top) into `buf`.
    fn frame(&mut self) -> Result<Framed, Error> {
        self.buf.clear();
        let start = self.offset;
        // Objects still to read: each takes at least one byte.
        let mut pending: u64 = 1;
        while pending > 0 {
            let mut marker = [0u8; 1];
            let got = loop {
                match self.inner.read(&mut marker) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_error(start, e)),
                }
            };
            if got == 0 {
                return if self.buf.is_empty() {
                    Ok(Framed::End)
                } else {
                    Err(Error::Truncated { offset: start })
                };
            }
            let marker = marker[0];
            self.offset += 1;
            if self.buf.is_empty() && !matches!(marker, 0x80..=0x8f | 0xde | 0xdf) {
                return Err(Error::Decode {
                    offset: start,
                    message: format!("expected a MessagePack map, found the byte 0x{marker:02x}"),
                });
            }
            self.buf.push(marker);
            pending -= 1;
            let more_objects = match marker {
                // fixint, nil, false, true, negative fixint
                0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => 0,
                0x80..=0x8f => 2 * u64::from(marker & 0x0f),
                0x90..=0x9f => u64::from(marker & 0x0f),
                0xa0..=0xbf => {
                    self.take(start, u64::from(marker & 0x1f))?;
                    0
                }
                0xc1 => {
                    return Err(Error::Decode {
                        offset: start,
                        message: format!(
                            "the byte 0xc1 (never used by MessagePack) at offset {}",
                            self.offset - 1
                        ),
                    });
                }
                // bin 8/16/32, str 8/16/32
                0xc4 | 0xd9 => self.payload(start, 1, 0)?,
                0xc5 | 0xda => self.payload(start, 2, 0)?,
                0xc6 | 0xdb => self.payload(start, 4, 0)?,
                // ext 8/16/32: length, then a type byte and the data
                0xc7 => self.payload(start, 1, 1)?,
                0xc8 => self.payload(start, 2, 1)?,
                0xc9 => self.payload(start, 4, 1)?,
                // float 32/64, uint 8..64, int 8..64, fixext 1..16
                0xca => self.fixed(start, 4)?,
                0xcb => self.fixed(start, 8)?,
                0xcc | 0xd0 => self.fixed(start, 1)?,
                0xcd | 0xd1 => self.fixed(start, 2)?,
                0xce | 0xd2 => self.fixed(start, 4)?,
                0xcf | 0xd3 => self.fixed(start, 8)?,
                0xd4 => self.fixed(start, 2)?,
                0xd5 => self.fixed(start, 3)?,
                0xd6 => self.fixed(start, 5)?,
                0xd7 => self.fixed(start, 9)?,
                0xd8 => self.fixed(start, 17)?,
                // array 16/32, map 16/32
                0xdc => self.length(start, 2)?,
                0xdd => self.length(start, 4)?,
                0xde => 2 * self.length(start, 2)?,
                0xdf => 2 * self.length(start, 4)?,
            };
            pending += more_objects;
            // Each pending object needs at least one more byte.
            if self.buf.len() as u64 + pending > self.max_len as u64 {
                return Err(self.too_long(start, pending));
            }
        }
        Ok(Framed::Object)
    }

    /// Skips a length-prefixed payload; returns 0 (no nested objects).
    fn payload(&mut self, start: u64, width: usize, extra: u64) -> Result<u64, Error> {
        let len = self.length(start, width)?;
        self.take(start, len + extra)?;
        Ok(0)
    }

    /// Skips a fixed-size payload; returns 0 (no nested objects).
    fn fixed(&mut self, start: u64, len: u64) -> Result<u64, Error> {
        self.take(start, len)?;
        Ok(0)
    }
}

/// Checks that `reader` holds a whole number of MessagePack maps, without
/// decoding them: returns their total length, or the error naming the
/// offset of the first incomplete ([`Error::Truncated`]) or damaged
/// ([`Error::Decode`]) object.
pub(crate) fn check_framing<R: Read>(reader: R) -> Result<u64, Error> {
    let mut records = RecordReader::new(reader);
    loop {
        match records.frame()? {
            Framed::End => return Ok(records.offset),
            Framed::Object => {}
        }
    }
}

fn io_error(offset: u64, source: io::Error) -> Error {
    Error::Io {
        context: format!("reading records near byte offset {offset}"),
        source,
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.offset;
        match self.frame() {
            Ok(Framed::End) => {
                self.done = true;
                None
            }
            Ok(Framed::Object) => Some(decode(&self.buf).map_err(|e| Error::Decode {
                offset: start,
                message: format!("not a dynostats record: {e}"),
            })),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Deepest nesting of MessagePack arrays and maps the record decoder
/// follows (the record map itself is level 1). Records written by this
/// crate nest 4 levels; the decoder recurses once per level, and
/// rmp-serde's own default (1023 levels) overflows a 2 MiB thread stack in
/// debug builds.
pub(crate) const MAX_DEPTH: usize = 32;

/// Decodes one record, following at most [`MAX_DEPTH`] levels of nesting.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    // rmp-serde refuses the level at which its budget reaches 0.
    de.set_max_depth(MAX_DEPTH + 1);
    Record::deserialize(&mut de)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;

    fn two_records() -> (Vec<u8>, usize) {
        let mut bytes = Record::new(RecordKind::Region, "a").to_msgpack();
        let first = bytes.len();
        let mut r = Record::new(RecordKind::Region, "b");
        r.instructions = Some(12);
        r.set_label("k", "v");
        bytes.extend(r.to_msgpack());
        (bytes, first)
    }

    #[test]
    fn reads_all_then_ends() {
        let (bytes, _) = two_records();
        let names: Vec<String> = read(&bytes[..]).map(|r| r.unwrap().name.into()).collect();
        assert_eq!(names, ["a", "b"]);
    }

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
    fn a_map_that_is_not_a_record_is_skipped_with_an_error() {
        let (bytes, first) = two_records();
        let mut mixed = bytes[..first].to_vec();
        // {"name": 5}: well-formed, but not a record.
        mixed.extend_from_slice(&[0x81, 0xa4, b'n', b'a', b'm', b'e', 0x05]);
        mixed.extend_from_slice(&bytes[first..]);
        let results: Vec<_> = read(&mixed[..]).collect();
        assert_eq!(results.len(), 3);
        assert!(
            matches!(&results[1], Err(Error::Decode { offset, .. }) if *offset == first as u64)
        );
        assert_eq!(results[2].as_ref().unwrap().instructions, Some(12));
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

    /// The record `{..fields of r, "z": [[[...nil...]]]}` with the record
    /// map and `arrays` arrays: `arrays + 1` levels in all.
    fn nested(arrays: usize) -> Vec<u8> {
        let mut bytes = Record::new(RecordKind::Region, "deep").to_msgpack();
        // Bump the fixmap's entry count by one for the extra key.
        assert!(matches!(bytes[0], 0x80..=0x8e), "{:#x}", bytes[0]);
        bytes[0] += 1;
        bytes.extend_from_slice(&[0xa1, b'z']);
        bytes.extend(std::iter::repeat_n(0x91, arrays));
        bytes.push(0xc0);
        bytes
    }

    #[test]
    fn nesting_is_bounded_without_exhausting_the_stack() {
        // 32 levels decode (the unknown field is ignored); 33 do not.
        assert_eq!(Record::from_msgpack(&nested(31)).unwrap().name, "deep");
        let err = Record::from_msgpack(&nested(32)).unwrap_err();
        assert!(err.to_string().contains("depth"), "{err}");
        // Far deeper than the old limit, on a thread with a small stack.
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| Record::from_msgpack(&nested(100_000)).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
    }
}
