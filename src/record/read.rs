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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use super::{Detail, Labels, Name, ProfileNode, Record, RecordKind};
use crate::counters::ReadPath;
use crate::error::Error;

impl<R> RecordReader<R> {
    /// Largest record the reader accepts by default, in bytes (4 MiB).
    /// Records written by this crate are a few hundred bytes.
    pub const DEFAULT_MAX_RECORD_LEN: usize = 4 << 20;
}

/// Deepest nesting of MessagePack arrays and maps a record may have (the
/// record map itself is level 1). Records written by this crate nest 4
/// levels; deeper ones are skipped ([`SkipReason::TooDeep`]).
pub const MAX_DEPTH: usize = 32;

/// Bytes read from the source at a time, at most (unless one record
/// needs more).
const CHUNK: usize = 256 << 10;
/// The first read: small inputs get a small buffer, and a hostile prefix
/// is refused after reading little.
const START: usize = 8 << 10;

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

/// Why a well-framed MessagePack map was skipped instead of read as a
/// record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// `kind` is not one this reader knows (a newer writer added one?).
    UnknownKind,
    /// A field this reader knows has a value of the wrong MessagePack
    /// type (e.g. a float or a string where an unsigned integer belongs).
    BadType {
        /// The field's key.
        field: &'static str,
    },
    /// A field has the right type but a value out of its range (e.g.
    /// `status` above 65535, `v` of 0, an unknown `source`).
    BadValue {
        /// The field's key.
        field: &'static str,
    },
    /// A field every record has is missing.
    MissingField {
        /// The field's key.
        field: &'static str,
    },
    /// A field appears twice.
    DuplicateField {
        /// The field's key.
        field: &'static str,
    },
    /// The map has integer keys (a positional, "compact" encoding): records
    /// are maps keyed by field name.
    IntegerKeys,
    /// The map has a key that is neither a string nor an integer.
    KeyNotString,
    /// Arrays and maps nested deeper than [`MAX_DEPTH`] levels.
    TooDeep,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::UnknownKind => f.write_str("unknown kind"),
            SkipReason::BadType { field } => write!(f, "bad type of field `{field}`"),
            SkipReason::BadValue { field } => write!(f, "bad value of field `{field}`"),
            SkipReason::MissingField { field } => write!(f, "missing field `{field}`"),
            SkipReason::DuplicateField { field } => write!(f, "duplicate field `{field}`"),
            SkipReason::IntegerKeys => f.write_str("integer keys"),
            SkipReason::KeyNotString => f.write_str("a key that is not a string"),
            SkipReason::TooDeep => write!(f, "nested beyond the depth limit"),
        }
    }
}

/// One skipped record: where it starts, why, and a sentence naming the
/// field concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skip {
    /// Byte offset of the record's first byte in the stream.
    pub offset: u64,
    /// Why it was skipped.
    pub reason: SkipReason,
    /// What was wrong, e.g. ``field `instructions`: expected an unsigned
    /// integer, found a float``.
    pub message: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record at byte offset {} skipped: {}",
            self.offset, self.message
        )
    }
}

impl From<Skip> for Error {
    fn from(skip: Skip) -> Error {
        Error::Decode {
            offset: skip.offset,
            message: format!("not a dynostats record: {}", skip.message),
        }
    }
}

/// What a [`RecordReader`] met besides good records: skipped records per
/// reason, records of a newer schema version, and the framing damage that
/// ended the stream, if any.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Damage {
    /// Records read (newer versions included, skipped ones not).
    pub records: u64,
    /// Skipped records per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// The first skipped record, to report with its offset.
    pub first_skip: Option<Skip>,
    /// Records with a `v` above [`Record::SCHEMA_VERSION`], read for the
    /// fields this reader knows.
    pub newer_versions: u64,
    /// The byte offset and `v` of the first of them.
    pub first_newer: Option<(u64, u64)>,
    /// What ended the stream early: framing damage ([`Error::Truncated`],
    /// [`Error::Decode`]) or an I/O error ([`Error::Io`]). `None` when the
    /// stream ended cleanly between records.
    pub cut: Option<Error>,
}

impl Damage {
    /// Skipped records, all reasons together.
    pub fn skipped_total(&self) -> u64 {
        self.skipped
            .values()
            .fold(0u64, |sum, &n| sum.saturating_add(n))
    }

    /// True when nothing was skipped and the stream was read to its end
    /// (newer versions do not count: they were read).
    pub fn is_clean(&self) -> bool {
        self.skipped.is_empty() && self.cut.is_none()
    }

    /// True when reading stopped on framing damage (not on an I/O error).
    pub fn framing(&self) -> bool {
        matches!(
            self.cut,
            Some(Error::Truncated { .. } | Error::Decode { .. })
        )
    }

