//! Reading records back from a file or stream: one streaming reader that
//! frames and decodes in one pass.
//!
//! A record stream is a plain concatenation of MessagePack maps. The
//! reader walks each map once, straight out of its buffer: it decodes the
//! fields it knows into a [`Record`] and skips the others (keeping track
//! of where the map ends) without a second walk over the bytes and without
//! serde. Every length is checked against the bytes present and the record
//! size limit before anything is allocated, so a hostile length prefix
//! cannot make it allocate more than [`RecordReader::DEFAULT_MAX_RECORD_LEN`]
//! bytes, and nesting is followed without recursion.
//!
//! How damage is handled is said on [`RecordReader`].
//!
//! The reading is cut along its seams, one file each:
//!
//! - `mod.rs`: the public face, [`read()`] and [`RecordReader`] (its
//!   buffer, and the loop from one record to the next), [`Step`] and the
//!   limits;
//! - `damage`: what a reader met besides good records ([`Damage`],
//!   [`Skip`], [`SkipReason`]);
//! - `frame`: framing: refilling the buffer when a record is incomplete,
//!   and ending the stream on a truncated tail, a length beyond the limit
//!   or bytes that are not a record boundary (`Stop`);
//! - `cursor`: the MessagePack cursor over the buffer: value heads, every
//!   length checked before it is used, nesting skipped without recursion;
//! - `field`: the key-to-field table (a key packed into one integer,
//!   searched from the field after the last one);
//! - `decode`: decoding one map into a reused [`Record`], noting the first
//!   problem that makes it not a record.

mod cursor;
mod damage;
mod decode;
mod field;
mod frame;

use std::fmt;
use std::io::Read;

use self::cursor::Cursor;
use self::decode::decode_record;
use self::frame::Stop;
use crate::error::Error;
use crate::record::Record;

pub use self::damage::{Damage, Skip, SkipReason};
pub(crate) use self::decode::decode;

impl<R> RecordReader<R> {
    /// Largest record the reader accepts by default, in bytes (4 MiB).
    /// Records written by this crate are a few hundred bytes.
    pub const DEFAULT_MAX_RECORD_LEN: usize = 4 << 20;
}

/// Deepest nesting of MessagePack arrays and maps a record may have (the
/// record map itself is level 1). Records written by this crate nest 4
/// levels; deeper ones are skipped ([`SkipReason::TooDeep`]).
pub const MAX_DEPTH: usize = 32;

/// Reads records from `reader` (a file, a socket, a byte slice).
///
/// The iterator yields every record in order, then ends. A record that is
/// skipped (see [`RecordReader`]) is yielded as an
/// [`Error::Decode`] naming its byte offset and reason, and the iteration
/// goes on. Framing damage is yielded as one error, after which the
/// iteration ends:
///
/// - [`Error::Truncated`] when the stream ends inside a record (a writer
///   crashed mid-write);
/// - [`Error::Decode`] when the bytes at a record boundary are not a
///   MessagePack map, or announce one longer than the limit.
///
/// For the counts of what was skipped, use [`RecordReader::next_into`] and
/// [`RecordReader::damage`], which also reuse one record's allocations.
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

/// What [`RecordReader::next_into`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A record was read into the caller's record.
    Record,
    /// A well-framed map was skipped (also counted in [`RecordReader::damage`]).
    Skipped(Skip),
    /// The stream ended: cleanly, or after framing damage or an I/O error
    /// already returned (see [`Damage::cut`]).
    End,
}

/// The streaming reader returned by [`read`]: frames and decodes each
/// record in one pass, out of its own buffer.
///
/// # Damage costs one record
///
/// - A well-framed map that is not a record this reader understands (an
///   unknown `kind`, a field of the wrong type, a missing field, integer
///   keys ...) is **skipped**: counted per [`SkipReason`] in the reader's
///   [`Damage`], and reading goes on with the next record.
/// - A record with a **newer** schema version (`v` above
///   [`Record::SCHEMA_VERSION`]) is read for the fields this reader knows
///   (unknown fields are ignored, as `docs/records.md` promises) and
///   counted in [`Damage::newer_versions`].
/// - Only **framing damage** ends the stream, after every record before
///   it: a truncated tail ([`Error::Truncated`]), a length beyond the limit
///   or bytes that are not MessagePack at a record boundary
///   ([`Error::Decode`]), since the next record boundary is then unknown.
pub struct RecordReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    /// End of the valid bytes in `buf`.
    end: usize,
    eof: bool,
    /// Stream offset of `buf[pos]`.
    offset: u64,
    max_len: usize,
    /// Skip `labels` instead of decoding them.
    skip_labels: bool,
    done: bool,
    damage: Damage,
}

impl<R> fmt::Debug for RecordReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordReader")
            .field("offset", &self.offset)
            .field("max_len", &self.max_len)
            .field("done", &self.done)
            .field("damage", &self.damage)
            .finish()
    }
}

impl<R: Read> RecordReader<R> {
    /// A reader of `reader` (buffered internally: pass a `File`, not a
    /// `BufReader`).
    pub fn new(reader: R) -> RecordReader<R> {
        RecordReader {
            inner: reader,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            eof: false,
            offset: 0,
            max_len: Self::DEFAULT_MAX_RECORD_LEN,
            skip_labels: false,
            done: false,
            damage: Damage::default(),
        }
    }

