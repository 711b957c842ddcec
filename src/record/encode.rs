//! The hot writer: a [`Record`] as one MessagePack map, written directly
//! (the same bytes as serde's named encoding, without its overhead).

use super::Record;

impl Record {
    /// Encodes the record as one MessagePack map (field names as keys).
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(192);
        self.write_msgpack(&mut buf);
        buf
    }

    /// Appends the record's MessagePack encoding to `buf`.
    ///
    /// The same bytes as serde's named encoding (`rmp_serde`), written
    /// directly: this runs once per record on the writer thread.
    pub fn write_msgpack(&self, buf: &mut Vec<u8>) {
        // No `..`: a field added to `Record` must be added here too.
        let Record {
            v,
            kind,
            ts,
            name,
            method,
            status,
            labels,
            weight,
            wall_ns,
            cpu_ns,
            instructions,
            cycles,
            page_faults,
            context_switches,
            rss_start,
            rss_end,
            peak_rss,
            polls,
            threads,
            source,
            scaled,
            cancelled,
            forced,
            error,
            pid,
            id,
            trace_id,
            span_id,
            detail,
        } = self;
        // The optional counters and the flags, each list written once:
        // counted for the map header, then written one line per field (not
        // a loop over a table: each key is a constant of its own length,
        // copied without a call).
        macro_rules! optional_counters {
            ($m:ident) => {
                $m!(
                    cpu_ns,
                    instructions,
                    cycles,
                    page_faults,
                    context_switches,
                    rss_start,
                    rss_end,
                    peak_rss,
                    polls,
                    threads
                )
            };
        }
        macro_rules! flags {
            ($m:ident) => {
                $m!(scaled, cancelled, forced)
            };
        }
        macro_rules! count_present {
            ($($field:ident),*) => { 0 $(+ usize::from($field.is_some()))* };
        }
        macro_rules! count_set {
            ($($field:ident),*) => { 0 $(+ usize::from(*$field))* };
        }
        let len = 8
            + usize::from(method.is_some())
            + usize::from(status.is_some())
            + usize::from(!labels.is_empty())
            + optional_counters!(count_present)
            + flags!(count_set)
            + usize::from(error.is_some())
            + usize::from(id.is_some())
            + usize::from(trace_id.is_some())
            + usize::from(span_id.is_some())
            + usize::from(detail.is_some());
        // Everything but `detail` goes into room made once, of a size no
        // record can exceed (`FIXED_MAX` plus its strings at their longest
        // header): one capacity check instead of two per value.
        let strings = |s: &str| s.len() + STR_HEADER_MAX;
        let room = FIXED_MAX
            + strings(name)
            + method.as_deref().map_or(0, strings)
            + error.as_deref().map_or(0, strings)
            + labels
                .iter()
                .map(|(k, v)| strings(k) + strings(v))
                .sum::<usize>();
        let start = buf.len();
        buf.resize(start + room, 0);
        let w = &mut msgpack::Writer {
            out: &mut buf[start..],
            overflow: false,
        };
        w.map_len(len);
        w.uint(key!("v"), u64::from(*v));
        w.str(key!("kind"), kind.as_str());
        w.uint(key!("ts"), *ts);
        w.str(key!("name"), name);
        if let Some(method) = method {
            w.str(key!("method"), method);
        }
        if let Some(status) = status {
            w.uint(key!("status"), u64::from(*status));
        }
        if !labels.is_empty() {
            w.key(key!("labels"));
            w.map_len(labels.len());
            for (key, value) in labels.iter() {
                w.string(key);
                w.string(value);
            }
        }
        w.uint(key!("weight"), *weight);
        w.uint(key!("wall_ns"), *wall_ns);
        macro_rules! write_present {
            ($($field:ident),*) => {$(
                if let Some(value) = $field {
                    w.uint(key!(stringify!($field)), *value);
                }
            )*};
        }
        optional_counters!(write_present);
        w.str(key!("source"), source.as_str());
        macro_rules! write_set {
            ($($field:ident),*) => {$(
                if *$field {
                    w.key(key!(stringify!($field)));
                    w.byte(0xc3);
                }
            )*};
        }
        flags!(write_set);
        if let Some(error) = error {
            w.str(key!("error"), error);
        }
        w.uint(key!("pid"), u64::from(*pid));
        if let Some(id) = id {
            w.uint(key!("id"), *id);
        }
        if let Some(trace_id) = trace_id {
            w.key(key!("trace_id"));
            w.ascii(trace_id.hex().as_bytes());
        }
        if let Some(span_id) = span_id {
            w.key(key!("span_id"));
            w.ascii(span_id.hex().as_bytes());
        }
        if detail.is_some() {
            w.key(key!("detail"));
        }
        let (left, overflow) = (w.out.len(), w.overflow);
        buf.truncate(start + room - left);
        if overflow {
            // Cannot happen (the room is an upper bound, tested); were it
            // to, serde's encoding gives the same bytes.
            buf.truncate(start);
            let _ = rmp_serde::encode::write_named(buf, self);
            return;
        }
        #[cfg(test)]
        ROOM_USED.with(|c| c.set(c.get() + 1));
        if let Some(detail) = detail {
            // Rare (status and profile records): serde's encoding.
            let _ = rmp_serde::encode::write_named(buf, detail);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Records this thread encoded on the direct path (a test's check that
    /// the room sufficed).
    static ROOM_USED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The longest header of a string or map: a marker and a 32-bit length.
const STR_HEADER_MAX: usize = 5;

/// Every key a record can have besides `detail`, with its value's
/// longest encoding when that is not one of the record's own strings: 9
/// bytes for a number, 1 for a flag, 31 for `kind` and `source` (short
/// names of their own), 34 and 17 for `trace_id` and `span_id` (32 and 16
/// hex digits with their headers), 0 for strings counted apart (`name`,
/// `method`, `error`) and for `labels` (its map header is counted apart
/// too).
const KEYS: [(&str, usize); 28] = [
    ("v", 9),
    ("kind", 32),
    ("ts", 9),
    ("name", 0),
    ("method", 0),
    ("status", 9),
    ("labels", 0),
    ("weight", 9),
    ("wall_ns", 9),
    ("cpu_ns", 9),
    ("instructions", 9),
    ("cycles", 9),
    ("page_faults", 9),
    ("context_switches", 9),
    ("rss_start", 9),
    ("rss_end", 9),
    ("peak_rss", 9),
    ("polls", 9),
    ("threads", 9),
    ("source", 32),
    ("scaled", 1),
    ("cancelled", 1),
    ("forced", 1),
    ("error", 0),
    ("pid", 9),
    ("id", 9),
    ("trace_id", 34),
    ("span_id", 17),
];

/// An upper bound of a record's encoding without its own strings and
/// `detail`: the record's and the labels' map headers, every key (a
/// fixstr) with its longest value, and the `detail` key.
const FIXED_MAX: usize = {
    let mut n = 2 * STR_HEADER_MAX + "detail".len() + 1;
    let mut i = 0;
    while i < KEYS.len() {
        n += KEYS[i].0.len() + 1 + KEYS[i].1;
        i += 1;
    }
    n
};

/// A key as its MessagePack fixstr bytes, built at compile time.
macro_rules! key {
    ($s:expr) => {{
        const KEY: [u8; $s.len() + 1] = msgpack::fixstr($s);
        &KEY
    }};
}
use key;

/// Direct MessagePack writing into room made beforehand (the same bytes
/// as `rmp`'s smallest encodings).
mod msgpack {
    /// `s` as a MessagePack fixstr (`s` shorter than 32 bytes; `N` its
    /// length plus one), for keys known at compile time.
    pub(super) const fn fixstr<const N: usize>(s: &str) -> [u8; N] {
        let bytes = s.as_bytes();
        assert!(bytes.len() < 32 && bytes.len() + 1 == N);
        let mut out = [0u8; N];
        out[0] = 0xa0 | bytes.len() as u8;
        let mut i = 0;
        while i < bytes.len() {
            out[i + 1] = bytes[i];
            i += 1;
        }
        out
    }

    /// Writes into the front of `out`, keeping the rest; a write that
    /// does not fit is not made and sets `overflow` (the room is sized so
    /// that it cannot happen; if it did, the caller encodes another way).
    pub(super) struct Writer<'a> {
        pub(super) out: &'a mut [u8],
        pub(super) overflow: bool,
    }

    impl Writer<'_> {
        #[inline(always)]
        fn raw<const N: usize>(&mut self, bytes: [u8; N]) {
            match std::mem::take(&mut self.out).split_first_chunk_mut::<N>() {
                Some((head, rest)) => {
                    *head = bytes;
                    self.out = rest;
                }
                None => self.overflow = true,
            }
        }
        #[inline(always)]
        fn bytes(&mut self, bytes: &[u8]) {
            match std::mem::take(&mut self.out).split_at_mut_checked(bytes.len()) {
                Some((head, rest)) => {
                    head.copy_from_slice(bytes);
                    self.out = rest;
                }
                None => self.overflow = true,
            }
        }
        #[inline(always)]
        pub(super) fn byte(&mut self, byte: u8) {
            self.raw([byte]);
        }
        #[inline(always)]
        pub(super) fn key<const N: usize>(&mut self, key: &[u8; N]) {
            self.raw(*key);
        }
        pub(super) fn map_len(&mut self, len: usize) {
            match len {
                0..16 => self.raw([0x80 | len as u8]),
                16..65_536 => {
                    let [a, b] = (len as u16).to_be_bytes();
                    self.raw([0xde, a, b]);
                }
                _ => {
                    let [a, b, c, d] = (len as u32).to_be_bytes();
                    self.raw([0xdf, a, b, c, d]);
                }
            }
        }
        #[inline(always)]
        pub(super) fn uint<const N: usize>(&mut self, key: &[u8; N], value: u64) {
            self.key(key);
            match value {
                0..128 => self.raw([value as u8]),
                128..256 => self.raw([0xcc, value as u8]),
                256..65_536 => {
                    let [a, b] = (value as u16).to_be_bytes();
                    self.raw([0xcd, a, b]);
                }
                65_536..=0xffff_ffff => {
                    let [a, b, c, d] = (value as u32).to_be_bytes();
                    self.raw([0xce, a, b, c, d]);
                }
                _ => {
                    let [a, b, c, d, e, f, g, h] = value.to_be_bytes();
                    self.raw([0xcf, a, b, c, d, e, f, g, h]);
                }
            }
        }
        #[inline(always)]
        pub(super) fn string(&mut self, s: &str) {
            let len = s.len();
            match len {
                0..32 => self.raw([0xa0 | len as u8]),
                32..256 => self.raw([0xd9, len as u8]),
                256..65_536 => {
                    let [a, b] = (len as u16).to_be_bytes();
                    self.raw([0xda, a, b]);
                }
                _ => {
                    let [a, b, c, d] = (len as u32).to_be_bytes();
                    self.raw([0xdb, a, b, c, d]);
                }
            }
            self.bytes(s.as_bytes());
        }
        /// A short ASCII string known at compile time to be shorter than
        /// 256 bytes (hex digits): its header and bytes, no UTF-8 check.
        #[inline(always)]
        pub(super) fn ascii<const N: usize>(&mut self, s: &[u8; N]) {
            const { assert!(N < 256) };
            if N < 32 {
                self.raw([0xa0 | N as u8]);
            } else {
                self.raw([0xd9, N as u8]);
            }
            self.raw(*s);
        }
        #[inline]
        pub(super) fn str<const N: usize>(&mut self, key: &[u8; N], value: &str) {
            self.key(key);
            self.string(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::ReadPath;
    use crate::record::{Detail, ProfileNode, RecordKind};

    /// The reference encoding: serde's, field names as keys.
    fn serde_encoding(r: &Record) -> Vec<u8> {
        let mut buf = Vec::new();
        rmp_serde::encode::write_named(&mut buf, r).unwrap();
        buf
    }

    #[test]
    fn direct_encoding_is_byte_for_byte_serde_s() {
        let bare = Record::new(RecordKind::Region, "bare");
        let mut full = Record::new(RecordKind::Request, "/users/{id}");
        full.method = Some("GET".into());
        full.status = Some(503);
        full.set_label("host", "web-1").set_label("é", "ü");
        full.weight = 1_000_000;
        full.wall_ns = u64::MAX;
        full.cpu_ns = Some(0);
        full.instructions = Some(127);
        full.cycles = Some(128);
        full.page_faults = Some(255);
        full.context_switches = Some(65_536);
        full.rss_start = Some(1 << 32);
        full.rss_end = Some(u64::from(u32::MAX));
        full.peak_rss = Some(300);
        full.polls = Some(1);
        full.threads = Some(2);
        full.source = ReadPath::Rdpmc;
        full.scaled = true;
        full.cancelled = true;
        full.forced = true;
        full.error = Some("boom".into());
        full.id = Some(u64::MAX - 1);
        full.set_trace_context(crate::record::TraceContext::from_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let mut status = Record::new(RecordKind::Status, "dynostats");
        let mut detail = Detail::default();
        detail.counters.insert("instructions".into(), "ok".into());
        detail.stats.insert("records_accepted".into(), 5);
        detail
            .sinks
            .insert("memory".into(), [("records_written".to_string(), 4)].into());
        detail.errors.insert("file:/x".into(), "disk full".into());
        status.detail = Some(Box::new(detail));
        let mut profile = Record::new(RecordKind::Profile, "/users/{id}");
        profile.id = Some(7);
        let mut detail = Detail {
            timer: Some("cpu_ns".into()),
            timer_requested: Some("instructions".into()),
            timer_fallback: Some("no hardware PMU (ENOENT)".into()),
            total: Some(1000),
            overhead: Some(-3),
            ..Detail::default()
        };
        detail.stats.insert("scopes".into(), 2);
        let root = ProfileNode {
            name: "/users/{id}".into(),
            calls: 1,
            inclusive: 1000,
            exclusive: 400,
            ..ProfileNode::default()
        };
        let mut child = root.clone();
        child.name = "db".into();
        child.parent = Some(0);
        child.recursive = true;
        child.exclusive = -1;
        detail.nodes = vec![root, child];
        profile.detail = Some(Box::new(detail));
        let mut kinds = Vec::new();
        for kind in [RecordKind::Profile, RecordKind::Status] {
            kinds.push(Record::new(kind, "k"));
        }
        for r in [bare, full, status, profile].iter().chain(&kinds) {
            assert_eq!(r.to_msgpack(), serde_encoding(r), "{r:?}");
            assert_eq!(&Record::from_msgpack(&r.to_msgpack()).unwrap(), r);
        }
    }

    /// The room made for a record is an upper bound: a record with every
    /// field at its longest encoding (a method and an error needing 32-bit
    /// lengths, labels and names at their caps, the
    /// largest numbers, every flag) still takes the direct path, which
    /// would otherwise fall back to serde's encoding.
    #[test]
    fn the_room_holds_the_longest_record() {
        let long = "x".repeat(70_000);
        let mut r = Record::new(RecordKind::Request, &long);
        r.method = Some(long.clone().into());
        r.error = Some(long.clone().into());
        for i in 0..20 {
            r.set_label(&format!("{i}{long}"), &long);
        }
        r.status = Some(u16::MAX);
        r.ts = u64::MAX;
        r.weight = u64::MAX;
        r.wall_ns = u64::MAX;
        for c in [
            &mut r.cpu_ns,
            &mut r.instructions,
            &mut r.cycles,
            &mut r.page_faults,
            &mut r.context_switches,
            &mut r.rss_start,
            &mut r.rss_end,
            &mut r.peak_rss,
            &mut r.polls,
            &mut r.threads,
        ] {
            *c = Some(u64::MAX);
        }
        r.source = ReadPath::Software;
        (r.scaled, r.cancelled, r.forced) = (true, true, true);
        r.pid = u32::MAX;
        r.id = Some(u64::MAX);
        r.set_trace_context(crate::record::TraceContext::from_bytes(
            [0xff; 16], [0xff; 8],
        ));
        // Every key the encoding writes is in the table the room is
        // sized from.
        let bytes = r.to_msgpack();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        for (k, _) in v.as_map().unwrap() {
            let k = k.as_str().unwrap();
            assert!(
                KEYS.iter().any(|(key, _)| *key == k),
                "{k} missing from KEYS"
            );
        }
        assert_eq!(v.as_map().unwrap().len(), KEYS.len());
        let mut direct = Vec::new();
        super::ROOM_USED.with(|c| c.set(0));
        r.write_msgpack(&mut direct);
        assert_eq!(
            super::ROOM_USED.with(|c| c.get()),
            1,
            "the direct path, not the fallback"
        );
        assert_eq!(direct, serde_encoding(&r));
    }

    #[test]
    fn absent_counters_are_absent_keys() {
        let mut r = Record::new(RecordKind::Region, "x");
        r.instructions = Some(42);
        let bytes = r.to_msgpack();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let keys: Vec<String> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        assert!(keys.contains(&"instructions".to_string()));
        assert!(!keys.contains(&"cycles".to_string()));
        assert!(!keys.contains(&"scaled".to_string()));
        assert_eq!(Record::from_msgpack(&bytes).unwrap(), r);
    }

    /// The ids are strings of lowercase hex digits, the header's form, so
    /// any MessagePack reader (and a person grepping JSON) sees them as
    /// tracing backends show them.
    #[test]
    fn trace_ids_are_hex_strings() {
        let mut r = Record::new(RecordKind::Request, "/x");
        r.set_trace_context(crate::record::TraceContext::from_traceparent(
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ));
        let bytes = r.to_msgpack();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let get = |key: &str| {
            v.as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v.as_str().unwrap().to_string())
        };
        assert_eq!(
            get("trace_id").as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(get("span_id").as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(Record::from_msgpack(&bytes).unwrap(), r);
        // Without a context: no key at all.
        r.set_trace_context(None);
        let bytes = r.to_msgpack();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        assert!(v.as_map().unwrap().iter().all(|(k, _)| {
            let k = k.as_str().unwrap();
            k != "trace_id" && k != "span_id"
        }));
    }
}
