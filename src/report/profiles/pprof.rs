//! pprof profiles of summed call trees ([`Pprof`], from
//! [`Profiles::pprof`]): the `profile.proto` message that `go tool pprof`,
//! Pyroscope, Parca, Grafana and Datadog read, what `dynostats pprof`
//! writes.
//!
//! # What the profile holds
//!
//! - Two sample types: the timer's amount, named after the records' timer
//!   (`instructions`/`count`, `cycles`/`count`, `cpu`/`nanoseconds` for
//!   `cpu_ns`, `wall`/`nanoseconds` for `wall_ns`, `rss`/`bytes`; never an
//!   instructions label on another timer), the default; and
//!   `calls`/`count`.
//! - One sample per distinct path (per path and tuple of label values
//!   with [`ProfilesBuilder::sample_label`](super::ProfilesBuilder::sample_label)):
//!   its stack is the path's scopes, the endpoint or region at the root;
//!   its values are the weighted exclusive amount and the weighted calls
//!   of its last scope. So pprof's flat is `dynostats top`'s exclusive
//!   amount and its cum the inclusive one: pprof counts a function once
//!   per sample however often it is on the stack, which is the recursion
//!   rule of `top` ([`is_recursive`](crate::profile::view)).
//! - The profiler's own amount (`detail.overhead`) as a sample of its own,
//!   the frame [`Pprof::OVERHEAD`] under the endpoint: the endpoint's cum is
//!   then its inclusive amount (`top`'s), and the profile's total is
//!   [`Calls::total`], the denominator of `top`'s shares.
//! - One `Function` and one `Location` per scope name (and per endpoint
//!   name), without address or line: scopes are names, not code (the
//!   profile's comments say so). The locations share one `Mapping` that
//!   only says its functions are known (`has_functions`), so that pprof
//!   does not look for a binary to symbolize them with. An endpoint and a
//!   scope of the same name are two functions that pprof shows as one (it
//!   groups by name).
//! - String labels on each sample: [`Pprof::ENDPOINT_LABEL`] (the root's
//!   name), and each sample label key with the records' value, so pprof's
//!   `-tagfocus endpoint=...` keeps one endpoint.
//! - `period_type` `events`/`count` and `period` N where every record was
//!   sampled 1 in N (the values are already weighted: estimates of every
//!   event, pprof's "unsampled form"); 0 when the rates varied, said in a
//!   comment. `time_nanos` and `duration_nanos` span the records' `ts`.
//!
//! Names are written as the records carry them (UTF-8, not escaped: the
//! file is data; pprof prints what it shows).
//!
//! Values are `int64` in pprof, which sums them (as absolute values for
//! its total) in 64 bits. The sums here are exact in `i128`/`u128`; where
//! a sample type's absolute values sum beyond `i64::MAX`, its values are
//! divided by the power of ten that [`Calls::folded_scale`] would choose
//! for that sum (rounded toward zero), and a comment and
//! [`Pprof::notes`] say so. A negative exclusive amount (clock noise, RSS
//! freed) is written as it is; pprof's shares then have a larger
//! denominator than `top`'s (the sum of absolute values).
//!
//! The bytes depend only on the records read, in their order: no clock,
//! no hash order (same input, same bytes).
//!
//! # The encoding
//!
//! The encoder is written by hand (a varint and length-delimited writer,
//! [`Message`]) rather than with `prost`: five small message types, all
//! fields varints, packed varints, strings or nested messages, do not
//! justify a derive macro and its proc-macro build for every user of the
//! library, and writing fields in a fixed order keeps the output
//! deterministic by construction. It is checked by its unit tests, by
//! `go tool pprof` (pprof's own decoder) and by an independent decoder in
//! `tests/cli/pprof.rs`.
//!
//! The field numbers are those of google/pprof's `proto/profile.proto`
//! (Copyright 2016 Google Inc., Apache License 2.0,
//! <https://github.com/google/pprof/blob/main/proto/profile.proto>), of
//! which no text is copied: `Profile` (1 `sample_type`, 2 `sample`, 3
//! `mapping`, 4 `location`, 5 `function`, 6 `string_table`, 9 `time_nanos`, 10
//! `duration_nanos`, 11 `period_type`, 12 `period`, 13 `comment`, 14
//! `default_sample_type`), `ValueType` (1 `type`, 2 `unit`), `Sample` (1
//! `location_id`, 2 `value`, 3 `label`), `Label` (1 `key`, 2 `str`),
//! `Mapping` (1 `id`, 7 `has_functions`), `Location` (1 `id`, 2
//! `mapping_id`, 4 `line`), `Line` (1 `function_id`), `Function` (1 `id`,
//! 2 `name`).
//!
//! # Uncompressed
//!
//! `profile.proto` asks for gzip on disk. gzip comes from `flate2`, which
//! only the `cli` feature carries (the library keeps its dependencies
//! few), so [`Pprof::write`] writes the bytes of the `Profile` message
//! itself, which `go tool pprof` also reads as they are, and `dynostats
//! pprof` gzips them. A program that has `flate2` wraps its writer in a
//! `GzEncoder`.

