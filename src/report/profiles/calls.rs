//! [`Calls`]: the call trees of one timer summed per scope name, per
//! (caller, callee) edge and per full path, weighted.

use std::collections::HashMap;

use super::Profiles;
use crate::profile::view::is_recursive;
use crate::record::ProfileNode;
use crate::report::metric::Metric;

/// No parent (a root path) or no name.
pub(super) const NONE: u32 = u32::MAX;

/// Adds `x` to `sum`, exactly while it fits an `i128`; beyond, `sum`
/// stops at the bound and `saturated` is set.
pub(super) fn add_i(sum: &mut i128, x: i128, saturated: &mut bool) {
    match sum.checked_add(x) {
        Some(s) => *sum = s,
        None => {
            *saturated = true;
            *sum = sum.saturating_add(x);
        }
    }
}

/// [`add_i`] for `u128`.
pub(super) fn add_u(sum: &mut u128, x: u128, saturated: &mut bool) {
    match sum.checked_add(x) {
        Some(s) => *sum = s,
        None => {
            *saturated = true;
            *sum = u128::MAX;
        }
    }
}

/// Per-record scratch of [`Calls::add`], kept between records.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    names: Vec<u32>,
    paths: Vec<u32>,
    /// The paths the record met, each once, whose `pending` holds the
    /// record's exclusive amount there.
    touched: Vec<u32>,
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
    /// True when one of `calls`, `inclusive` or `exclusive` reached a
    /// bound of its integer and stopped there: that figure is a bound
    /// (at least, or at most when negative), not exact.
    pub saturated: bool,
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
    /// True when `calls` or `inclusive` reached a bound of its integer and
    /// stopped there (like [`Function::saturated`]).
    pub saturated: bool,
}

#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) name: Box<str>,
    pub(super) root: bool,
    calls: u128,
    inclusive: i128,
    exclusive: i128,
    saturated: bool,
}

#[derive(Clone, Debug, Default)]
struct EdgeTotals {
    calls: u128,
    inclusive: i128,
    saturated: bool,
}

#[derive(Clone, Debug)]
pub(super) struct PathNode {
    pub(super) parent: u32,
    pub(super) name: u32,
    pub(super) exclusive: i128,
    inclusive: i128,
    /// Weighted calls of the path's last scope (events, for a root).
    pub(super) calls: u128,
    /// For a root path: the profiler's own amount, weighted
    /// (`detail.overhead`); 0 for the others.
    pub(super) overhead: i128,
    saturated: bool,
    /// Over the records read one by one: `Σ w²·x` and `Σ w²·x²` of `x`,
    /// a record's exclusive amount on this path (0 where it has none):
    /// with [`Calls::sw2`] the spread of the path's total
    /// ([`Calls::path_variance`]).
    pub(super) sw2_x: f64,
    pub(super) sw2_x2: f64,
    /// The exclusive amount of the record being added, and whether that
    /// record met the path yet.
    pending: i128,
    touched: bool,
}

/// What one pprof sample sums ([`Calls::sample_sums`]): a path's weighted
/// exclusive amount, calls and (for a root) overhead, under one set of
/// label values.
#[derive(Clone, Debug, Default)]
pub(super) struct SampleSums {
    pub(super) exclusive: i128,
    pub(super) calls: u128,
    pub(super) overhead: i128,
}

/// The summed call trees of one timer ([`Profiles::calls`]).
#[derive(Debug)]
pub struct Calls {
    pub(super) timer: String,
    pub(super) records: u64,
    events: u128,
    total: i128,
    overhead: i128,
    saturated: bool,
    folded: u64,
    scopes: HashMap<Box<str>, u32>,
    roots: HashMap<Box<str>, u32>,
    pub(super) entries: Vec<Entry>,
    edges: HashMap<(u32, u32), EdgeTotals>,
    path_index: HashMap<(u32, u32), u32>,
    pub(super) paths: Vec<PathNode>,
    /// Per (path, label set): the sums of the records that carry those
    /// label values; kept only when the summary splits by labels
    /// (`ProfilesBuilder::sample_label`).
    pub(super) by_labels: HashMap<(u32, u32), SampleSums>,
    /// Smallest and largest positive weight met (the sampling rates).
    pub(super) weights: Option<(u64, u64)>,
    /// Earliest and latest `ts` met.
    pub(super) span: Option<(u64, u64)>,
    /// `Σ w²` over the records added one by one ([`Calls::add`]); 0 for
    /// sums made elsewhere (a database), whose spread is unknown.
    pub(super) sw2: f64,
    /// Records added one by one (those `sw2` counts).
    pub(super) spread_records: u64,
}