    /// Adds the counts of `other` (another file's damage); its `cut` is
    /// dropped, as it belongs to that file.
    pub fn absorb_counts(&mut self, other: &Damage) {
        self.records = self.records.saturating_add(other.records);
        for (reason, n) in &other.skipped {
            let count = self.skipped.entry(*reason).or_default();
            *count = count.saturating_add(*n);
        }
        if self.first_skip.is_none() {
            self.first_skip.clone_from(&other.first_skip);
        }
        self.newer_versions = self.newer_versions.saturating_add(other.newer_versions);
        if self.first_newer.is_none() {
            self.first_newer = other.first_newer;
        }
    }

    fn skip(&mut self, skip: Skip) {
        let count = self.skipped.entry(skip.reason).or_default();
        *count = count.saturating_add(1);
        if self.first_skip.is_none() {
            self.first_skip = Some(skip);
        }
    }
}

/// One line per kind of damage, e.g. `2 records skipped (1 unknown kind,
/// 1 bad type of field `ts`); the first at byte offset 120: ...`.
impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(first) = &self.first_skip {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            parts.push(format!(
                "{} records skipped ({}); the first at byte offset {}: {}",
                self.skipped_total(),
                reasons.join(", "),
                first.offset,
                first.message
            ));
        }
        if let Some((offset, v)) = self.first_newer {
            parts.push(format!(
                "{} records of a newer schema version (the first at byte offset {offset} has \
                 v = {v}; this reader knows v = {}) read for the fields it knows",
                self.newer_versions,
                Record::SCHEMA_VERSION
            ));
        }
        if let Some(cut) = &self.cut {
            parts.push(format!("reading stopped: {cut}"));
        }
        if parts.is_empty() {
            f.write_str("no damage")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
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
    /// look at labels, this saves their allocations.
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

    /// Ends the stream on `error`, keeping it in the damage; returns a
    /// copy of it for the caller.
    fn stop(&mut self, error: Error) -> Error {
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
    fn fill(&mut self) -> io::Result<()> {
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

/// Decodes one record from `bytes` (trailing bytes are ignored).
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
    let mut record = Record::empty();
    let mut cursor = Cursor {
        bytes,
        pos: 0,
        max_len: usize::MAX,
    };
    let mut problem = None;
    match decode_record(&mut cursor, &mut record, &mut problem, false) {
        Ok(()) => match problem {
            None => Ok(record),
            Some((_, message)) => Err(message),
        },
        Err(Stop::Incomplete) => Err("the bytes end inside the record".to_string()),
        Err(Stop::Framing(message)) => Err(message),
    }
}

/// Why decoding stopped before the end of a record.
enum Stop {
    /// The bytes end inside the record: read more, or it is truncated.
    Incomplete,
    /// The record cannot be framed: the stream is damaged from here on.
    Framing(String),
}

/// The head of one MessagePack value. Strings, binaries and extensions
/// carry their payload; arrays and maps only their length (their elements
/// follow).
#[derive(Clone, Copy)]
enum Head<'a> {
    Nil,
    Bool(bool),
    Uint(u64),
    /// A negative integer.
    Neg(i64),
    Float,
    Str(&'a [u8]),
    Bin,
    Ext,
    Array(u64),
    Map(u64),
}

impl Head<'_> {
    fn describe(self) -> &'static str {
        match self {
            Head::Nil => "nil",
            Head::Bool(_) => "a boolean",
            Head::Uint(_) => "an unsigned integer",
            Head::Neg(_) => "a negative integer",
            Head::Float => "a float",
            Head::Str(_) => "a string",
            Head::Bin => "binary data",
            Head::Ext => "an extension value",
            Head::Array(_) => "an array",
            Head::Map(_) => "a map",
        }
    }

    /// The objects that follow this head as its elements.
    fn children(self) -> u64 {
        match self {
            Head::Array(n) => n,
            Head::Map(n) => 2 * n,
            _ => 0,
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_len: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn take(&mut self, n: u64) -> Result<&'a [u8], Stop> {
        if n > (self.max_len - self.pos.min(self.max_len)) as u64 {
            return Err(self.too_long(n));
        }
        let n = n as usize;
        if self.bytes.len() - self.pos < n {
            return Err(Stop::Incomplete);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn too_long(&self, more: u64) -> Stop {
        Stop::Framing(format!(
            "the record would be longer than the limit of {} bytes \
             ({} bytes read, {} more announced): a corrupt length?",
            self.max_len, self.pos, more
        ))
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    #[inline(always)]
    fn be(&mut self, width: u64) -> Result<u64, Stop> {
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    }

    /// Checks that `objects` more objects (each at least one byte) can fit.
    #[inline]
    fn room_for(&self, objects: u64) -> Result<(), Stop> {
        if objects > (self.max_len - self.pos.min(self.max_len)) as u64 {
            return Err(self.too_long(objects));
        }
        Ok(())
    }

    /// Reads the head of the next value. Always inlined: returned through
    /// memory, its result costs a store-forwarding stall per value.
    #[inline(always)]
    fn head(&mut self) -> Result<Head<'a>, Stop> {
        let marker = self.byte()?;
        let head = match marker {
            0x00..=0x7f => Head::Uint(u64::from(marker)),
            0x80..=0x8f => Head::Map(u64::from(marker & 0x0f)),
            0x90..=0x9f => Head::Array(u64::from(marker & 0x0f)),
            0xa0..=0xbf => Head::Str(self.take(u64::from(marker & 0x1f))?),
            0xc0 => Head::Nil,
            0xc1 => {
                return Err(Stop::Framing(format!(
                    "the byte 0xc1 (never used by MessagePack) at offset {} in the record",
                    self.pos - 1
                )));
            }
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4..=0xc6 => {
                let len = self.be(1 << (marker - 0xc4))?;
                self.take(len)?;
                Head::Bin
            }
            0xc7..=0xc9 => {
                let len = self.be(1 << (marker - 0xc7))?;
                self.take(len + 1)?;
                Head::Ext
            }
            0xca => {
                self.take(4)?;
                Head::Float
            }
            0xcb => {
                self.take(8)?;
                Head::Float
            }
            0xcc..=0xcf => Head::Uint(self.be(1 << (marker - 0xcc))?),
            0xd0..=0xd3 => {
                let width = 1u32 << (marker - 0xd0);
                let raw = self.be(u64::from(width))?;
                // Sign-extend from `width` bytes.
                let shift = 64 - 8 * width;
                let v = ((raw << shift) as i64) >> shift;
                if v >= 0 {
                    Head::Uint(v as u64)
                } else {
                    Head::Neg(v)
                }
            }
            0xd4..=0xd8 => {
                self.take(1 + (1 << (marker - 0xd4)))?;
                Head::Ext
            }
            0xd9..=0xdb => {
                let len = self.be(1 << (marker - 0xd9))?;
                Head::Str(self.take(len)?)
            }
            0xdc | 0xdd => Head::Array(self.be(2 << (marker - 0xdc))?),
            0xde | 0xdf => Head::Map(self.be(2 << (marker - 0xde))?),
            0xe0..=0xff => Head::Neg(i64::from(marker as i8)),
        };
        self.room_for(head.children())?;
        Ok(head)
    }

    /// Skips the elements of `head` (a container at nesting `level`; the
    /// record map is level 1). Returns `false` when they nest deeper than
    /// [`MAX_DEPTH`] (they are skipped all the same).
    fn skip_children(&mut self, head: Head<'a>, level: usize) -> Result<bool, Stop> {
        let children = head.children();
        if children == 0 {
            return Ok(true);
        }
        if level > MAX_DEPTH {
            self.skip_flat(children)?;
            return Ok(false);
        }
        // Objects still to skip at each open level, innermost last.
        let mut stack = [0u64; MAX_DEPTH + 1];
        let mut top = 0;
        stack[0] = children;
        let mut deep_enough = true;
        loop {
            while stack[top] == 0 {
                if top == 0 {
                    return Ok(deep_enough);
                }
                top -= 1;
            }
            stack[top] -= 1;
            let child = self.head()?;
            let n = child.children();
            if n > 0 {
                // The child is a container at level `level + top + 1`.
                if level + top + 1 > MAX_DEPTH {
                    deep_enough = false;
                    self.skip_flat(n)?;
                } else {
                    top += 1;
                    stack[top] = n;
                }
            }
        }
    }

    /// Skips `pending` objects without following their depth: framing only.
    fn skip_flat(&mut self, mut pending: u64) -> Result<(), Stop> {
        while pending > 0 {
            pending -= 1;
            let head = self.head()?;
            pending += head.children();
        }
        Ok(())
    }
}

/// The first thing wrong with a record, if any.
type Problem = Option<(SkipReason, String)>;

/// The fields of a record, as bits of a set (to find duplicates and
/// missing ones).
#[derive(Clone, Copy)]
#[repr(u8)]
enum Field {
    V,
    Kind,
    Ts,
    Name,
    Method,
    Status,
    Labels,
    Weight,
    WallNs,
    CpuNs,
    Instructions,
    Cycles,
    PageFaults,
    ContextSwitches,
    RssStart,
    RssEnd,
    PeakRss,
    Polls,
    Threads,
    Source,
    Scaled,
    Cancelled,
    Forced,
    Error,
    Pid,
    Id,
    Detail,
}

impl Field {
    /// The field of `key`: the key's bytes packed into one integer (every
    /// field name has at most 16 bytes) and compared at once, instead of
    /// one string comparison per field.
    #[inline]
    fn from_key(key: &[u8]) -> Option<Field> {
        if key.len() > 16 {
            return None;
        }
        Field::from_packed(pack(key))
    }

    /// Like [`Field::from_key`] for a key inside `bytes` at `start`: when
    /// 16 bytes follow the key's start, they are loaded at once and masked
    /// to the key (no byte-by-byte copy to reload).
    #[inline]
    ///
    /// The search starts at field `hint`: writers write the fields in this
    /// order, so the next key is usually the field after the last one.
    fn from_key_in(bytes: &[u8], start: usize, len: usize, hint: usize) -> Option<Field> {
        if len > 16 {
            return None;
        }
        match bytes.get(start..start + 16) {
            Some(window) => {
                let word = u128::from_le_bytes(window.try_into().expect("16 bytes"));
                let mask = if len == 16 {
                    u128::MAX
                } else {
                    (1u128 << (8 * len)) - 1
                };
                Field::from_packed_after((len, word & mask), hint)
            }
            None => Field::from_key(&bytes[start..start + len]),
        }
    }

    #[inline]
    fn from_packed_after(packed: (usize, u128), hint: usize) -> Option<Field> {
        let hint = hint.min(FIELDS.len());
        FIELDS[hint..]
            .iter()
            .position(|&f| f == packed)
            .map(|i| Field::ALL[hint + i])
            .or_else(|| Field::from_packed(packed))
    }

    #[inline]
    fn from_packed(packed: (usize, u128)) -> Option<Field> {
        FIELDS
            .iter()
            .position(|&f| f == packed)
            .map(|i| Field::ALL[i])
    }

    const ALL: [Field; 27] = [
        Field::V,
        Field::Kind,
        Field::Ts,
        Field::Name,
        Field::Method,
        Field::Status,
        Field::Labels,
        Field::Weight,
        Field::WallNs,
        Field::CpuNs,
        Field::Instructions,
        Field::Cycles,
        Field::PageFaults,
        Field::ContextSwitches,
        Field::RssStart,
        Field::RssEnd,
        Field::PeakRss,
        Field::Polls,
        Field::Threads,
        Field::Source,
        Field::Scaled,
        Field::Cancelled,
        Field::Forced,
        Field::Error,
        Field::Pid,
        Field::Id,
        Field::Detail,
    ];

    const KEYS: [&'static str; 27] = [
        "v",
        "kind",
        "ts",
        "name",
        "method",
        "status",
        "labels",
        "weight",
        "wall_ns",
        "cpu_ns",
        "instructions",
        "cycles",
        "page_faults",
        "context_switches",
        "rss_start",
        "rss_end",
        "peak_rss",
        "polls",
        "threads",
        "source",
        "scaled",
        "cancelled",
        "forced",
        "error",
        "pid",
        "id",
        "detail",
    ];

    fn key(self) -> &'static str {
        Field::KEYS[self as usize]
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// `key` (at most 16 bytes) as one integer, zero-padded, with its length
/// (a key with NUL bytes must not match a shorter name).
const fn pack(key: &[u8]) -> (usize, u128) {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < key.len() && i < 16 {
        bytes[i] = key[i];
        i += 1;
    }
    (key.len(), u128::from_le_bytes(bytes))
}

/// [`pack`] of every field's key, in [`Field::ALL`] order.
const FIELDS: [(usize, u128); 27] = {
    let mut packed = [(0, 0u128); 27];
    let mut i = 0;
    while i < 27 {
        packed[i] = pack(Field::KEYS[i].as_bytes());
        i += 1;
    }
    packed
};

/// Fields every record has.
const REQUIRED: [Field; 8] = [
    Field::V,
    Field::Kind,
    Field::Ts,
    Field::Name,
    Field::Weight,
    Field::WallNs,
    Field::Source,
    Field::Pid,
];

/// Notes the first problem of a record.
fn note(problem: &mut Problem, reason: SkipReason, message: impl FnOnce() -> String) {
    if problem.is_none() {
        *problem = Some((reason, message()));
    }
}

/// A value of the wrong type for `key`: noted, and its elements skipped.
fn wrong_type<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
    expected: &str,
    level: usize,
) -> Result<(), Stop> {
    note(problem, SkipReason::BadType { field: key }, || {
        format!(
            "field `{key}`: expected {expected}, found {}",
            head.describe()
        )
    });
    if !c.skip_children(head, level)? {
        note(problem, SkipReason::TooDeep, || {
            format!("field `{key}` nests deeper than the depth limit of {MAX_DEPTH} levels")
        });
    }
    Ok(())
}

fn uint<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
) -> Result<Option<u64>, Stop> {
    match head {
        Head::Uint(v) => Ok(Some(v)),
        _ => {
            wrong_type(c, problem, head, key, "an unsigned integer", 2)?;
            Ok(None)
        }
    }
}

/// A signed 64-bit integer (the amounts of profile records).
fn int<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
    level: usize,
) -> Result<Option<i64>, Stop> {
    match head {
        Head::Uint(v) if v <= i64::MAX as u64 => Ok(Some(v as i64)),
        Head::Neg(v) => Ok(Some(v)),
        _ => {
            wrong_type(c, problem, head, key, "a signed 64-bit integer", level)?;
            Ok(None)
        }
    }
}

/// The call tree of a profile record: an array of node maps.
fn decode_nodes<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    nodes: &mut Vec<ProfileNode>,
) -> Result<(), Stop> {
    const KEY: &str = "detail.nodes";
    let Head::Array(n) = head else {
        return wrong_type(c, problem, head, KEY, "an array", 3);
    };
    nodes.clear();
    for _ in 0..n {
        let node_head = c.head()?;
        let mut node = ProfileNode::default();
        string_map(c, problem, node_head, KEY, 4, |c, problem, k, v| {
            match k {
                "name" => {
                    if let Some(s) = string(c, problem, v, KEY)? {
                        node.name = s.to_string();
                    }
                }
                "parent" => {
                    node.parent = opt_uint(c, problem, v, KEY)?.and_then(|p| u32::try_from(p).ok())
                }
                "calls" => node.calls = uint(c, problem, v, KEY)?.unwrap_or(0),
                "inclusive" => node.inclusive = int(c, problem, v, KEY, 5)?.unwrap_or(0),
                "exclusive" => node.exclusive = int(c, problem, v, KEY, 5)?.unwrap_or(0),
                "recursive" => node.recursive = flag(c, problem, v, KEY)?,
                // A key of a node this reader does not know: ignored.
                _ => {
                    if !c.skip_children(v, 5)? {
                        note(problem, SkipReason::TooDeep, || {
                            format!(
                                "field `{KEY}` nests deeper than the depth limit of {MAX_DEPTH} levels"
                            )
                        });
                    }
                }
            }
            Ok(())
        })?;
        nodes.push(node);
    }
    Ok(())
}

