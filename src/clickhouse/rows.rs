//! Records as rows of the tables ([`super::Table`]), written as
//! `JSONEachRow`: one JSON object per line, keys the column names.
//!
//! A request or region record is one `records` row; a profile record is one
//! `profile_nodes` row per node of its call tree; a status record is one
//! `status` row. An absent counter is `null` (never 0), an absent method,
//! error or label is `""` (or no array entry), flags are 0 or 1.

use std::fmt::Write as _;

use super::schema::{SCOPE_FIRST, SCOPE_OTHER, Table};
use crate::record::{Record, RecordKind};
use crate::report::output::json_string;

/// Rows of each table, as `JSONEachRow` text, for one batch.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    text: [String; 3],
    rows: [u64; 3],
}

fn slot(table: Table) -> usize {
    match table {
        Table::Records => 0,
        Table::ProfileNodes => 1,
        Table::Status => 2,
    }
}

impl Rows {
    /// No rows.
    pub fn new() -> Rows {
        Rows::default()
    }

    /// Adds the rows of `record` (see the module's docs), and returns how
    /// many it made.
    pub fn push(&mut self, record: &Record) -> u64 {
        match record.kind {
            RecordKind::Request | RecordKind::Region => {
                record_row(&mut self.text[0], record);
                self.rows[0] += 1;
                1
            }
            RecordKind::Profile => {
                let n = profile_rows(&mut self.text[1], record);
                self.rows[1] += n;
                n
            }
            RecordKind::Status => {
                status_row(&mut self.text[2], record);
                self.rows[2] += 1;
                1
            }
        }
    }

    /// The `JSONEachRow` text of `table`'s rows.
    pub fn text(&self, table: Table) -> &str {
        &self.text[slot(table)]
    }

    /// How many rows `table` has.
    pub fn rows(&self, table: Table) -> u64 {
        self.rows[slot(table)]
    }

    /// Rows of every table together.
    pub fn total_rows(&self) -> u64 {
        self.rows.iter().sum()
    }

    /// Bytes of text of every table together.
    pub fn bytes(&self) -> usize {
        self.text.iter().map(String::len).sum()
    }

    /// Empties every table, keeping the memory.
    pub fn clear(&mut self) {
        for t in &mut self.text {
            t.clear();
        }
        self.rows = [0; 3];
    }
}

/// One JSON object, written key by key.
struct Row<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Row<'a> {
    fn new(out: &'a mut String) -> Row<'a> {
        out.push('{');
        Row { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(&json_string(value));
    }

    fn num(&mut self, key: &str, value: impl std::fmt::Display) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    fn opt<T: std::fmt::Display>(&mut self, key: &str, value: Option<T>) {
        match value {
            Some(v) => self.num(key, v),
            None => {
                self.key(key);
                self.out.push_str("null");
            }
        }
    }

    fn flag(&mut self, key: &str, value: bool) {
        self.num(key, u8::from(value));
    }

    fn strs<'s>(&mut self, key: &str, values: impl IntoIterator<Item = &'s str>) {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(&json_string(v));
        }
        self.out.push(']');
    }

    fn nums<T: std::fmt::Display>(&mut self, key: &str, values: impl IntoIterator<Item = T>) {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{v}");
        }
        self.out.push(']');
    }

    fn end(self) {
        self.out.push_str("}\n");
    }
}

/// The columns every row of a request, region or profile record starts
/// with (`common_columns!` in the schema).
fn common(row: &mut Row<'_>, r: &Record) {
    row.num("ts", r.ts);
    row.str("kind", r.kind.as_str());
    row.str("name", r.name.as_str());
    row.str("method", r.method.as_deref().unwrap_or(""));
    row.opt("status", r.status);
    labels(row, r);
    row.num("weight", r.weight);
}

fn labels(row: &mut Row<'_>, r: &Record) {
    row.str("host", r.labels.get("host").unwrap_or(""));
    row.str("build", r.labels.get("build").unwrap_or(""));
    row.strs("label_keys", r.labels.iter().map(|(k, _)| k));
    row.strs("label_values", r.labels.iter().map(|(_, v)| v));
}

/// The trace and span ids (lowercase hex), empty without them.
fn trace(row: &mut Row<'_>, r: &Record) {
    let mut text = crate::record::IdText::default();
    row.str("trace_id", r.trace_id.map_or("", |id| text.hold(id.hex())));
    let mut text = crate::record::IdText::default();
    row.str("span_id", r.span_id.map_or("", |id| text.hold(id.hex())));
}