impl Calls {
    pub(super) fn new(timer: &str) -> Calls {
        Calls {
            timer: timer.to_string(),
            records: 0,
            events: 0,
            total: 0,
            overhead: 0,
            saturated: false,
            folded: 0,
            scopes: HashMap::new(),
            roots: HashMap::new(),
            entries: Vec::new(),
            edges: HashMap::new(),
            path_index: HashMap::new(),
            paths: Vec::new(),
            by_labels: HashMap::new(),
            weights: None,
            span: None,
            sw2: 0.0,
            spread_records: 0,
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
            saturated: false,
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
            calls: 0,
            overhead: 0,
            saturated: false,
            sw2_x: 0.0,
            sw2_x2: 0.0,
            pending: 0,
            touched: false,
        });
        self.path_index.insert((parent, name), id);
        id
    }

    /// Adds one call tree of `weight` events, measured at `ts`; with a
    /// `label_set` (an id of the caller's), its paths are also summed
    /// under that set (`by_labels`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        weight: u64,
        ts: u64,
        overhead: i64,
        nodes: &[ProfileNode],
        label_set: Option<u32>,
        max: usize,
        s: &mut Scratch,
    ) {
        // Each product fits (|u64 x i64| < 2^127, u64 x u64 < 2^128); the
        // sums may not: they saturate, flagged, never wrap.
        let w = i128::from(weight);
        let wu = u128::from(weight);
        let mut saturated = false;
        self.records += 1;
        if weight > 0 {
            let (lo, hi) = self.weights.unwrap_or((weight, weight));
            self.weights = Some((lo.min(weight), hi.max(weight)));
        }
        let (first, last) = self.span.unwrap_or((ts, ts));
        self.span = Some((first.min(ts), last.max(ts)));
        add_u(&mut self.events, wu, &mut saturated);
        add_i(
            &mut self.total,
            w * i128::from(nodes[0].inclusive),
            &mut saturated,
        );
        add_i(&mut self.overhead, w * i128::from(overhead), &mut saturated);
        self.saturated |= saturated;
        s.names.clear();
        s.paths.clear();
        s.touched.clear();
        for (i, n) in nodes.iter().enumerate() {
            let name = self.name_id(&n.name, i == 0, max);
            let recursive = is_recursive(nodes, i, |a| s.names[a] == name);
            s.names.push(name);
            let (parent_path, parent_name) = match n.parent {
                Some(p) => (s.paths[p as usize], s.names[p as usize]),
                None => (NONE, NONE),
            };
            let path = self.path_id(parent_path, name, max);
            s.paths.push(path);
            let p = &mut self.paths[path as usize];
            if !p.touched {
                p.touched = true;
                s.touched.push(path);
            }
            p.pending = p.pending.saturating_add(i128::from(n.exclusive));

            let inclusive = w * i128::from(n.inclusive);
            let exclusive = w * i128::from(n.exclusive);
            let calls = wu * u128::from(n.calls);
            let overhead = if i == 0 { w * i128::from(overhead) } else { 0 };
            let sums = (exclusive, inclusive, calls, overhead);
            self.add_to_scope_and_path(name, path, recursive, sums, false);
            if let Some(set) = label_set {
                self.add_to_labels((path, set), (exclusive, calls, overhead), false, max);
            }
            if parent_name != NONE {
                self.add_to_edge(
                    (parent_name, name),
                    recursive,
                    (inclusive, calls),
                    false,
                    max,
                );
            }
        }
        // The record's exclusive amount per path, into the sums of squares
        // that give each path's spread.
        let w2 = (weight as f64) * (weight as f64);
        self.sw2 += w2;
        self.spread_records += 1;
        for &path in &s.touched {
            let p = &mut self.paths[path as usize];
            let x = p.pending as f64;
            p.pending = 0;
            p.touched = false;
            p.sw2_x += w2 * x;
            p.sw2_x2 += w2 * x * x;
        }
    }

    /// Adds one node's weighted sums (`exclusive`, `inclusive`, `calls`,
    /// `overhead`) to its scope `name` (inclusive only where not
    /// `recursive`) and to its `path`; `saturated` marks sums that already
    /// reached a bound.
    #[inline]
    fn add_to_scope_and_path(
        &mut self,
        name: u32,
        path: u32,
        recursive: bool,
        (exclusive, inclusive, calls, overhead): (i128, i128, u128, i128),
        saturated: bool,
    ) {
        let e = &mut self.entries[name as usize];
        e.saturated |= saturated;
        add_u(&mut e.calls, calls, &mut e.saturated);
        add_i(&mut e.exclusive, exclusive, &mut e.saturated);
        if !recursive {
            add_i(&mut e.inclusive, inclusive, &mut e.saturated);
        }
        self.saturated |= e.saturated;
        let p = &mut self.paths[path as usize];
        p.saturated |= saturated;
        add_i(&mut p.exclusive, exclusive, &mut p.saturated);
        add_i(&mut p.inclusive, inclusive, &mut p.saturated);
        add_u(&mut p.calls, calls, &mut p.saturated);
        add_i(&mut p.overhead, overhead, &mut p.saturated);
        self.saturated |= p.saturated;
    }

    /// Adds a node's `exclusive`, `calls` and `overhead` to the sums of its
    /// (path, label set) `key`; beyond `max` such pairs, to the path's
    /// `<other>` set (id 0, kept for it by [`Profiles`]), counted in
    /// [`Calls::folded_beyond_cap`].
    #[inline]
    fn add_to_labels(
        &mut self,
        mut key: (u32, u32),
        (exclusive, calls, overhead): (i128, u128, i128),
        saturated: bool,
        max: usize,
    ) {
        if self.by_labels.len() >= max && !self.by_labels.contains_key(&key) {
            self.folded += 1;
            key.1 = 0;
        }
        let sums = self.by_labels.entry(key).or_default();
        let mut stopped = saturated;
        add_i(&mut sums.exclusive, exclusive, &mut stopped);
        add_u(&mut sums.calls, calls, &mut stopped);
        add_i(&mut sums.overhead, overhead, &mut stopped);
        self.saturated |= stopped;
    }

    /// Adds a node's `calls` and (where not `recursive`) `inclusive` to the
    /// edge from its caller; an edge beyond `max` edges is counted in
    /// [`Calls::folded_beyond_cap`] instead.
    #[inline]
    fn add_to_edge(
        &mut self,
        key: (u32, u32),
        recursive: bool,
        (inclusive, calls): (i128, u128),
        saturated: bool,
        max: usize,
    ) {
        if self.edges.len() >= max && !self.edges.contains_key(&key) {
            self.folded += 1;
            return;
        }
        let edge = self.edges.entry(key).or_default();
        edge.saturated |= saturated;
        add_u(&mut edge.calls, calls, &mut edge.saturated);
        if !recursive {
            add_i(&mut edge.inclusive, inclusive, &mut edge.saturated);
        }
        self.saturated |= edge.saturated;
    }

    /// Adds the totals of call trees summed elsewhere (a database):
    /// `records` trees standing for `events`, the weighted root inclusive
    /// amounts `total` and the weighted `overhead`, the smallest and
    /// largest positive weight and the earliest and latest `ts`. Their
    /// paths come with [`Calls::add_summed_path`].
    #[cfg(feature = "clickhouse")]
    pub(crate) fn add_summed_totals(
        &mut self,
        (records, events): (u64, u128),
        (total, overhead, saturated): (i128, i128, bool),
        weights: Option<(u64, u64)>,
        span: Option<(u64, u64)>,
    ) {
        self.records += records;
        let mut stopped = saturated;
        add_u(&mut self.events, events, &mut stopped);
        add_i(&mut self.total, total, &mut stopped);
        add_i(&mut self.overhead, overhead, &mut stopped);
        self.saturated |= stopped;
        let merge = |a: Option<(u64, u64)>, b: Option<(u64, u64)>| match (a, b) {
            (Some((lo, hi)), Some((l, h))) => Some((lo.min(l), hi.max(h))),
            (a, b) => a.or(b),
        };
        self.weights = merge(self.weights, weights);
        self.span = merge(self.span, span);
    }

    /// Adds the weighted sums of every node whose path of names from the
    /// root is `path`, summed elsewhere (a database): what
    /// [`Calls::add`] adds node by node, for the path's last scope, its
    /// edge from its caller and its path (recursion read from the path:
    /// the scope is recursive where a caller below the root has its name).
    /// With a `label_set` ([`Profiles::summed_label_set`]), the sums are
    /// those of the records carrying its values, and are also summed
    /// under it (what pprof's samples carry).
    ///
    /// `nodes` is how many nodes the sums hold: [`Calls::folded_beyond_cap`]
    /// counts what is folded per node, as [`Calls::add`] meets them. The
    /// first node of a path may fold what the others then find (its path
    /// under `<other>`, made once); the callers' names and paths, looked up
    /// again here, are counted by their own paths' calls, not this one's.
    #[cfg(feature = "clickhouse")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_summed_path(
        &mut self,
        path: &[&str],
        (exclusive, inclusive, calls, overhead): (i128, i128, u128, i128),
        saturated: bool,
        label_set: Option<u32>,
        nodes: u64,
        max: usize,
        s: &mut Scratch,
    ) {
        if path.is_empty() {
            return;
        }
        s.names.clear();
        s.paths.clear();
        let mut parent = NONE;
        let folded = self.folded;
        let last = path.len() - 1;
        for (i, name) in path.iter().enumerate() {
            if i == last {
                // The callers' folds were counted with their own paths.
                self.folded = folded;
            }
            let id = self.name_id(name, i == 0, max);
            let id_path = self.path_id(parent, id, max);
            if i == last && nodes > 1 {
                // What a second node of the path folds: its lookups again.
                let first = self.folded;
                self.name_id(name, i == 0, max);
                self.path_id(parent, id, max);
                let again = self.folded - first;
                self.folded = first.saturating_add(again.saturating_mul(nodes.saturating_sub(1)));
            }
            parent = id_path;
            s.names.push(id);
            s.paths.push(parent);
        }
        let name = s.names[last];
        let recursive = last > 0 && s.names[1..last].contains(&name);
        let sums = (exclusive, inclusive, calls, overhead);
        self.add_to_scope_and_path(name, s.paths[last], recursive, sums, saturated);
        // The pair and the edge fold alike for every node.
        let folded = self.folded;
        if let Some(set) = label_set {
            let key = (s.paths[last], set);
            self.add_to_labels(key, (exclusive, calls, overhead), saturated, max);
        }
        if last > 0 {
            let key = (s.names[last - 1], name);
            self.add_to_edge(key, recursive, (inclusive, calls), saturated, max);
        }
        self.folded = folded.saturating_add((self.folded - folded).saturating_mul(nodes));
    }

    /// The timer's name (`detail.timer`): `instructions`, `cpu_ns` ...
    pub fn timer(&self) -> &str {
        &self.timer
    }

    /// The metric of the timer, when it is one this reader knows.
    pub fn metric(&self) -> Option<Metric> {
        Metric::of_timer(&self.timer)
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
    /// amount. The denominator of every share. Saturated at the bounds of
    /// `i128` ([`Calls::saturated`]).
    pub fn total(&self) -> i128 {
        self.total
    }

    /// True when any sum of these call trees (events, total, overhead, a
    /// function's, an edge's or a path's calls or amounts) reached a bound
    /// of its integer (`u128` for calls and events, `i128` for amounts) and
    /// stopped there instead of wrapping: such a figure is a bound, and
    /// shares of it are not exact. Each [`Function`] and [`CallEdge`] says
    /// whether its own figures did.
    pub fn saturated(&self) -> bool {
        self.saturated
    }

    /// The profiler's own amount, weighted (`detail.overhead`).
    pub fn overhead(&self) -> i128 {
        self.overhead
    }

    /// Names, edges, paths and (path, label values) pairs counted under
    /// `<other>` because a cap was reached.
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
            saturated: e.saturated,
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
                saturated: t.saturated,
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

    /// Whether a scope (or, with `roots`, an endpoint or region) is named
    /// `name` in these call trees.
    pub fn has_name(&self, name: &str, roots: bool) -> bool {
        self.scopes.contains_key(name) || (roots && self.roots.contains_key(name))
    }

    /// Up to `n` scope and endpoint names close to `name`, the closest
    /// first: those that contain it or that it contains (ignoring case),
    /// then those within a few edits. For "no scope named X; did you
    /// mean ...".
    pub fn names_like(&self, name: &str, n: usize) -> Vec<&str> {
        let want = name.to_lowercase();
        let mut close: Vec<(usize, &str)> = self
            .entries
            .iter()
            .map(|e| &*e.name)
            .filter_map(|candidate| {
                let have = candidate.to_lowercase();
                let distance = if have.contains(&want) || want.contains(&have) {
                    0
                } else {
                    edit_distance(&want, &have)
                };
                (distance <= 2.max(want.chars().count() / 2)).then_some((distance, candidate))
            })
            .collect();
        close.sort();
        close.dedup_by(|a, b| a.1 == b.1);
        close.into_iter().take(n).map(|(_, name)| name).collect()
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

    /// Every path's weighted exclusive amount, in no order.
    pub(super) fn path_exclusives(&self) -> impl Iterator<Item = i128> + '_ {
        self.paths.iter().map(|p| p.exclusive)
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

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("db::query", "db::query"), 0);
        assert_eq!(edit_distance("db::qeury", "db::query"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