/// An optional counter: nil is absent.
fn opt_uint<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
) -> Result<Option<u64>, Stop> {
    match head {
        Head::Nil => Ok(None),
        _ => uint(c, problem, head, key),
    }
}

fn string<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
) -> Result<Option<&'a str>, Stop> {
    match head {
        Head::Str(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                note(problem, SkipReason::BadType { field: key }, || {
                    format!("field `{key}`: a string that is not UTF-8 ({e})")
                });
                Ok(None)
            }
        },
        _ => {
            wrong_type(c, problem, head, key, "a string", 2)?;
            Ok(None)
        }
    }
}

/// HTTP methods the tower layer writes, kept without an allocation.
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "<other>",
];
/// Error words the library writes (docs/records.md).
const ERRORS: [&str; 3] = ["service_error", "body_error", "panic"];

/// Sets an optional string: one of `known` borrowed for ever, else owned,
/// reusing the allocation already there.
fn set_opt_string(slot: &mut Option<Cow<'static, str>>, value: &str, known: &[&'static str]) {
    if let Some(&k) = known.iter().find(|&&k| k == value) {
        *slot = Some(Cow::Borrowed(k));
        return;
    }
    match slot {
        Some(Cow::Owned(s)) => {
            s.clear();
            s.push_str(value);
        }
        _ => *slot = Some(Cow::Owned(value.to_string())),
    }
}

