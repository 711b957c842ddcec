//! Reading a `profile` record back: paths, per-name totals with recursion
//! counted once, caller/callee edges and folded stacks, all derived from the
//! node list.

use std::collections::{BTreeMap, HashMap};

use crate::record::{ProfileNode, Record, RecordKind, escape_name};

/// The one rule of recursion every reader of call trees follows: node `i`
/// is recursive when a node above it (the root not counted) has its name,
/// so its inclusive amount is already inside that ancestor's and is
/// counted once. `named_like_i(a)` says whether node `a` has node `i`'s
/// name (a reader that interns names compares ids). A parent that is not
/// an earlier node ends the walk up.
///
/// The profiler writes the same answer in each node's `recursive` flag;
/// readers derive it from the tree instead, so that a record from another
/// producer (the flag is optional in the schema) reads the same way.
pub(crate) fn is_recursive(
    nodes: &[ProfileNode],
    i: usize,
    named_like_i: impl Fn(usize) -> bool,
) -> bool {
    let parent = |n: usize| nodes[n].parent.map(|p| p as usize).filter(|&p| p < n);
    let mut at = parent(i);
    while let Some(a) = at.filter(|&a| a != 0) {
        if named_like_i(a) {
            return true;
        }
        at = parent(a);
    }
    false
}

/// Per name of a record's nodes below the root: the index of its first
/// node and its inclusive amount, recursion counted once ([`is_recursive`]:
/// a recursive node adds 0), summed saturating; in the order the names
/// first appear. What a comparison adds per profiled function and record
/// (`Side`), and what the ClickHouse rows carry on each name's first node
/// (`scope_first`, `scope_inclusive`), so both count the same.
pub(crate) fn scope_amounts(nodes: &[ProfileNode]) -> Vec<(usize, i64)> {
    let mut out: Vec<(usize, i64)> = Vec::new();
    // Each name's place in `out`: a record of many distinct names costs
    // one lookup per node, not a scan of the names met so far.
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let recursive = is_recursive(nodes, i, |a| nodes[a].name == node.name);
        let amount = if recursive { 0 } else { node.inclusive };
        match at.get(node.name.as_str()) {
            Some(&k) => out[k].1 = out[k].1.saturating_add(amount),
            None => {
                at.insert(&node.name, out.len());
                out.push((i, amount));
            }
        }
    }
    out
}

/// A name as one frame of a folded stack: `;` (the frame separator)
/// becomes `:`, and what must not reach a terminal or break a line is
/// escaped as in every other output ([`escape_name`]).
///
/// ```
/// use dynostats::profile::folded_frame;
///
/// assert_eq!(folded_frame("db;query\n"), "db:query\\n");
/// ```
pub fn folded_frame(name: &str) -> String {
    escape_name(name).replace(';', ":")
}

/// Appends one line of folded stacks to `line`: the frames joined with
/// `;`, a space, the amount. Amounts that are not positive (clock noise
/// on small scopes, memory freed with the `rss` timer) write nothing and
/// return false: flame graphs have no negative or empty widths. The one
/// folded writer of the crate ([`CallTree::folded`], the summed trees of
/// `dynostats flamegraph`).
pub(crate) fn push_folded<'n>(
    line: &mut String,
    names: impl IntoIterator<Item = &'n str>,
    amount: i128,
) -> bool {
    if amount <= 0 {
        return false;
    }
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            line.push(';');
        }
        line.push_str(&folded_frame(name));
    }
    line.push(' ');
    line.push_str(&amount.to_string());
    line.push('\n');
    true
}

/// The call tree of one `profile` record.
///
/// ```
/// use dynostats::profile::CallTree;
/// use dynostats::record::{Detail, ProfileNode};
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
/// let mut record = Record::new(RecordKind::Profile, "checkout");
/// let mut detail = Detail::default();
/// detail.timer = Some("instructions".into());
/// detail.nodes = vec![node("checkout", None, 100, 10), node("price", Some(0), 90, 60), node("tax", Some(1), 30, 30)];
/// record.detail = Some(Box::new(detail));
///
/// let tree = CallTree::from_record(&record).unwrap();
/// assert_eq!(tree.path(2), ["checkout", "price", "tax"]);
/// assert_eq!(tree.find(&["price", "tax"]).unwrap().exclusive, 30);
/// assert_eq!(tree.folded(), "checkout 10\ncheckout;price 60\ncheckout;price;tax 30\n");
/// assert_eq!(tree.by_name()[0].name, "price");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CallTree<'a> {
    record: &'a Record,
    nodes: &'a [ProfileNode],
}

/// Totals of one scope name over a whole tree ([`CallTree::by_name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameTotals {
    /// The scope name.
    pub name: String,
    /// Calls on every path (exact).
    pub calls: u64,
    /// Inclusive amount, a recursive call counted once (inside its
    /// outermost call): the sum over the nodes of that name that have no
    /// ancestor of that name.
    pub inclusive: i64,
    /// Exclusive amount, summed over every node of that name.
    pub exclusive: i64,
}

