//! Call trees of many `profile` records summed per timer: per scope name
//! (recursion counted once), per (caller, callee) edge and per full path,
//! each amount multiplied by the record's weight. What `dynostats top` and
//! `dynostats flamegraph` read ([`Profiles`]).

use std::collections::HashMap;
use std::io::Read;

use super::filter::LabelFilters;
use super::metric::Metric;
use crate::record::{Damage, Record, RecordKind, RecordReader};

/// No parent (a root path) or no name.
const NONE: u32 = u32::MAX;

/// The name of the profile timer that measures `metric`
/// (`detail.timer`): `instructions`, `cycles`, `cpu_ns`, `wall_ns`, `rss`.
pub fn timer_name(metric: Metric) -> &'static str {
    match metric {
        Metric::RssChange => "rss",
        m => m.name(),
    }
}

/// The metric a profile timer name stands for.
pub fn timer_metric(timer: &str) -> Option<Metric> {
    Metric::ALL.into_iter().find(|&m| timer_name(m) == timer)
}

/// The call trees of many `profile` records, summed, in memory bounded by
/// the number of distinct scope names, edges and paths (each capped:
/// beyond [`ProfilesBuilder::max_paths`], further ones are folded into
/// `[other]` and counted), not by the number of records.
///
/// Amounts of different timers are never added: each timer has its own
/// [`Calls`]; [`Profiles::calls`] picks one.
///
/// ```
/// use dynostats::record::{Detail, ProfileNode};
/// use dynostats::report::Profiles;
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
/// let mut detail = Detail::default();
/// detail.timer = Some("instructions".into());
/// detail.nodes = vec![node("/checkout", None, 100, 10), node("price", Some(0), 90, 60), node("tax", Some(1), 30, 30)];
/// record.detail = Some(Box::new(detail));
///
/// let mut profiles = Profiles::new();
/// profiles.add(&record);
/// let calls = profiles.calls(None).unwrap();
/// assert_eq!(calls.total(), 1000);
/// let price = calls.function("price").unwrap();
/// assert_eq!((price.inclusive, price.exclusive, price.calls), (900, 600, 10));
/// assert_eq!(calls.folded(), "/checkout 100\n/checkout;price 600\n/checkout;price;tax 300\n");
/// ```
#[derive(Debug)]
pub struct Profiles {
    filters: LabelFilters,
    endpoint: Option<String>,
    max_paths: usize,
    records: u64,
    profile_records: u64,
    filtered: u64,
    malformed: u64,
    newer_versions: u64,
    fallback: Option<(String, String)>,
    timers: Vec<Calls>,
    scratch: Scratch,
}

#[derive(Debug, Default)]
struct Scratch {
    names: Vec<u32>,
    paths: Vec<u32>,
    recursive: Vec<bool>,
}

/// Builds a [`Profiles`] ([`Profiles::builder`]).
#[derive(Debug)]
#[must_use]
pub struct ProfilesBuilder {
    filters: LabelFilters,
    endpoint: Option<String>,
    max_paths: usize,
}

impl ProfilesBuilder {
    /// Keeps only records whose label `key` is `value` (all filters must
    /// match).
    pub fn filter_label(mut self, key: &str, value: &str) -> Self {
        self.filters.push(key, value);
        self
    }

    /// Keeps only the call trees of this endpoint or region (the record's
    /// name, the root of its tree).
    pub fn endpoint(mut self, name: &str) -> Self {
        self.endpoint = Some(name.to_string());
        self
    }

    /// At most `n` distinct scope names, edges and paths each, per timer
    /// ([`Profiles::DEFAULT_MAX_PATHS`]); beyond, further names and paths
    /// are counted under [`Profiles::OTHER`] (so shares still add up) and
    /// further edges are left out of callers and callees, all counted
    /// ([`Calls::folded_beyond_cap`]).
    pub fn max_paths(mut self, n: usize) -> Self {
        self.max_paths = n.max(1);
        self
    }

