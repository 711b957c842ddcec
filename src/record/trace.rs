//! Trace context on records: the W3C `traceparent` ids a sampled request
//! arrived with ([`TraceContext`], [`TraceId`], [`SpanId`]), and the
//! process-wide count of `traceparent` headers that were ignored.
//!
//! A request record and its profile record carry the ids as the fields
//! `trace_id` (32 lowercase hex digits) and `span_id` (16), the form the
//! header and every tracing backend use, so a record is found from a trace
//! and a trace from a record (`docs/records.md`).
//!
//! A header is read by the one rule of [`TraceContext::from_traceparent`]:
//! anything that is not a valid `traceparent` gives no ids, and nothing of
//! it is copied anywhere.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The name of the W3C Trace Context request header that carries the
/// trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";

/// The length of a version `00` `traceparent` value, and the shortest of
/// any version: `vv-` + 32 + `-` + 16 + `-ff`.
const TRACEPARENT_LEN: usize = 55;

/// The value of each ASCII lowercase hex digit; every other byte (upper
/// case, non-ASCII) is `0xff`, whose high bits mark it.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `N` bytes from the `2 N` lowercase hex digits of `hex`; `None` when
/// `hex` has another length or any other byte. One pass, no early exit:
/// its cost does not depend on where a bad byte is.
#[inline]
fn decode_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        bad |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// `bytes` as lowercase hex digits into `out` (`out.len() == 2 *
/// bytes.len()`).
fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
    }
}

/// An id as its lowercase hex digits, on the stack: what the record's
/// field holds, without an allocation.
#[derive(Clone, Copy)]
pub(crate) struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    /// The digits, as bytes (ASCII).
    pub(crate) fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    /// The digits.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written here.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Room on the stack for the digits of a [`TraceId`] or a [`SpanId`], for
/// code that reads ids and labels alike (`Record::label_or_field`).
#[derive(Clone, Copy, Default)]
pub(crate) struct IdText(HexId<32>);

impl Default for HexId<32> {
    fn default() -> Self {
        HexId([0; 32])
    }
}

impl IdText {
    /// Keeps `id`'s digits here and returns them.
    pub(crate) fn hold<const N: usize>(&mut self, id: HexId<N>) -> &str {
        self.0.0[..N].copy_from_slice(&id.0);
        std::str::from_utf8(&self.0.0[..N]).unwrap_or("")
    }
}

/// Why a string is not a [`TraceId`] or a [`SpanId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidId {
    what: &'static str,
    digits: usize,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} is {} lowercase hex digits, not all zero",
            self.what, self.digits
        )
    }
}

impl std::error::Error for InvalidId {}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $bytes:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $bytes]);

        impl $name {
            #[doc = concat!("The ", $what, " of these bytes (big-endian, as W3C and OpenTelemetry \
                             write them); `None` for all zeros, which is not an id.")]
            pub const fn from_bytes(bytes: [u8; $bytes]) -> Option<$name> {
                let mut i = 0;
                while i < $bytes {
                    if bytes[i] != 0 {
                        return Some($name(bytes));
                    }
                    i += 1;
                }
                None
            }

            /// The id's bytes (big-endian: the hex digits' order).
            pub const fn to_bytes(self) -> [u8; $bytes] {
                self.0
            }

            /// The id as its lowercase hex digits, on the stack.
            pub(crate) fn hex(&self) -> HexId<{ 2 * $bytes }> {
                let mut out = [0u8; 2 * $bytes];
                encode_hex(&self.0, &mut out);
                HexId(out)
            }
        }

        /// Lowercase hex digits, as in the record and the header.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.hex().as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        /// Exactly the lowercase hex digits of a non-zero id: the record's
        /// form, and the header's.
        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<$name, InvalidId> {
                decode_hex::<$bytes>(s.as_bytes())
                    .and_then($name::from_bytes)
                    .ok_or(InvalidId {
                        what: $what,
                        digits: 2 * $bytes,
                    })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.hex().as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A W3C trace id: 16 bytes, not all zero; written as 32 lowercase hex
    /// digits (the record's `trace_id`).
    TraceId,
    16,
    "trace id"
);

id_type!(
    /// A W3C span id: 8 bytes, not all zero; written as 16 lowercase hex
    /// digits (the record's `span_id`).
    SpanId,
    8,
    "span id"
);