use std::collections::HashMap;
use std::io::{self, Write};

use super::calls::{Calls, NONE, SampleSums};
use super::folded::scale_below;
use super::{LabelSets, Profiles};
use crate::profile::Timer;
use crate::report::metric::Metric;

/// Wire type of a varint field.
const VARINT: u64 = 0;
/// Wire type of a length-delimited field (strings, messages, packed).
const LEN: u64 = 2;

/// A protobuf message being written: fields appended in the order they
/// are given. Scalars equal to 0 are left out (proto3's default); packed
/// repeated fields keep every element, zeros included.
#[derive(Debug, Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u64) {
        self.varint(u64::from(field) << 3 | wire);
    }

    /// A `uint64` field.
    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, VARINT);
            self.varint(v);
        }
    }

    /// An `int64` field: two's complement, so a negative value takes ten
    /// bytes.
    fn int(&mut self, field: u32, v: i64) {
        self.uint(field, v as u64);
    }

    /// A length-delimited field: a string, a message's bytes, a packed
    /// array.
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.tag(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A packed repeated varint field (`uint64` or `int64` as `u64`);
    /// nothing when `values` is empty. `scratch` is reused.
    fn packed(&mut self, field: u32, values: impl IntoIterator<Item = u64>, scratch: &mut Message) {
        scratch.0.clear();
        for v in values {
            scratch.varint(v);
        }
        if !scratch.0.is_empty() {
            self.bytes(field, &scratch.0);
        }
    }

    /// Moves the bytes written so far to `out`.
    fn flush_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.0)?;
        self.0.clear();
        Ok(())
    }
}

/// The string table: each string once, in the order first used; index 0
/// is `""`, as `profile.proto` requires.
#[derive(Debug)]
struct Strings<'a> {
    index: HashMap<&'a str, i64>,
    table: Vec<&'a str>,
}

impl<'a> Strings<'a> {
    fn new() -> Self {
        let mut s = Strings {
            index: HashMap::new(),
            table: Vec::new(),
        };
        s.get("");
        s
    }

    fn get(&mut self, s: &'a str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s);
        self.index.insert(s, i);
        i
    }
}

/// The pprof sample type of a timer: its name and unit, as pprof names
/// them (`cpu`/`nanoseconds`). A timer this reader does not know keeps
/// its own name, with the unit `count`.
fn sample_type(timer: &str) -> (&str, &'static str) {
    match timer.parse::<Timer>() {
        Ok(Timer::Instructions) => ("instructions", "count"),
        Ok(Timer::Cycles) => ("cycles", "count"),
        Ok(Timer::CpuTime) => ("cpu", "nanoseconds"),
        Ok(Timer::WallTime) => ("wall", "nanoseconds"),
        Ok(Timer::Rss) => ("rss", "bytes"),
        Err(_) => (timer, "count"),
    }
}

/// One sample to write: a path (and label set), its sums.
struct Row {
    path: u32,
    set: Option<u32>,
    sums: SampleSums,
}