    /// The empty [`Profiles`].
    pub fn build(self) -> Profiles {
        Profiles {
            filters: self.filters,
            endpoint: self.endpoint,
            max_paths: self.max_paths,
            records: 0,
            profile_records: 0,
            filtered: 0,
            malformed: 0,
            newer_versions: 0,
            fallback: None,
            timers: Vec::new(),
            scratch: Scratch::default(),
        }
    }
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::new()
    }
}

impl Profiles {
    /// Default cap on distinct names, edges and paths per timer.
    pub const DEFAULT_MAX_PATHS: usize = 100_000;

    /// The name under which scopes beyond the caps are counted.
    pub const OTHER: &'static str = "[other]";

    /// Empty, without filters.
    pub fn new() -> Profiles {
        Profiles::builder().build()
    }

    /// A builder for filters and caps.
    pub fn builder() -> ProfilesBuilder {
        ProfilesBuilder {
            filters: LabelFilters::default(),
            endpoint: None,
            max_paths: Profiles::DEFAULT_MAX_PATHS,
        }
    }

    /// Adds every record of `reader` (only `profile` records count) and
    /// returns what the reader met besides records, like
    /// [`Report::read_records`](super::Report::read_records).
    pub fn read_records<R: Read>(&mut self, reader: RecordReader<R>) -> Damage {
        reader
            .skip_labels(self.filters.is_empty())
            .for_each_record(|record| self.add(record))
    }

    /// Like [`Profiles::read_records`] with the default reader.
    pub fn read_from(&mut self, reader: impl Read) -> Damage {
        self.read_records(RecordReader::new(reader))
    }

    /// Adds one record: a `profile` record's call tree, weighted by its
    /// `weight`; other kinds are only counted.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        if record.v > Record::SCHEMA_VERSION {
            self.newer_versions += 1;
        }
        if record.kind != RecordKind::Profile {
            return;
        }
        self.profile_records += 1;
        if !self.filters.matches(record)
            || self.endpoint.as_ref().is_some_and(|e| *e != record.name)
        {
            self.filtered += 1;
            return;
        }
        let Some(detail) = &record.detail else {
            self.malformed += 1;
            return;
        };
        let nodes = &detail.nodes;
        let Some(timer) = detail.timer.as_deref() else {
            self.malformed += 1;
            return;
        };
        // Parents come first, the root alone has none: anything else is a
        // damaged tree, left out whole rather than guessed at.
        if nodes.is_empty()
            || nodes[0].parent.is_some()
            || nodes
                .iter()
                .enumerate()
                .skip(1)
                .any(|(i, n)| n.parent.is_none_or(|p| p as usize >= i))
        {
            self.malformed += 1;
            return;
        }
        if let (None, Some(requested), Some(why)) = (
            &self.fallback,
            &detail.timer_requested,
            &detail.timer_fallback,
        ) {
            self.fallback = Some((requested.clone(), why.clone()));
        }
        let at = match self.timers.iter().position(|c| c.timer == timer) {
            Some(at) => at,
            None => {
                self.timers.push(Calls::new(timer));
                self.timers.len() - 1
            }
        };
        let overhead = detail.overhead.unwrap_or(0);
        self.timers[at].add(
            record.weight,
            overhead,
            nodes,
            self.max_paths,
            &mut self.scratch,
        );
    }

    /// The amounts of the timer that measures `metric`; `None` for the
    /// default: instructions where any record has them, else CPU time,
    /// else the timer of the most records. `None` when there is none.
    pub fn calls(&self, metric: Option<Metric>) -> Option<&Calls> {
        let find = |m: Metric| self.timers.iter().find(|c| c.timer == timer_name(m));
        match metric {
            Some(m) => find(m),
            None => find(Metric::Instructions)
                .or_else(|| find(Metric::CpuNs))
                .or_else(|| self.timers.iter().max_by_key(|c| c.records)),
        }
    }

    /// What to say about the timer of `calls` when it is not instructions
    /// (every output says so): e.g. "amounts are CPU time (cpu_ns), not
    /// instructions: no profile record carries instructions (the profiler
    /// fell back from instructions: no hardware PMU ...)".
    pub fn timer_note(&self, calls: &Calls) -> Option<String> {
        if calls.timer() == "instructions" {
            return None;
        }
        let mut note = format!(
            "amounts are {} ({}), not instructions",
            match calls.metric() {
                Some(Metric::CpuNs) => "CPU time",
                Some(Metric::WallNs) => "wall time",
                Some(Metric::Cycles) => "CPU cycles",
                Some(Metric::RssChange) => "RSS change",
                _ => "another timer",
            },
            calls.timer()
        );
        if self.calls(Some(Metric::Instructions)).is_none() {
            note.push_str(": no profile record carries instructions");
            if let Some((requested, why)) = self.fallback() {
                note.push_str(&format!(
                    " (the profiler fell back from {requested}: {})",
                    super::format::escape_name(why)
                ));
            }
        }
        Some(note)
    }

    /// The top table ([`Calls::top`]) of the timer that measures `metric`
    /// (`None`: the default of [`Profiles::calls`]), with the
    /// [`timer note`](Profiles::timer_note); `None` without such records.
    pub fn top(&self, metric: Option<Metric>) -> Option<super::top::TopTable<'_>> {
        let calls = self.calls(metric)?;
        Some(calls.top().note(self.timer_note(calls)))
    }

    /// Every timer met, in the order first met.
    pub fn timers(&self) -> impl Iterator<Item = &Calls> {
        self.timers.iter()
    }

    /// Records added, of every kind.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// `profile` records added (filtered and malformed ones included).
    pub fn profile_records(&self) -> u64 {
        self.profile_records
    }

    /// `profile` records left out by the label or endpoint filters.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// `profile` records left out because their tree is damaged (no timer,
    /// no nodes, or a parent that is not an earlier node).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Records of a newer schema version, read for the fields this reader
    /// knows.
    pub fn newer_versions(&self) -> u64 {
        self.newer_versions
    }

    /// The first timer fallback met: the timer that was requested and why
    /// it could not be read (e.g. no hardware PMU), from
    /// `detail.timer_requested` and `detail.timer_fallback`.
    pub fn fallback(&self) -> Option<(&str, &str)> {
        self.fallback
            .as_ref()
            .map(|(t, why)| (t.as_str(), why.as_str()))
    }
}