/// The trace a sampled request belongs to: its trace id and a span id
/// (from a `traceparent` header, the caller's span: the parent of the
/// span that handles the request; from a hook, whichever span it names).
///
/// ```
/// use dynostats::record::{SpanId, TraceContext};
///
/// let header = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let context = TraceContext::from_traceparent(header).unwrap();
/// assert_eq!(context.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(context.span_id, "00f067aa0ba902b7".parse::<SpanId>().unwrap());
///
/// // Uppercase hex, an all-zero id, a wrong length: not a trace context.
/// assert!(TraceContext::from_traceparent(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// assert!(TraceContext::from_traceparent(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// assert!(TraceContext::from_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-").is_none());
/// assert!("0000000000000000".parse::<SpanId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace id (`trace_id` in records).
    pub trace_id: TraceId,
    /// The span id (`span_id` in records).
    pub span_id: SpanId,
}

impl TraceContext {
    /// The ids of these bytes, as OpenTelemetry's `TraceId::to_bytes` and
    /// `SpanId::to_bytes` give them; `None` when either is all zeros (an
    /// invalid context).
    pub const fn from_bytes(trace_id: [u8; 16], span_id: [u8; 8]) -> Option<TraceContext> {
        match (TraceId::from_bytes(trace_id), SpanId::from_bytes(span_id)) {
            (Some(trace_id), Some(span_id)) => Some(TraceContext { trace_id, span_id }),
            _ => None,
        }
    }

    /// The trace id and parent span id of a W3C `traceparent` header value
    /// (`version-traceid-parentid-flags`), or `None` when it is not a
    /// valid one by W3C Trace Context:
    ///
    /// - the version is two lowercase hex digits, not `ff`;
    /// - the trace id is 32 lowercase hex digits and the parent id 16, and
    ///   neither is all zeros; the flags are two lowercase hex digits; the
    ///   fields are separated by `-`;
    /// - version `00` is exactly 55 bytes; a higher version is at least
    ///   55, and what follows the flags, if anything, starts with `-`
    ///   (the rule for versions this reader does not know: their first
    ///   fields are read as version `00`'s, and the rest is not looked at).
    ///
    /// Bytes, not a string: a header value may hold any byte. Nothing of an
    /// invalid value is kept. The flags (e.g. the caller's sampled bit) are
    /// checked, not kept.
    pub fn from_traceparent(value: &[u8]) -> Option<TraceContext> {
        if value.len() < TRACEPARENT_LEN {
            return None;
        }
        let version = decode_hex::<1>(&value[..2])?[0];
        let flags_ok = decode_hex::<1>(&value[53..55]).is_some();
        let layout_ok = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
        let length_ok = match version {
            0xff => false,
            0 => value.len() == TRACEPARENT_LEN,
            _ => value.len() == TRACEPARENT_LEN || value[TRACEPARENT_LEN] == b'-',
        };
        if !(flags_ok && layout_ok && length_ok) {
            return None;
        }
        TraceContext::from_bytes(
            decode_hex::<16>(&value[3..35])?,
            decode_hex::<8>(&value[36..52])?,
        )
    }
}

/// `traceparent` headers ignored since the process started (relaxed:
/// a count, ordered with nothing).
static TRACEPARENT_IGNORED: AtomicU64 = AtomicU64::new(0);

/// Counts one sampled request whose `traceparent` was ignored (invalid, or
/// sent more than once).
#[cfg(feature = "tower")]
pub(crate) fn note_ignored_traceparent() {
    TRACEPARENT_IGNORED.fetch_add(1, Ordering::Relaxed);
}