fn record_row(out: &mut String, r: &Record) {
    let mut row = Row::new(out);
    common(&mut row, r);
    row.num("wall_ns", r.wall_ns);
    row.opt("cpu_ns", r.cpu_ns);
    row.opt("instructions", r.instructions);
    row.opt("cycles", r.cycles);
    row.opt("page_faults", r.page_faults);
    row.opt("context_switches", r.context_switches);
    row.opt("rss_start", r.rss_start);
    row.opt("rss_end", r.rss_end);
    row.opt("peak_rss", r.peak_rss);
    row.opt("polls", r.polls);
    row.opt("threads", r.threads);
    row.str("source", r.source.as_str());
    row.flag("scaled", r.scaled);
    row.flag("cancelled", r.cancelled);
    row.flag("forced", r.forced);
    row.str("error", r.error.as_deref().unwrap_or(""));
    row.num("pid", r.pid);
    row.opt("id", r.id);
    trace(&mut row, r);
    row.num("v", r.v);
    row.end();
}

/// One row per node; a profile record without nodes makes none.
fn profile_rows(out: &mut String, r: &Record) -> u64 {
    let Some(detail) = &r.detail else {
        return 0;
    };
    let nodes = &detail.nodes;
    // Each node's path of names from the root, built from its parent's
    // (parents come first; a parent index that does not point back is
    // treated as the root's child).
    let mut paths: Vec<Vec<&str>> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let mut path = match node.parent {
            Some(p) if (p as usize) < i => paths[p as usize].clone(),
            Some(_) if i > 0 => paths[0].clone(),
            _ => Vec::new(),
        };
        path.push(node.name.as_str());
        paths.push(path);
    }
    // Per node: the amount its name adds to the record's profiled
    // function, on the name's first node only (see [`SCOPE_FIRST`]).
    let mut firsts: Vec<Option<i64>> = vec![None; nodes.len()];
    for (first, amount) in crate::profile::view::scope_amounts(nodes) {
        firsts[first] = Some(amount);
    }
    for (i, (node, path)) in nodes.iter().zip(&paths).enumerate() {
        let mut row = Row::new(out);
        common(&mut row, r);
        row.flag("forced", r.forced);
        row.flag("cancelled", r.cancelled);
        row.str("error", r.error.as_deref().unwrap_or(""));
        row.str("source", r.source.as_str());
        row.flag("scaled", r.scaled);
        row.num("pid", r.pid);
        row.opt("id", r.id);
        trace(&mut row, r);
        row.str("timer", detail.timer.as_deref().unwrap_or(""));
        row.str(
            "timer_requested",
            detail.timer_requested.as_deref().unwrap_or(""),
        );
        row.num("node", i);
        row.opt("parent", node.parent);
        row.num("depth", path.len() - 1);
        row.str("scope", &node.name);
        row.strs("path", path.iter().copied());
        row.num("calls", node.calls);
        row.num("inclusive", node.inclusive);
        row.num("exclusive", node.exclusive);
        row.flag("recursive", node.recursive);
        // Per record, on the root's row only, so that sums over rows count
        // each record once.
        let root = i == 0;
        row.opt("total", detail.total.filter(|_| root));
        row.num(
            "overhead",
            if root {
                detail.overhead.unwrap_or(0)
            } else {
                0
            },
        );
        let stats = detail.stats.iter().filter(|_| root);
        row.strs("stat_names", stats.clone().map(|(k, _)| k.as_str()));
        row.nums("stat_values", stats.map(|(_, v)| *v));
        row.num("v", r.v);
        let (first, amount) = match firsts[i] {
            Some(amount) => (SCOPE_FIRST, amount),
            None => (SCOPE_OTHER, 0),
        };
        row.num("scope_first", first);
        row.num("scope_inclusive", amount);
        row.end();
    }
    nodes.len() as u64
}