/// A scope name's (or an endpoint's own) totals over every call tree of
/// one timer, weighted ([`Calls::functions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Function {
    /// The scope name, or the endpoint or region name for a root.
    pub name: String,
    /// True for an endpoint or region (the root of its trees): its
    /// exclusive amount is what it spent outside every scope.
    pub root: bool,
    /// Weighted calls (events for a root).
    pub calls: u128,
    /// Weighted inclusive amount, a recursive call counted once.
    pub inclusive: i128,
    /// Weighted exclusive amount.
    pub exclusive: i128,
}

/// A (caller, callee) pair over every call tree of one timer, weighted
/// ([`Calls::callers`], [`Calls::callees`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallEdge {
    /// The calling scope, or an endpoint for a top-level scope.
    pub caller: String,
    /// True when the caller is an endpoint or region (a root).
    pub caller_root: bool,
    /// The called scope.
    pub callee: String,
    /// Weighted calls from this caller.
    pub calls: u128,
    /// The callee's weighted inclusive amount under this caller, its
    /// recursive calls counted once.
    pub inclusive: i128,
}

#[derive(Clone, Debug)]
struct Entry {
    name: Box<str>,
    root: bool,
    calls: u128,
    inclusive: i128,
    exclusive: i128,
}

#[derive(Clone, Debug, Default)]
struct EdgeTotals {
    calls: u128,
    inclusive: i128,
}

#[derive(Clone, Debug)]
struct PathNode {
    parent: u32,
    name: u32,
    exclusive: i128,
    inclusive: i128,
}

/// The summed call trees of one timer ([`Profiles::calls`]).
#[derive(Debug)]
pub struct Calls {
    timer: String,
    records: u64,
    events: u128,
    total: i128,
    overhead: i128,
    folded: u64,
    scopes: HashMap<Box<str>, u32>,
    roots: HashMap<Box<str>, u32>,
    entries: Vec<Entry>,
    edges: HashMap<(u32, u32), EdgeTotals>,
    path_index: HashMap<(u32, u32), u32>,
    paths: Vec<PathNode>,
}