/// A pprof profile of one timer's summed call trees
/// ([`Profiles::pprof`]); [`Pprof::write`] writes it, uncompressed (gzip
/// is a dependency of the `cli` feature only; `go tool pprof` reads both).
///
/// Two sample types: the timer's amount, named as pprof names it
/// ([`Pprof::sample_type`]), and `calls`/`count`. One sample per path of
/// scope names (and per tuple of the values of
/// [`ProfilesBuilder::sample_label`](super::ProfilesBuilder::sample_label)
/// keys), the endpoint at the root, with the weighted exclusive amount and
/// calls of its last scope: pprof's flat is `dynostats top`'s exclusive
/// amount, its cum the inclusive one (recursion counted once, as pprof
/// counts a function once per sample). The profiler's own amount is a
/// sample under the endpoint ([`Pprof::OVERHEAD`]), so that the totals
/// agree. Samples carry [`Pprof::ENDPOINT_LABEL`] and the sample labels;
/// locations are names without addresses. Values beyond 64 bits are
/// scaled ([`Pprof::scales`], [`Pprof::notes`]). The same records give
/// the same bytes. The repository's `docs/pprof.md` has the whole
/// mapping.
///
/// ```
/// use dynostats::record::{Detail, ProfileNode};
/// use dynostats::report::profiles::Profiles;
/// use dynostats::{Record, RecordKind};
///
/// let node = |name: &str, parent: Option<u32>, inclusive, exclusive| {
///     let mut n = ProfileNode::default();
///     n.name = name.into();
///     n.parent = parent;
///     n.calls = 1;
///     n.inclusive = inclusive;
///     n.exclusive = exclusive;
///     n
/// };
/// let mut record = Record::new(RecordKind::Profile, "/checkout");
/// record.weight = 10;
/// record.set_label("build", "v42");
/// let mut detail = Detail::default();
/// detail.timer = Some("instructions".into());
/// detail.nodes = vec![node("/checkout", None, 100, 10), node("price", Some(0), 90, 90)];
/// record.detail = Some(Box::new(detail));
///
/// let mut profiles = Profiles::builder().sample_label("build").build();
/// profiles.add(&record);
/// let pprof = profiles.pprof(None).unwrap();
/// assert_eq!(pprof.sample_type(), ("instructions", "count"));
/// assert_eq!(pprof.samples(), 2);
/// let mut bytes = Vec::new();
/// pprof.write(&mut bytes).unwrap();
/// // gzip them (e.g. flate2's GzEncoder) for a `.pb.gz`; `go tool pprof`
/// // reads them uncompressed too.
/// assert!(bytes.len() > 50);
/// ```
#[derive(Debug)]
#[must_use]
pub struct Pprof<'a> {
    calls: &'a Calls,
    labels: &'a LabelSets,
    comments: Vec<String>,
}

impl Profiles {
    /// The pprof profile of the timer that measures `metric` (`None`: the
    /// default of [`Profiles::calls`]), with the
    /// [timer note](Profiles::timer_note) among its comments; `None`
    /// without such records.
    pub fn pprof(&self, metric: Option<Metric>) -> Option<Pprof<'_>> {
        let calls = self.calls(metric)?;
        Some(Pprof {
            calls,
            labels: &self.labels,
            comments: self.timer_note(calls).into_iter().collect(),
        })
    }
}

impl<'a> Pprof<'a> {
    /// The sample label that names each sample's endpoint or region.
    pub const ENDPOINT_LABEL: &'static str = "endpoint";

    /// The frame, under each endpoint, of the profiler's own amount.
    pub const OVERHEAD: &'static str = "<overhead>";

    /// Adds a line to the profile's comments (e.g. which files were read).
    pub fn comment(mut self, line: &str) -> Self {
        self.comments.push(line.to_string());
        self
    }

