//! Decoding one MessagePack map into a reused [`Record`]: the fields this
//! reader knows are decoded, the others skipped, and the first problem
//! that makes the map not a record is noted (the map is framed whatever
//! its content).

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::MAX_DEPTH;
use super::cursor::{Cursor, Head};
use super::damage::SkipReason;
use super::field::{Field, REQUIRED};
use super::frame::{Stop, magic_hint};
use crate::counters::ReadPath;
use crate::record::{Detail, InvalidId, Labels, Name, ProfileNode, Record, RecordKind, truncate};

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

/// The first thing wrong with a record, if any.
pub(super) type Problem = Option<(SkipReason, String)>;

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

/// A trace or span id: its lowercase hex digits, not all zero (nil is
/// absent). Any other string is a value out of range: a writer that put
/// something else there did not mean this field.
fn id<'a, T: std::str::FromStr<Err = InvalidId>>(
    c: &mut Cursor<'a>,
    problem: &mut Problem,
    head: Head<'a>,
    key: &'static str,
) -> Result<Option<T>, Stop> {
    if matches!(head, Head::Nil) {
        return Ok(None);
    }
    let Some(s) = string(c, problem, head, key)? else {
        return Ok(None);
    };
    match s.parse::<T>() {
        Ok(id) => Ok(Some(id)),
        Err(e) => {
            note(problem, SkipReason::BadValue { field: key }, || {
                format!("field `{key}`: {:?} is not an id ({e})", truncate(s, 64))
            });
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
pub(super) fn decode_record<'a>(
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
                                truncate(s, 64)
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
            // A status record's labels are kept (its `host` tells the
            // drops of two processes of one id apart) when its kind came
            // first, as dynostats writes it.
            Field::Labels if skip_labels && r.kind != RecordKind::Status => {
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
                                truncate(s, 64)
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
            Field::TraceId => r.trace_id = id(c, problem, value, key)?,
            Field::SpanId => r.span_id = id(c, problem, value, key)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_serde_encodes() {
        let mut r = Record::new(RecordKind::Status, "dynostats");
        r.method = Some("GET".into());
        r.status = Some(503);
        r.instructions = Some(u64::MAX);
        r.cycles = Some(1 << 40);
        r.scaled = true;
        r.error = Some("panic".into());
        r.set_trace_context(crate::record::TraceContext::from_bytes([7; 16], [9; 8]));
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
    fn ids_that_are_not_ids_skip_the_record() {
        let mut r = Record::new(RecordKind::Request, "/x");
        r.set_trace_context(crate::record::TraceContext::from_bytes([7; 16], [9; 8]));
        let good = r.to_msgpack();
        assert_eq!(decode(&good).unwrap(), r);
        let digits = b"07070707070707070707070707070707";
        // Same length, so the string's header stays right.
        for bad in [
            b"0707070707070707070707070707070A",
            b"070707070707070707070707070707 7",
            b"0707070707070707070707070707070g",
            b"00000000000000000000000000000000",
        ] {
            let mut bytes = good.clone();
            let at = bytes.windows(32).position(|w| w == digits).unwrap();
            bytes[at..at + 32].copy_from_slice(bad);
            let e = decode(&bytes).unwrap_err();
            assert!(
                e.contains("field `trace_id`") && e.contains("is not an id"),
                "{e}"
            );
        }
        // An integer where the digits belong: the wrong type.
        let rmpv::Value::Map(mut entries) = rmpv::decode::read_value(&mut &good[..]).unwrap()
        else {
            panic!("a record is a map");
        };
        for (k, v) in &mut entries {
            if k.as_str() == Some("span_id") {
                *v = rmpv::Value::from(42);
            }
        }
        let map = rmpv::Value::Map(entries);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &map).unwrap();
        let e = decode(&bytes).unwrap_err();
        assert!(e.contains("field `span_id`: expected a string"), "{e}");
    }
}