impl Calls {
    fn new(timer: &str) -> Calls {
        Calls {
            timer: timer.to_string(),
            records: 0,
            events: 0,
            total: 0,
            overhead: 0,
            folded: 0,
            scopes: HashMap::new(),
            roots: HashMap::new(),
            entries: Vec::new(),
            edges: HashMap::new(),
            path_index: HashMap::new(),
            paths: Vec::new(),
        }
    }

    fn name_id(&mut self, name: &str, root: bool, max: usize) -> u32 {
        let map = if root { &self.roots } else { &self.scopes };
        if let Some(&id) = map.get(name) {
            return id;
        }
        let name = if self.entries.len() >= max {
            self.folded += 1;
            if let Some(&id) = self.scopes.get(Profiles::OTHER) {
                return id;
            }
            Profiles::OTHER
        } else {
            name
        };
        let id = self.entries.len() as u32;
        self.entries.push(Entry {
            name: name.into(),
            root: root && name != Profiles::OTHER,
            calls: 0,
            inclusive: 0,
            exclusive: 0,
        });
        if root && name != Profiles::OTHER {
            self.roots.insert(name.into(), id);
        } else {
            self.scopes.insert(name.into(), id);
        }
        id
    }

    fn path_id(&mut self, parent: u32, name: u32, max: usize) -> u32 {
        if let Some(&id) = self.path_index.get(&(parent, name)) {
            return id;
        }
        if self.paths.len() >= max {
            self.folded += 1;
            let other = self.name_id(Profiles::OTHER, false, usize::MAX);
            if name != other {
                return self.path_id(parent, other, usize::MAX);
            }
        }
        let id = self.paths.len() as u32;
        self.paths.push(PathNode {
            parent,
            name,
            exclusive: 0,
            inclusive: 0,
        });
        self.path_index.insert((parent, name), id);
        id
    }

    fn add(
        &mut self,
        weight: u64,
        overhead: i64,
        nodes: &[crate::record::ProfileNode],
        max: usize,
        s: &mut Scratch,
    ) {
        let w = i128::from(weight);
        self.records += 1;
        self.events += u128::from(weight);
        self.total += w * i128::from(nodes[0].inclusive);
        self.overhead += w * i128::from(overhead);
        s.names.clear();
        s.paths.clear();
        s.recursive.clear();
        for (i, n) in nodes.iter().enumerate() {
            let name = self.name_id(&n.name, i == 0, max);
            let (parent_path, parent_name) = match n.parent {
                Some(p) => (s.paths[p as usize], s.names[p as usize]),
                None => (NONE, NONE),
            };
            let path = self.path_id(parent_path, name, max);
            // Recursive: a scope of the same name is an ancestor (the root
            // not counted): its inclusive amount is inside that one's.
            let mut recursive = false;
            let mut at = n.parent;
            while let Some(a) = at.filter(|&a| a != 0) {
                if s.names[a as usize] == name {
                    recursive = true;
                    break;
                }
                at = nodes[a as usize].parent;
            }
            s.names.push(name);
            s.paths.push(path);
            s.recursive.push(recursive);

            let inclusive = w * i128::from(n.inclusive);
            let e = &mut self.entries[name as usize];
            e.calls += u128::from(weight) * u128::from(n.calls);
            e.exclusive += w * i128::from(n.exclusive);
            if !recursive {
                e.inclusive += inclusive;
            }
            let p = &mut self.paths[path as usize];
            p.exclusive += w * i128::from(n.exclusive);
            p.inclusive += inclusive;
            if parent_name != NONE {
                if self.edges.len() >= max && !self.edges.contains_key(&(parent_name, name)) {
                    self.folded += 1;
                    continue;
                }
                let edge = self.edges.entry((parent_name, name)).or_default();
                edge.calls += u128::from(weight) * u128::from(n.calls);
                if !recursive {
                    edge.inclusive += inclusive;
                }
            }
        }
    }