    /// Leaves every record's `labels` empty instead of decoding them (they
    /// are still framed and checked for depth): for a caller that does not
    /// look at labels, this saves their allocations. Status records keep
    /// theirs where `kind` comes before `labels` (as dynostats writes
    /// them): their `host` tells apart the drops of processes of one id on
    /// two hosts.
    #[must_use]
    pub fn skip_labels(mut self, skip: bool) -> Self {
        self.skip_labels = skip;
        self
    }

    /// Sets the largest record accepted, in bytes
    /// ([`RecordReader::DEFAULT_MAX_RECORD_LEN`]); a longer one is framing
    /// damage ([`Error::Decode`]).
    #[must_use]
    pub fn max_record_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// Bytes consumed so far: the offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What was skipped and why, so far.
    pub fn damage(&self) -> &Damage {
        &self.damage
    }

    /// The damage, taking the reader.
    pub fn into_damage(self) -> Damage {
        self.damage
    }

    /// Calls `f` with every record to the end (reusing one [`Record`]'s
    /// allocations) and returns the damage met: what was skipped, and the
    /// framing damage or I/O error that ended the reading early, if any.
    ///
    /// ```
    /// let mut sizes = Vec::new();
    /// let damage = dynostats::record::RecordReader::new(&b""[..])
    ///     .for_each_record(|r| sizes.push(r.ts));
    /// assert!(sizes.is_empty() && damage.is_clean());
    /// ```
    pub fn for_each_record(mut self, mut f: impl FnMut(&Record)) -> Damage {
        let mut record = Record::empty();
        loop {
            match self.next_into(&mut record) {
                Ok(Step::Record) => f(&record),
                Ok(Step::Skipped(_)) => {}
                // The error is kept in the damage (`Damage::cut`).
                Ok(Step::End) | Err(_) => break,
            }
        }
        self.damage
    }

    /// Reads the next record into `record`, reusing its allocations.
    ///
    /// Returns [`Step::Record`] when `record` now holds the next record,
    /// [`Step::Skipped`] for a map that is not a record (counted in
    /// [`RecordReader::damage`]; call again for the next one), and
    /// [`Step::End`] at the end. Framing damage and I/O errors are
    /// returned once as `Err` (and kept in [`Damage::cut`]); every call
    /// after that returns [`Step::End`]. On anything but `Step::Record`,
    /// `record` holds no meaningful value.
    pub fn next_into(&mut self, record: &mut Record) -> Result<Step, Error> {
        if self.done {
            return Ok(Step::End);
        }
        loop {
            let available = &self.buf[self.pos..self.end];
            if available.is_empty() && self.eof {
                self.done = true;
                return Ok(Step::End);
            }
            let mut cursor = Cursor {
                bytes: available,
                pos: 0,
                max_len: self.max_len,
            };
            let mut problem = None;
            match decode_record(&mut cursor, record, &mut problem, self.skip_labels) {
                Ok(()) => {
                    let start = self.offset;
                    self.pos += cursor.pos;
                    self.offset += cursor.pos as u64;
                    return Ok(match problem {
                        Some((reason, message)) => {
                            let skip = Skip {
                                offset: start,
                                reason,
                                message,
                            };
                            self.damage.skip(skip.clone());
                            Step::Skipped(skip)
                        }
                        None => {
                            self.damage.records += 1;
                            if u64::from(record.v) > u64::from(Record::SCHEMA_VERSION) {
                                self.damage.newer_versions += 1;
                                self.damage
                                    .first_newer
                                    .get_or_insert((start, u64::from(record.v)));
                            }
                            Step::Record
                        }
                    });
                }
                Err(Stop::Incomplete) if !self.eof => {
                    if let Err(e) = self.fill() {
                        return Err(self.stop(Error::Io {
                            context: format!("reading records near byte offset {}", self.offset),
                            source: e,
                        }));
                    }
                }
                Err(Stop::Incomplete) => {
                    // The incomplete record's bytes are consumed: the
                    // stream has no next record.
                    let offset = self.offset;
                    self.offset += (self.end - self.pos) as u64;
                    self.pos = self.end;
                    return Err(self.stop(Error::Truncated { offset }));
                }
                Err(Stop::Framing(message)) => {
                    let offset = self.offset;
                    return Err(self.stop(Error::Decode { offset, message }));
                }
            }
        }
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = Record::empty();
        match self.next_into(&mut record) {
            Ok(Step::Record) => Some(Ok(record)),
            Ok(Step::Skipped(skip)) => Some(Err(skip.into())),
            Ok(Step::End) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;

    /// Two records, `a` then `b` (with an instruction count and a label),
    /// and where the second starts.
    pub(super) fn two_records() -> (Vec<u8>, usize) {
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
    fn a_map_that_is_not_a_record_is_skipped_with_an_error() {
        let (bytes, first) = two_records();
        let mut mixed = bytes[..first].to_vec();
        // {"name": 5}: well-formed, but not a record.
        mixed.extend_from_slice(&[0x81, 0xa4, b'n', b'a', b'm', b'e', 0x05]);
        mixed.extend_from_slice(&bytes[first..]);
        let results: Vec<_> = read(&mixed[..]).collect();
        assert_eq!(results.len(), 3);
        match &results[1] {
            Err(Error::Decode { offset, message }) => {
                assert_eq!(*offset, first as u64);
                assert!(message.contains("field `name`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(results[2].as_ref().unwrap().instructions, Some(12));
    }
}
