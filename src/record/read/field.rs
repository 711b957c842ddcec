//! The key-to-field table: a record's field names, each packed into one
//! integer so a key is found with integer compares, searched from the
//! field after the last one (writers write them in this order).

/// The fields of a record, as bits of a set (to find duplicates and
/// missing ones).
#[derive(Clone, Copy)]
#[repr(u8)]
pub(super) enum Field {
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
    TraceId,
    SpanId,
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
    pub(super) fn from_key_in(
        bytes: &[u8],
        start: usize,
        len: usize,
        hint: usize,
    ) -> Option<Field> {
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

    const ALL: [Field; 29] = [
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
        Field::TraceId,
        Field::SpanId,
        Field::Detail,
    ];

    const KEYS: [&'static str; 29] = [
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
        "trace_id",
        "span_id",
        "detail",
    ];

    #[inline]
    pub(super) fn key(self) -> &'static str {
        Field::KEYS[self as usize]
    }

    #[inline]
    pub(super) fn bit(self) -> u32 {
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
const FIELDS: [(usize, u128); Field::KEYS.len()] = {
    let mut packed = [(0, 0u128); Field::KEYS.len()];
    let mut i = 0;
    while i < Field::KEYS.len() {
        packed[i] = pack(Field::KEYS[i].as_bytes());
        i += 1;
    }
    packed
};

/// Fields every record has.
pub(super) const REQUIRED: [Field; 8] = [
    Field::V,
    Field::Kind,
    Field::Ts,
    Field::Name,
    Field::Weight,
    Field::WallNs,
    Field::Source,
    Field::Pid,
];

#[cfg(test)]
mod tests {
    use super::*;

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
}