/// One caller/callee pair ([`CallTree::edges`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Edge {
    /// The calling scope (or the region, for top-level scopes).
    pub caller: String,
    /// The called scope.
    pub callee: String,
    /// Calls from this caller.
    pub calls: u64,
    /// The callee's inclusive amount under this caller, recursive nodes
    /// left out.
    pub inclusive: i64,
}

impl<'a> CallTree<'a> {
    /// The tree of a `profile` record; `None` for another kind of record or
    /// one without nodes.
    pub fn from_record(record: &'a Record) -> Option<CallTree<'a>> {
        let detail = record.detail.as_ref()?;
        if record.kind != RecordKind::Profile || detail.nodes.is_empty() {
            return None;
        }
        Some(CallTree {
            record,
            nodes: &detail.nodes,
        })
    }

    /// The record.
    pub fn record(&self) -> &'a Record {
        self.record
    }

    /// The timer the amounts are in.
    pub fn timer(&self) -> Option<&'a str> {
        self.record.detail.as_ref()?.timer.as_deref()
    }

    /// The nodes, root first.
    pub fn nodes(&self) -> &'a [ProfileNode] {
        self.nodes
    }

    /// The root: the region or request itself.
    pub fn root(&self) -> &'a ProfileNode {
        &self.nodes[0]
    }

    /// The profiler's own amount (`detail.overhead`), 0 when absent.
    pub fn overhead(&self) -> i64 {
        self.record
            .detail
            .as_ref()
            .and_then(|d| d.overhead)
            .unwrap_or(0)
    }

    fn parent(&self, i: usize) -> Option<usize> {
        let p = self.nodes.get(i)?.parent? as usize;
        // Parents come first; anything else is a damaged record.
        (p < i).then_some(p)
    }

    /// The names from the root down to node `i`.
    pub fn path(&self, i: usize) -> Vec<&'a str> {
        let mut path = Vec::new();
        let mut at = Some(i).filter(|&i| i < self.nodes.len());
        while let Some(i) = at {
            path.push(self.nodes[i].name.as_str());
            at = self.parent(i);
        }
        path.reverse();
        path
    }

    /// The node at `path` below the root (`&[]` is the root).
    pub fn find(&self, path: &[&str]) -> Option<&'a ProfileNode> {
        let mut at = 0;
        for name in path {
            at = (at + 1..self.nodes.len())
                .find(|&i| self.parent(i) == Some(at) && self.nodes[i].name == *name)?;
        }
        self.nodes.get(at)
    }

    /// Per node, whether it is recursive ([`is_recursive`]).
    fn recursive(&self) -> Vec<bool> {
        (0..self.nodes.len())
            .map(|i| is_recursive(self.nodes, i, |a| self.nodes[a].name == self.nodes[i].name))
            .collect()
    }

    /// Per scope name (the root left out): calls, inclusive (recursion
    /// counted once) and exclusive, the largest exclusive first.
    pub fn by_name(&self) -> Vec<NameTotals> {
        let recursive = self.recursive();
        let mut totals: BTreeMap<&str, NameTotals> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            let t = totals.entry(&n.name).or_insert_with(|| NameTotals {
                name: n.name.clone(),
                calls: 0,
                inclusive: 0,
                exclusive: 0,
            });
            t.calls += n.calls;
            t.exclusive += n.exclusive;
            if !recursive[i] {
                t.inclusive += n.inclusive;
            }
        }
        let mut totals: Vec<NameTotals> = totals.into_values().collect();
        totals.sort_by(|a, b| b.exclusive.cmp(&a.exclusive).then(a.name.cmp(&b.name)));
        totals
    }

    /// Caller/callee pairs summed over paths, in name order.
    pub fn edges(&self) -> Vec<Edge> {
        let recursive = self.recursive();
        let mut edges: BTreeMap<(&str, &str), Edge> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            let Some(p) = self.parent(i) else { continue };
            let caller = self.nodes[p].name.as_str();
            let e = edges.entry((caller, &n.name)).or_insert_with(|| Edge {
                caller: caller.to_string(),
                callee: n.name.clone(),
                calls: 0,
                inclusive: 0,
            });
            e.calls += n.calls;
            if !recursive[i] {
                e.inclusive += n.inclusive;
            }
        }
        edges.into_values().collect()
    }

    /// Folded stacks (`root;a;b exclusive` per line, the format of flame
    /// graph tools), one line per node with a positive exclusive amount,
    /// the root first; frames as [`folded_frame`] writes them. The same
    /// writer as the summed trees of `dynostats flamegraph`.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            push_folded(&mut out, self.path(i), i128::from(node.exclusive));
        }
        out
    }
}