    /// The timer's name (`detail.timer`): `instructions`, `cpu_ns` ...
    pub fn timer(&self) -> &str {
        &self.timer
    }

    /// The metric of the timer, when it is one this reader knows.
    pub fn metric(&self) -> Option<Metric> {
        timer_metric(&self.timer)
    }

    /// Profile records summed.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Events they stand for: the sum of their weights (requests, for
    /// endpoints).
    pub fn events(&self) -> u128 {
        self.events
    }

    /// Everything measured: the sum of weight x the root's inclusive
    /// amount. The denominator of every share.
    pub fn total(&self) -> i128 {
        self.total
    }

    /// The profiler's own amount, weighted (`detail.overhead`).
    pub fn overhead(&self) -> i128 {
        self.overhead
    }

    /// Names, edges and paths counted under `[other]` because a cap was
    /// reached.
    pub fn folded_beyond_cap(&self) -> u64 {
        self.folded
    }

    /// `x` as a share of [`Calls::total`], in percent.
    pub fn share(&self, x: i128) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * x as f64 / self.total as f64
        }
    }

    fn function_of(&self, e: &Entry) -> Function {
        Function {
            name: e.name.to_string(),
            root: e.root,
            calls: e.calls,
            inclusive: e.inclusive,
            exclusive: e.exclusive,
        }
    }

    /// Every scope and root, the largest exclusive amount first (then by
    /// name).
    pub fn functions(&self) -> Vec<Function> {
        let mut all: Vec<Function> = self.entries.iter().map(|e| self.function_of(e)).collect();
        all.sort_by(|a, b| {
            b.exclusive
                .cmp(&a.exclusive)
                .then_with(|| a.name.cmp(&b.name))
                .then(a.root.cmp(&b.root))
        });
        all
    }

    /// The scope `name` (not a root).
    pub fn function(&self, name: &str) -> Option<Function> {
        self.scopes
            .get(name)
            .map(|&id| self.function_of(&self.entries[id as usize]))
    }

    fn edges_where(&self, keep: impl Fn(u32, u32) -> bool) -> Vec<CallEdge> {
        let mut edges: Vec<CallEdge> = self
            .edges
            .iter()
            .filter(|((a, b), _)| keep(*a, *b))
            .map(|(&(a, b), t)| CallEdge {
                caller: self.entries[a as usize].name.to_string(),
                caller_root: self.entries[a as usize].root,
                callee: self.entries[b as usize].name.to_string(),
                calls: t.calls,
                inclusive: t.inclusive,
            })
            .collect();
        edges.sort_by(|a, b| {
            b.inclusive
                .cmp(&a.inclusive)
                .then_with(|| a.caller.cmp(&b.caller))
                .then_with(|| a.callee.cmp(&b.callee))
        });
        edges
    }

    /// Who calls the scope `name`, the largest inclusive amount first.
    pub fn callers(&self, name: &str) -> Vec<CallEdge> {
        match self.scopes.get(name) {
            Some(&id) => self.edges_where(|_, b| b == id),
            None => Vec::new(),
        }
    }

    /// What the scope (or, when no scope has that name, the endpoint)
    /// `name` calls, the largest inclusive amount first.
    pub fn callees(&self, name: &str) -> Vec<CallEdge> {
        match self.scopes.get(name).or_else(|| self.roots.get(name)) {
            Some(&id) => self.edges_where(|a, _| a == id),
            None => Vec::new(),
        }
    }

    /// Every path from a root down, its names, and its weighted exclusive
    /// and inclusive amounts, in path order (a parent before its
    /// children, siblings by name).
    pub fn paths(&self) -> Vec<(Vec<&str>, i128, i128)> {
        let mut out: Vec<(Vec<&str>, i128, i128)> = self
            .paths
            .iter()
            .map(|p| {
                let mut names = Vec::new();
                let mut at = Some(p);
                while let Some(node) = at {
                    names.push(&*self.entries[node.name as usize].name);
                    at = (node.parent != NONE).then(|| &self.paths[node.parent as usize]);
                }
                names.reverse();
                (names, p.exclusive, p.inclusive)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