fn flag<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
) -> Result<bool, Stop> {
    match head {
        Head::Bool(b) => Ok(b),
        Head::Nil => Ok(false),
        _ => {
            wrong_type(c, problem, head, key, "a boolean", 2)?;
            Ok(false)
        }
    }
}

/// Reads a map of string keys at `level`, handing each key and value head
/// to `each`, which must consume the value's elements.
fn string_map<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
    level: usize,
    mut each: impl FnMut(&mut Cursor<'a>, &mut Problem, &'a str, Head<'a>) -> Result<(), Stop>,
) -> Result<(), Stop> {
    let n = match head {
        Head::Map(n) => n,
        Head::Nil => return Ok(()),
        _ => return wrong_type(c, problem, head, key, "a map", level),
    };
    if level > MAX_DEPTH {
        note(problem, SkipReason::TooDeep, || {
            format!("field `{key}` nests deeper than the depth limit of {MAX_DEPTH} levels")
        });
        return c.skip_flat(2 * n);
    }
    for _ in 0..n {
        let k = c.head()?;
        let name = match k {
            Head::Str(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        };
        let v = c.head()?;
        match name {
            Some(name) => each(c, problem, name, v)?,
            None => {
                note(problem, SkipReason::BadType { field: key }, || {
                    format!("field `{key}`: a key that is not a UTF-8 string")
                });
                c.skip_children(k, level + 1)?;
                c.skip_children(v, level + 1)?;
            }
        }
    }
    Ok(())
}

fn decode_detail<'a>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    detail: &mut Detail,
) -> Result<(), Stop> {
    string_map(c, problem, head, "detail", 2, |c, problem, name, v| {
        match name {
            "counters" | "sources" | "errors" => {
                let (key, target) = match name {
                    "counters" => ("detail.counters", &mut detail.counters),
                    "sources" => ("detail.sources", &mut detail.sources),
                    _ => ("detail.errors", &mut detail.errors),
                };
                let mut map = BTreeMap::new();
                string_map(c, problem, v, key, 3, |c, problem, k, v| {
                    if let Some(s) = string(c, problem, v, key)? {
                        map.insert(k.to_string(), s.to_string());
                    }
                    Ok(())
                })?;
                *target = map;
            }
            "stats" => {
                string_map(c, problem, v, "detail.stats", 3, |c, problem, k, v| {
                    if let Some(n) = uint(c, problem, v, "detail.stats")? {
                        detail.stats.insert(k.to_string(), n);
                    }
                    Ok(())
                })?;
            }
            "sinks" => {
                string_map(c, problem, v, "detail.sinks", 3, |c, problem, sink, v| {
                    let mut counts = BTreeMap::new();
                    string_map(c, problem, v, "detail.sinks", 4, |c, problem, k, v| {
                        if let Some(n) = uint(c, problem, v, "detail.sinks")? {
                            counts.insert(k.to_string(), n);
                        }
                        Ok(())
                    })?;
                    detail.sinks.insert(sink.to_string(), counts);
                    Ok(())
                })?;
            }
            "sink" => detail.sink = string(c, problem, v, "detail.sink")?.map(str::to_string),
            // Profile records (docs/records.md).
            "timer" | "timer_requested" | "timer_fallback" => {
                let key = match name {
                    "timer" => "detail.timer",
                    "timer_requested" => "detail.timer_requested",
                    _ => "detail.timer_fallback",
                };
                let value = string(c, problem, v, key)?.map(str::to_string);
                match name {
                    "timer" => detail.timer = value,
                    "timer_requested" => detail.timer_requested = value,
                    _ => detail.timer_fallback = value,
                }
            }
            "total" => detail.total = int(c, problem, v, "detail.total", 3)?,
            "overhead" => detail.overhead = int(c, problem, v, "detail.overhead", 3)?,
            "nodes" => decode_nodes(c, problem, v, &mut detail.nodes)?,
            // A field of `detail` this reader does not know: ignored.
            _ => {
                if !c.skip_children(v, 3)? {
                    note(problem, SkipReason::TooDeep, || {
                        format!(
                            "field `detail.{name}` nests deeper than the depth limit of {MAX_DEPTH} levels"
                        )
                    });
                }
            }
        }
        Ok(())
    })
}

