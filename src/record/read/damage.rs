//! What a reader met besides good records: skipped maps counted per
//! reason, records of a newer schema version, and the framing damage or
//! I/O error that ended the stream.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Error;
use crate::record::Record;

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
    /// Arrays and maps nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH) levels.
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

/// What a [`RecordReader`](super::RecordReader) met besides good records: skipped records per
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

    /// Counts one skipped record, keeping the first.
    pub(super) fn skip(&mut self, skip: Skip) {
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