    /// The summed call trees written.
    pub fn calls(&self) -> &'a Calls {
        self.calls
    }

    /// The first sample type, the default: the timer's amount as pprof
    /// names it, e.g. `("instructions", "count")`, `("cpu",
    /// "nanoseconds")`. The second is `("calls", "count")`.
    pub fn sample_type(&self) -> (&'a str, &'static str) {
        sample_type(self.calls.timer())
    }

    /// The samples, in the order written: per path (and tuple of label
    /// values), in the order first met.
    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = if self.labels.keys().is_empty() {
            self.calls
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| Row {
                    path: i as u32,
                    set: None,
                    sums: SampleSums {
                        exclusive: p.exclusive,
                        calls: p.calls,
                        overhead: p.overhead,
                    },
                })
                .collect()
        } else {
            let mut rows: Vec<Row> = self
                .calls
                .by_labels
                .iter()
                .map(|(&(path, set), sums)| Row {
                    path,
                    set: Some(set),
                    sums: sums.clone(),
                })
                .collect();
            // Out of a hash map: sorted, so the bytes do not depend on
            // its order.
            rows.sort_unstable_by_key(|r| (r.path, r.set));
            rows
        };
        rows.retain(|r| r.sums.exclusive != 0 || r.sums.calls != 0 || r.sums.overhead != 0);
        rows
    }

    /// Samples written: one per path (and tuple of label values) with a
    /// non-zero amount or calls, and one per endpoint (and tuple) with a
    /// non-zero overhead.
    pub fn samples(&self) -> usize {
        self.rows()
            .iter()
            .map(|r| {
                usize::from(r.sums.exclusive != 0 || r.sums.calls != 0)
                    + usize::from(r.sums.overhead != 0)
            })
            .sum()
    }

    /// What the amounts and the calls are divided by to fit pprof's
    /// 64-bit sums: 1 each, unless their absolute values sum beyond
    /// `i64::MAX` (then [`Pprof::notes`] says so).
    pub fn scales(&self) -> (u128, u128) {
        let (amounts, calls) = self.sums();
        let limit = i64::MAX as u128;
        (scale_below(amounts, limit), scale_below(calls, limit))
    }

    fn sums(&self) -> (u128, u128) {
        self.rows().iter().fold((0u128, 0u128), |(a, c), r| {
            (
                a.saturating_add(r.sums.exclusive.unsigned_abs())
                    .saturating_add(r.sums.overhead.unsigned_abs()),
                c.saturating_add(r.sums.calls),
            )
        })
    }

    /// What the reader of the profile must know besides its numbers, also
    /// written as comments: values scaled to fit 64 bits, sums that
    /// reached the bounds of 128-bit integers, sampling rates that varied.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let (amounts, calls) = self.sums();
        let (scale_a, scale_c) = self.scales();
        let (name, _) = self.sample_type();
        for (what, scale, sum) in [(name, scale_a, amounts), ("calls", scale_c, calls)] {
            if scale > 1 {
                notes.push(format!(
                    "{what} values divided by 10^{} (rounded toward zero) so that pprof can \
                     add them up in 64 bits: their absolute values sum to {sum}, beyond 2^63 - 1",
                    scale.ilog10()
                ));
            }
        }
        if self.calls.saturated() {
            notes.push(
                "sums reached the bounds of 128-bit integers and stopped there (saturated): \
                 the values are bounds, not exact"
                    .to_string(),
            );
        }
        if let Some((lo, hi)) = self.calls.weights.filter(|(lo, hi)| lo != hi) {
            notes.push(format!(
                "sampling rates varied from 1 in {lo} to 1 in {hi}: the period is 0; each \
                 value is weighted by its record's rate"
            ));
        }
        notes
    }

    /// Writes the profile: the bytes of the `Profile` message,
    /// uncompressed (gzip them for a `.pb.gz`; `go tool pprof` reads
    /// both).
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let calls = self.calls;
        let keys = self.labels.keys();
        // Made first: the string table borrows them.
        let mut comments = vec![
            format!(
                "dynostats: {} profile records standing for {} events (values weighted by \
                 sampling rate)",
                calls.records(),
                calls.events()
            ),
            format!(
                "frames are scope names under the endpoint or region, not code (no addresses); \
                 {} is the profiler's own amount",
                Self::OVERHEAD
            ),
        ];
        comments.extend(self.comments.iter().cloned());
        comments.extend(self.notes());
        let mut strings = Strings::new();
        let mut top = Message::default();
        let mut m = Message::default();
        let mut inner = Message::default();
        let mut scratch = Message::default();
        let (scale_a, scale_c) = self.scales();
        // Each value fits once scaled: its absolute value is at most the
        // sum, and the sum is at most i64::MAX or below 2^53 once scaled.
        let amount = |x: i128| (x / scale_a as i128) as i64;
        let count = |x: u128| (x / scale_c) as i64;

        // 1: sample_type, the timer's amount first (the default), calls.
        let (name, unit) = self.sample_type();
        for (t, u) in [(name, unit), ("calls", "count")] {
            m.0.clear();
            m.int(1, strings.get(t));
            m.int(2, strings.get(u));
            top.bytes(1, &m.0);
        }
        top.flush_to(out)?;

        // 2: sample. Location ids are name ids + 1; the overhead frame's
        // follows the last name's.
        let overhead_id = calls.entries.len() as u64 + 1;
        let endpoint_key = strings.get(Self::ENDPOINT_LABEL);
        let mut stack: Vec<u64> = Vec::new();
        let mut labels = Message::default();
        let mut overhead_used = false;
        for row in self.rows() {
            stack.clear();
            let mut at = row.path;
            while at != NONE {
                let p = &calls.paths[at as usize];
                stack.push(u64::from(p.name) + 1);
                at = p.parent;
            }
            let root = calls.entries[*stack.last().expect("a path has a root") as usize - 1]
                .name
                .as_ref();
            // The labels: the endpoint, then each key with a value.
            labels.0.clear();
            inner.0.clear();
            inner.int(1, endpoint_key);
            inner.int(2, strings.get(root));
            labels.bytes(3, &inner.0);
            if let Some(set) = row.set {
                for (k, v) in keys.iter().zip(self.labels.values(set)) {
                    if let Some(v) = v {
                        inner.0.clear();
                        inner.int(1, strings.get(k));
                        inner.int(2, strings.get(v));
                        labels.bytes(3, &inner.0);
                    }
                }
            }
            let s = &row.sums;
            if s.exclusive != 0 || s.calls != 0 {
                m.0.clear();
                m.packed(1, stack.iter().copied(), &mut scratch);
                m.packed(
                    2,
                    [amount(s.exclusive) as u64, count(s.calls) as u64],
                    &mut scratch,
                );
                m.0.extend_from_slice(&labels.0);
                top.bytes(2, &m.0);
            }
            if s.overhead != 0 {
                overhead_used = true;
                m.0.clear();
                // Only a root path has an overhead: the stack is the root.
                m.packed(
                    1,
                    std::iter::once(overhead_id).chain(stack.iter().copied()),
                    &mut scratch,
                );
                m.packed(2, [amount(s.overhead) as u64, 0], &mut scratch);
                m.0.extend_from_slice(&labels.0);
                top.bytes(2, &m.0);
            }
            top.flush_to(out)?;
        }

        // 3: one mapping that says its functions are known, so that pprof
        // does not look for a binary to symbolize the locations with.
        m.0.clear();
        m.uint(1, 1);
        m.uint(7, 1);
        top.bytes(3, &m.0);

        // 4: location (in the mapping) and 5: function, one each per name.
        let names = calls
            .entries
            .iter()
            .map(|e| e.name.as_ref())
            .chain(overhead_used.then_some(Self::OVERHEAD));
        for (i, name) in names.enumerate() {
            let id = i as u64 + 1;
            m.0.clear();
            m.uint(1, id);
            m.uint(2, 1);
            inner.0.clear();
            inner.uint(1, id);
            m.bytes(4, &inner.0);
            top.bytes(4, &m.0);
            m.0.clear();
            m.uint(1, id);
            m.int(2, strings.get(name));
            top.bytes(5, &m.0);
            top.flush_to(out)?;
        }

        // 9, 10: time_nanos, duration_nanos; 11, 12: period_type, period.
        if let Some((first, last)) = calls.span {
            top.int(9, i64::try_from(first).unwrap_or(i64::MAX));
            top.int(10, i64::try_from(last - first).unwrap_or(i64::MAX));
        }
        m.0.clear();
        m.int(1, strings.get("events"));
        m.int(2, strings.get("count"));
        top.bytes(11, &m.0);
        if let Some((rate, _)) = calls.weights.filter(|(lo, hi)| lo == hi) {
            top.int(12, i64::try_from(rate).unwrap_or(i64::MAX));
        }

        // 13: comment, 14: default_sample_type.
        let comment_ids: Vec<u64> = comments.iter().map(|c| strings.get(c) as u64).collect();
        top.packed(13, comment_ids, &mut scratch);
        top.int(14, strings.get(name));

        // 6: string_table, last: every string is known by now.
        for s in &strings.table {
            top.bytes(6, s.as_bytes());
        }
        top.flush_to(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{Message, Pprof, Profiles};
    use crate::record::{Detail, ProfileNode, Record, RecordKind};

    fn varint(v: u64) -> Vec<u8> {
        let mut m = Message::default();
        m.varint(v);
        m.0
    }

    #[test]
    fn varints_at_their_edges() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(16_383), [0xff, 0x7f]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(u64::from(u32::MAX)), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let max = varint(u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(max[9], 0x01);
        assert!(max[..9].iter().all(|&b| b == 0xff));
        // int64 -1 is ten bytes, as protobuf writes a negative int64.
        let mut m = Message::default();
        m.int(2, -1);
        assert_eq!(m.0.len(), 11);
        assert_eq!(m.0[0], 0x10);
        assert_eq!(decode_varint(&m.0[1..]).0 as i64, -1);
        // Every value round-trips through the test decoder.
        for v in [
            0,
            1,
            127,
            128,
            255,
            1 << 35,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX,
        ] {
            assert_eq!(decode_varint(&varint(v)), (v, varint(v).len()));
        }
    }

    #[test]
    fn fields_in_their_wire_form() {
        let mut m = Message::default();
        // ValueType { type: 1, unit: 2 }: the example of every pprof
        // encoder.
        m.int(1, 1);
        m.int(2, 2);
        assert_eq!(m.0, [0x08, 0x01, 0x10, 0x02]);
        // A zero scalar is left out.
        m.0.clear();
        m.uint(1, 0);
        assert!(m.0.is_empty());
        // Packed keeps zeros; field 2, wire type 2.
        let mut scratch = Message::default();
        m.packed(2, [0, 300, 0], &mut scratch);
        assert_eq!(m.0, [0x12, 0x04, 0x00, 0xac, 0x02, 0x00]);
        m.0.clear();
        m.packed(2, [], &mut scratch);
        assert!(m.0.is_empty());
        m.bytes(6, b"ab");
        assert_eq!(m.0, [0x32, 0x02, b'a', b'b']);
    }

    /// (value, bytes read) of the varint at the start of `b`.
    fn decode_varint(b: &[u8]) -> (u64, usize) {
        let mut v = 0u64;
        for (i, &byte) in b.iter().enumerate().take(10) {
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return (v, i + 1);
            }
        }
        panic!("unterminated varint");
    }

    /// A field: number, and its varint or bytes.
    #[derive(Debug)]
    enum Field<'b> {
        Varint(u32, u64),
        Bytes(u32, &'b [u8]),
    }

    fn fields(mut b: &[u8]) -> Vec<Field<'_>> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (key, n) = decode_varint(b);
            b = &b[n..];
            let field = (key >> 3) as u32;
            match key & 7 {
                0 => {
                    let (v, n) = decode_varint(b);
                    b = &b[n..];
                    out.push(Field::Varint(field, v));
                }
                2 => {
                    let (len, n) = decode_varint(b);
                    let (bytes, rest) = b[n..].split_at(len as usize);
                    b = rest;
                    out.push(Field::Bytes(field, bytes));
                }
                w => panic!("wire type {w}"),
            }
        }
        out
    }

    fn packed(b: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut b = b;
        while !b.is_empty() {
            let (v, n) = decode_varint(b);
            out.push(v);
            b = &b[n..];
        }
        out
    }

    fn node(
        name: &str,
        parent: Option<u32>,
        calls: u64,
        inclusive: i64,
        exclusive: i64,
    ) -> ProfileNode {
        ProfileNode {
            name: name.into(),
            parent,
            calls,
            inclusive,
            exclusive,
            ..ProfileNode::default()
        }
    }

    fn record(
        name: &str,
        weight: u64,
        timer: &str,
        overhead: i64,
        nodes: Vec<ProfileNode>,
    ) -> Record {
        let mut r = Record::new(RecordKind::Profile, name);
        r.weight = weight;
        r.ts = 1_000;
        r.detail = Some(Box::new(Detail {
            timer: Some(timer.into()),
            overhead: Some(overhead),
            nodes,
            ..Detail::default()
        }));
        r
    }

    /// A decoded sample: its stack as names, leaf first, its values and
    /// its labels.
    type Sample = (Vec<String>, Vec<i64>, Vec<(String, String)>);

    /// The sample types, samples, comments and period of a profile.
    type Decoded = (Vec<(String, String)>, Vec<Sample>, Vec<String>, u64);

    /// A profile decoded with the test decoder above.
    fn decode(bytes: &[u8]) -> Decoded {
        let top = fields(bytes);
        let strings: Vec<String> = top
            .iter()
            .filter_map(|f| match f {
                Field::Bytes(6, s) => Some(String::from_utf8(s.to_vec()).unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(strings[0], "");
        let s = |i: u64| strings[i as usize].clone();
        let varint_of = |fs: &[Field<'_>], n: u32| {
            fs.iter()
                .find_map(|f| match f {
                    Field::Varint(k, v) if *k == n => Some(*v),
                    _ => None,
                })
                .unwrap_or(0)
        };
        let mut functions = std::collections::HashMap::new();
        let mut locations = std::collections::HashMap::new();
        let mut types = Vec::new();
        let mut comments = Vec::new();
        let mut period = 0;
        for f in &top {
            match f {
                Field::Bytes(1, b) => {
                    let vt = fields(b);
                    types.push((s(varint_of(&vt, 1)), s(varint_of(&vt, 2))));
                }
                Field::Bytes(5, b) => {
                    let fs = fields(b);
                    functions.insert(varint_of(&fs, 1), s(varint_of(&fs, 2)));
                }
                Field::Bytes(4, b) => {
                    let fs = fields(b);
                    let line = fs
                        .iter()
                        .find_map(|f| match f {
                            Field::Bytes(4, l) => Some(varint_of(&fields(l), 1)),
                            _ => None,
                        })
                        .unwrap();
                    locations.insert(varint_of(&fs, 1), line);
                }
                Field::Bytes(13, b) => comments = packed(b).into_iter().map(s).collect(),
                Field::Varint(12, v) => period = *v,
                _ => {}
            }
        }
        let mut samples = Vec::new();
        for f in &top {
            if let Field::Bytes(2, b) = f {
                let mut sample = (Vec::new(), Vec::new(), Vec::new());
                for g in fields(b) {
                    match g {
                        Field::Bytes(1, ids) => {
                            sample.0 = packed(ids)
                                .into_iter()
                                .map(|id| functions[&locations[&id]].clone())
                                .collect()
                        }
                        Field::Bytes(2, vs) => {
                            sample.1 = packed(vs).into_iter().map(|v| v as i64).collect()
                        }
                        Field::Bytes(3, l) => {
                            let l = fields(l);
                            sample.2.push((s(varint_of(&l, 1)), s(varint_of(&l, 2))));
                        }
                        other => panic!("unexpected sample field {other:?}"),
                    }
                }
                samples.push(sample);
            }
        }
        (types, samples, comments, period)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_known_profile_decodes_back() {
        let mut a = record(
            "/a",
            10,
            "cpu_ns",
            5,
            vec![
                node("/a", None, 1, 100, 15),
                node("f", Some(0), 2, 80, 30),
                // Clock noise: a negative amount is written as it is.
                node("f", Some(1), 1, 50, -5),
            ],
        );
        a.set_label("build", "v1");
        let b = record("/b", 10, "cpu_ns", 0, vec![node("/b", None, 1, 7, 7)]);
        let mut profiles = Profiles::builder().sample_label("build").build();
        profiles.add(&a);
        profiles.add(&b);
        let pprof = profiles.pprof(None).unwrap();
        assert_eq!(pprof.samples(), 5);
        let mut bytes = Vec::new();
        pprof.write(&mut bytes).unwrap();
        let (types, samples, comments, period) = decode(&bytes);
        assert_eq!(
            types,
            [
                ("cpu".to_string(), "nanoseconds".to_string()),
                ("calls".to_string(), "count".to_string())
            ]
        );
        assert_eq!(period, 10);
        let endpoint_a = ("endpoint".to_string(), "/a".to_string());
        let build = ("build".to_string(), "v1".to_string());
        assert_eq!(
            samples,
            [
                (
                    strings(&["/a"]),
                    vec![150, 10],
                    vec![endpoint_a.clone(), build.clone()]
                ),
                (
                    strings(&[Pprof::OVERHEAD, "/a"]),
                    vec![50, 0],
                    vec![endpoint_a.clone(), build.clone()]
                ),
                (
                    strings(&["f", "/a"]),
                    vec![300, 20],
                    vec![endpoint_a.clone(), build.clone()]
                ),
                (
                    strings(&["f", "f", "/a"]),
                    vec![-50, 10],
                    vec![endpoint_a, build]
                ),
                (
                    strings(&["/b"]),
                    vec![70, 10],
                    vec![("endpoint".to_string(), "/b".to_string())]
                ),
            ]
        );
        assert!(comments.iter().any(|c| c.contains("not code")));
        assert!(comments.iter().any(|c| c.contains("CPU time")));
        // Same input, same bytes.
        let mut again = Vec::new();
        profiles.pprof(None).unwrap().write(&mut again).unwrap();
        assert_eq!(bytes, again);
    }

    #[test]
    fn sums_beyond_64_bits_are_scaled_and_said() {
        // Amounts beyond i64, calls within.
        let big = i64::MAX / 2;
        let weight = 1u64 << 40;
        let mut profiles = Profiles::new();
        for _ in 0..3 {
            profiles.add(&record(
                "/big",
                weight,
                "instructions",
                0,
                vec![node("/big", None, 1, big, big)],
            ));
        }
        let pprof = profiles.pprof(None).unwrap();
        let (scale, calls_scale) = pprof.scales();
        let sum = 3 * u128::from(weight) * big as u128;
        // The smallest power of ten that brings the sum below 2^53.
        assert!(
            sum / scale < 1 << 53 && sum / (scale / 10) >= 1 << 53,
            "{scale}"
        );
        assert_eq!(calls_scale, 1);
        let notes = pprof.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with(&format!(
            "instructions values divided by 10^{} ",
            scale.ilog10()
        )));
        let mut bytes = Vec::new();
        pprof.write(&mut bytes).unwrap();
        let (_, samples, comments, period) = decode(&bytes);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].1, [(sum / scale) as i64, 3 * weight as i64]);
        assert!(comments.contains(&notes[0]));
        assert_eq!(period, weight);

        // Calls beyond i64 too: each type has its own scale.
        let mut profiles = Profiles::new();
        for _ in 0..3 {
            profiles.add(&record(
                "/many",
                u64::MAX,
                "instructions",
                0,
                vec![node("/many", None, 1, 1, 1)],
            ));
        }
        let pprof = profiles.pprof(None).unwrap();
        let calls = 3 * u128::from(u64::MAX);
        assert_eq!(pprof.scales(), (10_000, 10_000));
        assert_eq!(pprof.notes().len(), 2);
        let mut bytes = Vec::new();
        pprof.write(&mut bytes).unwrap();
        let (_, samples, _, period) = decode(&bytes);
        let scaled = (calls / 10_000) as i64;
        assert_eq!(samples[0].1, [scaled, scaled]);
        // A rate beyond i64 is written as the largest one.
        assert_eq!(period, i64::MAX as u64);
    }

    #[test]
    fn unit_of_each_timer() {
        for (timer, expected) in [
            ("instructions", ("instructions", "count")),
            ("cycles", ("cycles", "count")),
            ("cpu_ns", ("cpu", "nanoseconds")),
            ("wall_ns", ("wall", "nanoseconds")),
            ("rss", ("rss", "bytes")),
            ("joules", ("joules", "count")),
        ] {
            assert_eq!(super::sample_type(timer), expected);
        }
    }

    /// `trace_id` as a sample label is the records' field: each traced
    /// request's paths carry its id, and a filter on it keeps one request.
    #[test]
    fn trace_ids_are_sample_labels_and_filters() {
        let traced = |name: &str, trace: u8| {
            let mut r = record(name, 1, "instructions", 0, vec![node(name, None, 1, 9, 9)]);
            r.set_trace_context(crate::record::TraceContext::from_bytes(
                [trace; 16],
                [trace; 8],
            ));
            r
        };
        let a = traced("/a", 0xaa);
        let b = traced("/b", 0xbb);
        let plain = record("/c", 1, "instructions", 0, vec![node("/c", None, 1, 9, 9)]);
        let label_sets = |profiles: &mut Profiles| {
            for r in [&a, &b, &plain] {
                profiles.add(r);
            }
            let mut bytes = Vec::new();
            profiles.pprof(None).unwrap().write(&mut bytes).unwrap();
            let (_, samples, _, _) = decode(&bytes);
            samples
                .into_iter()
                .filter(|(stack, _, _)| stack.len() == 1)
                .map(|(_, _, labels)| labels)
                .collect::<Vec<_>>()
        };
        let label = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            label_sets(&mut Profiles::builder().sample_label("trace_id").build()),
            [
                vec![label("endpoint", "/a"), label("trace_id", &"aa".repeat(16))],
                vec![label("endpoint", "/b"), label("trace_id", &"bb".repeat(16))],
                vec![label("endpoint", "/c")],
            ]
        );
        let mut one = Profiles::builder()
            .filter_label("trace_id", &"bb".repeat(16))
            .build();
        assert_eq!(label_sets(&mut one), [vec![label("endpoint", "/b")]]);
        assert_eq!(one.filtered(), 2);
    }
}