/// Decodes one record at the cursor into `r`, framing it whatever its
/// content: on return the cursor is at the record's end, and `problem`
/// says why it is not a record, if it is not.
fn decode_record<'a>(
    c: &mut Cursor<'a>,
    r: &mut Record,
    problem: &mut Problem,
    skip_labels: bool,
) -> Result<(), Stop> {
    let marker = c.byte()?;
    let entries = match marker {
        0x80..=0x8f => u64::from(marker & 0x0f),
        0xde => c.be(2)?,
        0xdf => c.be(4)?,
        _ => {
            return Err(Stop::Framing(format!(
                "expected a MessagePack map, found the byte 0x{marker:02x}{}",
                magic_hint(c.bytes)
            )));
        }
    };
    c.room_for(2 * entries)?;
    r.clear();
    let mut seen = 0u32;
    let mut hint = 0;
    for _ in 0..entries {
        let key = c.head()?;
        let field = match key {
            Head::Str(name) => {
                // `name` lies in `c.bytes`, just before the cursor.
                let start = c.pos - name.len();
                Field::from_key_in(c.bytes, start, name.len(), hint)
            }
            Head::Uint(_) | Head::Neg(_) => {
                note(problem, SkipReason::IntegerKeys, || {
                    "a map with integer keys (a positional encoding?): records are maps \
                     keyed by field name"
                        .to_string()
                });
                let value = c.head()?;
                c.skip_children(value, 2)?;
                continue;
            }
            _ => {
                note(problem, SkipReason::KeyNotString, || {
                    format!("a key that is {}, not a string", key.describe())
                });
                c.skip_children(key, 2)?;
                let value = c.head()?;
                c.skip_children(value, 2)?;
                continue;
            }
        };
        let value = c.head()?;
        let Some(field) = field else {
            // A field this reader does not know: ignored.
            if !c.skip_children(value, 2)? {
                note(problem, SkipReason::TooDeep, || {
                    format!("the record nests deeper than the depth limit of {MAX_DEPTH} levels")
                });
            }
            continue;
        };
        if seen & field.bit() != 0 {
            let key = field.key();
            note(problem, SkipReason::DuplicateField { field: key }, || {
                format!("field `{key}` appears twice")
            });
            c.skip_children(value, 2)?;
            continue;
        }
        seen |= field.bit();
        hint = field as usize + 1;
        let key = field.key();
        match field {
            Field::V => {
                if let Some(v) = uint(c, problem, value, key)? {
                    match u8::try_from(v) {
                        Ok(0) => note(problem, SkipReason::BadValue { field: key }, || {
                            "field `v`: schema version 0 does not exist".to_string()
                        }),
                        Ok(v) => r.v = v,
                        Err(_) => note(problem, SkipReason::BadValue { field: key }, || {
                            format!("field `v`: {v} is not a schema version (0 to 255)")
                        }),
                    }
                }
            }
            Field::Kind => match value {
                // The common names, without a UTF-8 check.
                Head::Str(b"request") => r.kind = RecordKind::Request,
                Head::Str(b"region") => r.kind = RecordKind::Region,
                Head::Str(b"profile") => r.kind = RecordKind::Profile,
                Head::Str(b"status") => r.kind = RecordKind::Status,
                _ => {
                    if let Some(s) = string(c, problem, value, key)? {
                        note(problem, SkipReason::UnknownKind, || {
                            format!(
                                "field `kind`: unknown kind {:?} (this reader knows request, \
                                 region, profile and status)",
                                super::truncate(s, 64)
                            )
                        });
                    }
                }
            },
            Field::Ts => r.ts = uint(c, problem, value, key)?.unwrap_or(0),
            Field::Name => {
                if let Some(s) = string(c, problem, value, key)? {
                    r.name = Name::new(s);
                }
            }
            Field::Method => match value {
                Head::Nil => r.method = None,
                _ => {
                    if let Some(s) = string(c, problem, value, key)? {
                        set_opt_string(&mut r.method, s, &METHODS);
                    }
                }
            },
            Field::Status => {
                if let Some(v) = opt_uint(c, problem, value, key)? {
                    match u16::try_from(v) {
                        Ok(s) => r.status = Some(s),
                        Err(_) => note(problem, SkipReason::BadValue { field: key }, || {
                            format!("field `status`: {v} is not an HTTP status (above 65535)")
                        }),
                    }
                }
            }
            Field::Labels if skip_labels => {
                if !c.skip_children(value, 2)? {
                    note(problem, SkipReason::TooDeep, || {
                        format!(
                            "field `labels` nests deeper than the depth limit of {MAX_DEPTH} levels"
                        )
                    });
                }
            }
            Field::Labels => {
                let labels: &mut Labels = &mut r.labels;
                string_map(c, problem, value, key, 2, |c, problem, k, v| {
                    if let Some(s) = string(c, problem, v, "labels")? {
                        labels.insert(k, s);
                    }
                    Ok(())
                })?;
            }
            Field::Weight => r.weight = uint(c, problem, value, key)?.unwrap_or(0),
            Field::WallNs => r.wall_ns = uint(c, problem, value, key)?.unwrap_or(0),
            Field::CpuNs => r.cpu_ns = opt_uint(c, problem, value, key)?,
            Field::Instructions => r.instructions = opt_uint(c, problem, value, key)?,
            Field::Cycles => r.cycles = opt_uint(c, problem, value, key)?,
            Field::PageFaults => r.page_faults = opt_uint(c, problem, value, key)?,
            Field::ContextSwitches => r.context_switches = opt_uint(c, problem, value, key)?,
            Field::RssStart => r.rss_start = opt_uint(c, problem, value, key)?,
            Field::RssEnd => r.rss_end = opt_uint(c, problem, value, key)?,
            Field::PeakRss => r.peak_rss = opt_uint(c, problem, value, key)?,
            Field::Polls => r.polls = opt_uint(c, problem, value, key)?,
            Field::Threads => r.threads = opt_uint(c, problem, value, key)?,
            Field::Source => match value {
                Head::Str(b"rdpmc") => r.source = ReadPath::Rdpmc,
                Head::Str(b"read") => r.source = ReadPath::Read,
                Head::Str(b"software") => r.source = ReadPath::Software,
                _ => {
                    if let Some(s) = string(c, problem, value, key)? {
                        note(problem, SkipReason::BadValue { field: key }, || {
                            format!(
                                "field `source`: unknown read path {:?} (expected rdpmc, read \
                                 or software)",
                                super::truncate(s, 64)
                            )
                        });
                    }
                }
            },
            Field::Scaled => r.scaled = flag(c, problem, value, key)?,
            Field::Cancelled => r.cancelled = flag(c, problem, value, key)?,
            Field::Forced => r.forced = flag(c, problem, value, key)?,
            Field::Error => match value {
                Head::Nil => r.error = None,
                _ => {
                    if let Some(s) = string(c, problem, value, key)? {
                        set_opt_string(&mut r.error, s, &ERRORS);
                    }
                }
            },
            Field::Pid => {
                if let Some(v) = uint(c, problem, value, key)? {
                    match u32::try_from(v) {
                        Ok(pid) => r.pid = pid,
                        Err(_) => note(problem, SkipReason::BadValue { field: key }, || {
                            format!("field `pid`: {v} is not a process id (above 2^32-1)")
                        }),
                    }
                }
            }
            Field::Id => r.id = opt_uint(c, problem, value, key)?,
            Field::Detail => {
                if !matches!(value, Head::Nil) {
                    let detail = r.detail.get_or_insert_with(Box::default);
                    decode_detail(c, problem, value, detail)?;
                }
            }
        }
    }
    // `clear` left the optional strings for their allocations to be reused.
    if seen & Field::Method.bit() == 0 {
        r.method = None;
    }
    if seen & Field::Error.bit() == 0 {
        r.error = None;
    }
    if problem.is_none() {
        for field in REQUIRED {
            if seen & field.bit() == 0 {
                let key = field.key();
                // A map without integer keys and without `kind` at all:
                // say so first, it is the most telling.
                note(problem, SkipReason::MissingField { field: key }, || {
                    format!("field `{key}` is missing")
                });
                break;
            }
        }
    }
    Ok(())
}