fn status_row(out: &mut String, r: &Record) {
    let mut row = Row::new(out);
    row.num("ts", r.ts);
    row.str("name", r.name.as_str());
    labels(&mut row, r);
    row.num("pid", r.pid);
    row.str("source", r.source.as_str());
    let empty = crate::record::Detail::default();
    let d: &crate::record::Detail = r.detail.as_deref().unwrap_or(&empty);
    row.str("sink", d.sink.as_deref().unwrap_or(""));
    row.strs("counter_names", d.counters.keys().map(String::as_str));
    row.strs("counter_states", d.counters.values().map(String::as_str));
    row.strs("source_names", d.sources.keys().map(String::as_str));
    row.strs("source_values", d.sources.values().map(String::as_str));
    row.strs("stat_names", d.stats.keys().map(String::as_str));
    row.nums("stat_values", d.stats.values());
    let sink_stats = d.sinks.iter().flat_map(|(sink, stats)| {
        stats
            .iter()
            .map(move |(k, v)| (sink.as_str(), k.as_str(), *v))
    });
    row.strs("sink_names", sink_stats.clone().map(|(s, _, _)| s));
    row.strs("sink_stats", sink_stats.clone().map(|(_, k, _)| k));
    row.nums("sink_values", sink_stats.map(|(_, _, v)| v));
    row.strs("error_sinks", d.errors.keys().map(String::as_str));
    row.strs("error_texts", d.errors.values().map(String::as_str));
    row.num("v", r.v);
    row.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Detail, ProfileNode};

    /// The keys of each JSON object of `text`, in order (the rows are
    /// flat objects whose string values hold no `":`).
    fn keys(line: &str) -> Vec<String> {
        line.split("\":")
            .filter_map(|part| part.rsplit(['{', ',']).next())
            .filter(|k| k.starts_with('"'))
            .map(|k| k.trim_matches('"').to_string())
            .collect()
    }

    fn columns(table: Table) -> Vec<String> {
        table.row_columns().map(|c| c.name.to_string()).collect()
    }

    #[test]
    fn every_row_carries_exactly_its_tables_columns_in_order() {
        let mut rows = Rows::new();
        let mut r = Record::new(RecordKind::Request, "/a");
        r.set_label("build", "b1");
        r.instructions = Some(5);
        rows.push(&r);
        let mut p = Record::new(RecordKind::Profile, "/a");
        let mut d = Detail::default();
        d.nodes.push(ProfileNode {
            name: "/a".into(),
            calls: 1,
            inclusive: 9,
            exclusive: 4,
            ..Default::default()
        });
        d.nodes.push(ProfileNode {
            name: "f".into(),
            parent: Some(0),
            calls: 2,
            inclusive: 5,
            exclusive: 5,
            ..Default::default()
        });
        p.detail = Some(Box::new(d));
        rows.push(&p);
        rows.push(&Record::new(RecordKind::Status, "dynostats"));
        for table in Table::ALL {
            let text = rows.text(table);
            assert!(!text.is_empty(), "{table:?}");
            for line in text.lines() {
                assert_eq!(keys(line), columns(table), "{table:?}: {line}");
            }
        }
        assert_eq!(rows.rows(Table::ProfileNodes), 2);
        let nodes: Vec<&str> = rows.text(Table::ProfileNodes).lines().collect();
        assert!(nodes[1].contains("\"path\":[\"/a\",\"f\"]"), "{}", nodes[1]);
        assert!(
            nodes[1].contains("\"total\":null,\"overhead\":0"),
            "{}",
            nodes[1]
        );
    }

    /// The value of `"key":` in a flat JSON object line.
    fn value<'a>(line: &'a str, key: &str) -> &'a str {
        let at = line.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
        let rest = &line[at..];
        &rest[..rest.find([',', '}']).unwrap()]
    }

    #[test]
    fn each_name_s_amount_is_on_its_first_node_recursion_counted_once() {
        let mut p = Record::new(RecordKind::Profile, "/r");
        let node = |name: &str, parent: Option<u32>, inclusive: i64| ProfileNode {
            name: name.into(),
            parent,
            calls: 1,
            inclusive,
            exclusive: 0,
            ..Default::default()
        };
        // /r -> f -> g -> f (recursive: inside the first f's 50), and a
        // second g under the root; a node named like the root below it.
        let nodes = vec![
            node("/r", None, 100),
            node("f", Some(0), 50),
            node("g", Some(1), 30),
            node("f", Some(2), 20),
            node("g", Some(0), 7),
            node("/r", Some(0), 3),
        ];
        p.detail = Some(Box::new(Detail {
            nodes,
            ..Default::default()
        }));
        let mut rows = Rows::new();
        rows.push(&p);
        let got: Vec<(String, String)> = rows
            .text(Table::ProfileNodes)
            .lines()
            .map(|l| {
                (
                    value(l, "scope_first").to_string(),
                    value(l, "scope_inclusive").to_string(),
                )
            })
            .collect();
        let want = [
            (SCOPE_OTHER, 0),
            (SCOPE_FIRST, 50),
            (SCOPE_FIRST, 37),
            (SCOPE_OTHER, 0),
            (SCOPE_OTHER, 0),
            (SCOPE_FIRST, 3),
        ]
        .map(|(f, a)| (f.to_string(), a.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn absent_counters_are_null_and_names_are_json_strings() {
        let mut rows = Rows::new();
        let mut r = Record::new(RecordKind::Region, "a\"b\n\u{1b}");
        r.cpu_ns = Some(0);
        rows.push(&r);
        let line = rows.text(Table::Records);
        assert!(line.contains("\"name\":\"a\\\"b\\n\\u001b\""), "{line}");
        assert!(
            line.contains("\"cpu_ns\":0,\"instructions\":null"),
            "{line}"
        );
    }
}