/// Sampled requests whose `traceparent` header was ignored since the
/// process started: the status records' `traceparent_ignored`.
pub fn traceparent_ignored() -> u64 {
    TRACEPARENT_IGNORED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(s: &str) -> Option<TraceContext> {
        TraceContext::from_traceparent(s.as_bytes())
    }

    /// A naive reference: the spec's rules written out on `str`s.
    fn reference(s: &str) -> Option<(String, String)> {
        let lower_hex = |f: &str, n: usize| {
            f.len() == n && f.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() < 4 || !lower_hex(parts[0], 2) || parts[0] == "ff" {
            return None;
        }
        if parts[0] == "00" && parts.len() != 4 {
            return None;
        }
        let (trace, span, flags) = (parts[1], parts[2], parts[3]);
        if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0') {
            return None;
        }
        Some((trace.to_string(), span.to_string()))
    }

    fn both(s: &str) -> Option<(String, String)> {
        let fast = parse(s).map(|c| (c.trace_id.to_string(), c.span_id.to_string()));
        assert_eq!(fast, reference(s), "{s:?}");
        fast
    }

    #[test]
    fn a_valid_header_gives_its_ids() {
        let (trace, span) = both(VALID).unwrap();
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span, "00f067aa0ba902b7");
        let c = parse(VALID).unwrap();
        assert_eq!(
            c.trace_id.to_bytes(),
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            c.span_id.to_bytes(),
            [0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        // Any flags, sampled or not.
        assert!(both(&VALID.replace("-01", "-00")).is_some());
        assert!(both(&VALID.replace("-01", "-ff")).is_some());
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert!(both("").is_none());
        assert!(both(&VALID[..54]).is_none());
        assert!(both(&format!("{VALID}0")).is_none());
        assert!(
            both(&format!("{VALID}-")).is_none(),
            "version 00 is exactly 55"
        );
        assert!(both(&format!("{VALID}-extra")).is_none());
        // A field one digit short, another one long: same total.
        assert!(both("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01").is_none());
        assert!(both("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701").is_none());
        // Oversized: 64 KiB of digits.
        let huge = format!("00-{}-00f067aa0ba902b7-01", "a".repeat(65_536));
        assert!(both(&huge).is_none());
    }

    #[test]
    fn only_lowercase_hex_is_a_digit() {
        assert!(both(&VALID.to_uppercase()).is_none());
        assert!(both(&VALID.replace("4bf9", "4BF9")).is_none());
        assert!(both(&VALID.replace("00f0", "00F0")).is_none());
        assert!(both(&VALID.replace("-01", "-0A")).is_none(), "flags too");
        assert!(both(&VALID.replace("4bf9", "4bg9")).is_none());
        assert!(both(&VALID.replace("4bf9", "4b 9")).is_none());
        assert!(both(&VALID.replace("4bf9", "+bf9")).is_none());
        assert!(both(&VALID.replace('-', "_")).is_none());
        assert!(both(&format!("0A{}", &VALID[2..])).is_none(), "version too");
    }

    #[test]
    fn all_zero_ids_are_refused() {
        assert!(
            both(&VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32))).is_none()
        );
        assert!(both(&VALID.replace("00f067aa0ba902b7", &"0".repeat(16))).is_none());
        // One non-zero digit anywhere is an id.
        let last = format!("00-{}1-{}1-01", "0".repeat(31), "0".repeat(15));
        assert!(both(&last).is_some());
    }

    #[test]
    fn versions() {
        assert!(
            both(&format!("ff{}", &VALID[2..])).is_none(),
            "ff is invalid"
        );
        // A future version: its first fields as 00's, anything after a dash.
        for tail in [
            "",
            "-",
            "-what-comes-next",
            &format!("-{}", "x".repeat(10_000)),
        ] {
            let v = format!("cc{}{tail}", &VALID[2..]);
            assert!(both(&v).is_some(), "{v:?}");
        }
        // ... but not glued to the flags, and never shorter.
        assert!(both(&format!("01{}x", &VALID[2..])).is_none());
        assert!(both(&format!("01{}", &VALID[2..54])).is_none());
    }

    #[test]
    fn non_ascii_is_refused_without_panicking() {
        // A multi-byte character where a digit or a dash belongs: the parser
        // reads bytes, never slices a str inside a character.
        for at in [0, 2, 3, 20, 35, 40, 52, 53, 54] {
            let mut bytes = VALID.as_bytes().to_vec();
            bytes.splice(at..at + 1, "é".bytes());
            assert!(TraceContext::from_traceparent(&bytes).is_none(), "{at}");
            bytes.truncate(55);
            assert!(TraceContext::from_traceparent(&bytes).is_none(), "{at}");
        }
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[10] = 0xff;
        assert!(TraceContext::from_traceparent(&bytes).is_none());
    }

    /// Every single-byte change of a valid header agrees with the
    /// reference parser.
    #[test]
    fn every_one_byte_change_agrees_with_the_reference() {
        let alphabet = b"0123456789abcdefABCDEF-gz \x00\x7f";
        for at in 0..VALID.len() {
            for &b in alphabet {
                let mut bytes = VALID.as_bytes().to_vec();
                bytes[at] = b;
                both(std::str::from_utf8(&bytes).unwrap());
            }
        }
    }

    #[test]
    fn ids_parse_and_print_as_their_digits() {
        let t: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            format!("{t:?}"),
            "TraceId(4bf92f3577b34da6a3ce929d0e0e4736)"
        );
        assert!(
            "4BF92F3577B34DA6A3CE929D0E0E4736"
                .parse::<TraceId>()
                .is_err()
        );
        assert!(
            "4bf92f3577b34da6a3ce929d0e0e473"
                .parse::<TraceId>()
                .is_err()
        );
        let e = "x".parse::<SpanId>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "a span id is 16 lowercase hex digits, not all zero"
        );
        assert!(TraceId::from_bytes([0; 16]).is_none());
        assert!(TraceContext::from_bytes([1; 16], [0; 8]).is_none());
        let c = TraceContext::from_bytes([0xab; 16], [0x01; 8]).unwrap();
        assert_eq!(c.span_id.to_string(), "0101010101010101");
    }
}