/// A hint when the bytes look like a compressed file.
fn magic_hint(bytes: &[u8]) -> &'static str {
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
    fn every_key_finds_its_field() {
        for (i, key) in Field::KEYS.iter().enumerate() {
            assert_eq!(Field::from_key(key.as_bytes()).map(|f| f as usize), Some(i));
            assert_eq!(Field::ALL[i] as usize, i);
        }
        assert!(Field::from_key(b"v\0").is_none());
        assert!(Field::from_key(b"instruction").is_none());
        assert!(Field::from_key(b"context_switches_").is_none());
        // Inside a longer buffer: the bytes after the key do not count.
        let bytes = b"\xa4kindnameXXXXXXXXXXXXXXXXXX";
        for hint in [0, 2, 5, 26, 100] {
            let at = |start, len| Field::from_key_in(bytes, start, len, hint).map(|f| f as usize);
            assert_eq!(at(1, 4), Some(1), "hint {hint}");
            assert_eq!(at(5, 4), Some(3), "hint {hint}");
            assert!(at(5, 5).is_none(), "hint {hint}");
            assert_eq!(
                Field::from_key_in(b"context_switches", 0, 16, hint).map(|f| f as usize),
                Some(13)
            );
        }
    }

    #[test]
    fn reads_all_then_ends() {
        let (bytes, _) = two_records();
        let names: Vec<String> = read(&bytes[..]).map(|r| r.unwrap().name.into()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn decodes_what_serde_encodes() {
        let mut r = Record::new(RecordKind::Status, "dynostats");
        r.method = Some("GET".into());
        r.status = Some(503);
        r.instructions = Some(u64::MAX);
        r.cycles = Some(1 << 40);
        r.scaled = true;
        r.error = Some("panic".into());
        r.set_label("host", "h");
        let mut detail = Detail::default();
        detail.counters.insert("cycles".into(), "no PMU".into());
        detail.sources.insert("cpu_ns".into(), "clock".into());
        detail
            .stats
            .insert("records_dropped_queue_full".into(), u64::MAX);
        detail
            .sinks
            .entry("file:x".into())
            .or_default()
            .insert("errors".into(), 2);
        detail.errors.insert("udp".into(), "refused".into());
        r.detail = Some(Box::new(detail));
        let serde_bytes = rmp_serde::to_vec_named(&r).unwrap();
        assert_eq!(decode(&serde_bytes).unwrap(), r);
        assert_eq!(decode(&r.to_msgpack()).unwrap(), r);
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
        match &results[1] {
            Err(Error::Decode { offset, message }) => {
                assert_eq!(*offset, first as u64);
                assert!(message.contains("field `name`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
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
        assert!(err.to_string().contains("deeper"), "{err}");
        // Far deeper, on a thread with a small stack, and the record after
        // it is still read.
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let mut bytes = nested(100_000);
                bytes.extend(Record::new(RecordKind::Region, "after").to_msgpack());
                let mut reader = read(&bytes[..]);
                assert!(reader.next().unwrap().is_err());
                assert_eq!(reader.next().unwrap().unwrap().name, "after");
                assert_eq!(reader.damage().skipped[&SkipReason::TooDeep], 1);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
