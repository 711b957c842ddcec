//! The call tree of one task as it is being profiled: nodes (one per full
//! path of scopes), the stack of open scopes, the caps, and the virtual
//! clock that runs only while the task runs.

use std::borrow::Cow;

use super::calibrate::Calibration;
use super::timer::Timer;
use crate::record::ProfileNode;

/// A scope name: a `&'static str` for explicit scopes and span names, an
/// owned string for a span's field value.
pub(crate) type Name = Cow<'static, str>;

/// The name of the node that takes what the caps leave out.
pub const OVERFLOW: &str = "<overflow>";

const NONE: u32 = u32::MAX;

/// Identifies one entered scope, so that its exit finds its frame (or
/// finds that it is gone). Plain data: a scope guard held across `.await`
/// moves with its task to other threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    profile: u64,
    seq: u32,
    /// Entered inside the overflow bucket: only counted, not timed.
    nested: bool,
}

#[derive(Debug)]
struct Node {
    name: Name,
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    calls: u64,
    inclusive: i64,
    exclusive: i64,
    /// Frames of this node on the stack (more than one only in the
    /// overflow bucket): inclusive amounts are added by the outermost.
    open: u32,
    recursive: bool,
}

#[derive(Debug)]
struct Frame {
    node: u32,
    seq: u32,
    /// Virtual time at the end of the enter.
    start: i64,
    /// `pairs`, `resumes` and `created` when the scope was entered.
    pairs: u64,
    resumes: u64,
    created: u64,
    /// Inclusive amounts of the direct children closed so far.
    children: i64,
    /// Scopes entered inside this (overflow) frame and not yet left.
    nested: u32,
}

/// Counts of one profile, reported in the record's `detail.stats` and
/// summed into [`ProfilerStats`](super::ProfilerStats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Enter/exit pairs timed (each costs the calibrated pair).
    pub(crate) pairs: u64,
    /// Entries counted in the overflow bucket without being timed.
    pub(crate) nested: u64,
    /// Polls resumed with scopes open (each costs one timer read pair).
    pub(crate) resumes: u64,
    /// Nodes made (each costs the calibrated making of a node, charged to
    /// the scope it is made in).
    pub(crate) created: u64,
    /// Timer reads.
    pub(crate) reads: u64,
    /// Timer reads that failed (the clock stood still for them).
    pub(crate) failed_reads: u64,
    /// Scopes beyond the depth cap.
    pub(crate) overflow_depth: u64,
    /// Scopes that would have needed a node beyond the node cap.
    pub(crate) overflow_nodes: u64,
    /// Scopes still open when the region ended, or left out of order.
    pub(crate) unclosed: u64,
    /// Exits whose scope was not open in this profile (dropped elsewhere).
    pub(crate) stray_exits: u64,
}

/// One task's profile.
#[derive(Debug)]
pub(crate) struct Profile {
    pub(crate) id: u64,
    pub(crate) timer: Timer,
    pub(crate) requested: Timer,
    pub(crate) fallback: Option<String>,
    calibration: Calibration,
    max_depth: usize,
    max_nodes: usize,
    /// Node 0 is the root (the region itself).
    nodes: Vec<Node>,
    stack: Vec<Frame>,
    overflow: u32,
    /// Inclusive amounts of the closed top-level scopes.
    root_children: i64,
    /// The virtual clock: `banked + (raw - anchor)` while the task runs.
    banked: i64,
    anchor: u64,
    /// The last virtual time read (what a failed read gives).
    last: i64,
    seq: u32,
    pub(crate) counts: Counts,
}

impl Profile {
    pub(crate) fn new(
        id: u64,
        requested: Timer,
        timer: Timer,
        fallback: Option<String>,
        calibration: Calibration,
        max_depth: usize,
        max_nodes: usize,
    ) -> Profile {
        let mut nodes = Vec::with_capacity(16);
        nodes.push(Node {
            name: Cow::Borrowed(""),
            parent: NONE,
            first_child: NONE,
            next_sibling: NONE,
            calls: 1,
            inclusive: 0,
            exclusive: 0,
            open: 0,
            recursive: false,
        });
        Profile {
            id,
            timer,
            requested,
            fallback,
            calibration,
            max_depth: max_depth.max(1),
            max_nodes: max_nodes.max(1),
            nodes,
            stack: Vec::with_capacity(8),
            overflow: NONE,
            root_children: 0,
            banked: 0,
            anchor: 0,
            last: 0,
            seq: 0,
            counts: Counts::default(),
        }
    }

    /// Whether scopes are open.
    #[inline]
    pub(crate) fn has_open(&self) -> bool {
        !self.stack.is_empty()
    }

    /// Whether any scope was entered.
    pub(crate) fn entered(&self) -> bool {
        self.nodes.len() > 1
    }

    /// The timer now, in virtual time.
    #[inline(always)]
    fn now(&mut self) -> i64 {
        self.counts.reads += 1;
        match self.timer.read() {
            Some(raw) => {
                self.last = self
                    .banked
                    .wrapping_add(raw.wrapping_sub(self.anchor) as i64);
            }
            None => self.counts.failed_reads += 1,
        }
        self.last
    }

    /// The task stops running here (end of a poll) with scopes open: the
    /// virtual clock stops.
    pub(crate) fn suspend(&mut self) {
        self.banked = self.now();
    }

    /// The task runs again (start of a poll) with scopes open: the virtual
    /// clock goes on from where it stopped.
    pub(crate) fn resume(&mut self) {
        self.counts.reads += 1;
        self.counts.resumes += 1;
        match self.timer.read() {
            Some(raw) => self.anchor = raw,
            None => {
                self.counts.failed_reads += 1;
                // Keep the clock where it stopped.
                self.anchor = 0;
                self.banked = self.last;
            }
        }
        self.last = self.banked;
    }

    fn find_child(&self, parent: u32, name: &str) -> Option<u32> {
        let mut child = self.nodes[parent as usize].first_child;
        while child != NONE {
            let node = &self.nodes[child as usize];
            let n: &str = &node.name;
            if (n.as_ptr() == name.as_ptr() && n.len() == name.len()) || n == name {
                return Some(child);
            }
            child = node.next_sibling;
        }
        None
    }

    fn add_node(&mut self, parent: u32, name: Name) -> u32 {
        let index = self.nodes.len() as u32;
        let mut recursive = false;
        let mut ancestor = parent;
        while ancestor != 0 && ancestor != NONE {
            let a = &self.nodes[ancestor as usize];
            if a.name == name {
                recursive = true;
                break;
            }
            ancestor = a.parent;
        }
        self.counts.created += 1;
        let p = &mut self.nodes[parent as usize];
        let next_sibling = p.first_child;
        p.first_child = index;
        self.nodes.push(Node {
            name,
            parent,
            first_child: NONE,
            next_sibling,
            calls: 0,
            inclusive: 0,
            exclusive: 0,
            open: 0,
            recursive,
        });
        index
    }

    /// Nodes made for scopes: the root and the overflow bucket not counted.
    fn scope_nodes(&self) -> usize {
        self.nodes.len() - 1 - usize::from(self.overflow != NONE)
    }

    fn overflow_node(&mut self) -> u32 {
        if self.overflow == NONE {
            self.overflow = self.add_node(0, Cow::Borrowed(OVERFLOW));
        }
        self.overflow
    }

    /// Enters scope `name`: bookkeeping first, the timer read last, so that
    /// the bookkeeping is the parent's (taken off as overhead), not the
    /// scope's.
    #[inline(never)]
    pub(crate) fn enter(&mut self, name: Name) -> Token {
        let (parent, depth) = match self.stack.last_mut() {
            Some(top) if top.node == self.overflow => {
                // Inside the bucket: counted there, not timed.
                top.nested += 1;
                let seq = top.seq;
                self.nodes[self.overflow as usize].calls += 1;
                self.counts.nested += 1;
                return Token {
                    profile: self.id,
                    seq,
                    nested: true,
                };
            }
            Some(top) => (top.node, self.stack.len()),
            None => (0, 0),
        };
        let node = if depth >= self.max_depth {
            self.counts.overflow_depth += 1;
            self.overflow_node()
        } else {
            match self.find_child(parent, &name) {
                Some(node) => node,
                None if self.scope_nodes() < self.max_nodes => self.add_node(parent, name),
                None => {
                    self.counts.overflow_nodes += 1;
                    self.overflow_node()
                }
            }
        };
        let n = &mut self.nodes[node as usize];
        n.calls += 1;
        n.open += 1;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.stack.push(Frame {
            node,
            seq,
            start: 0,
            pairs: self.counts.pairs,
            resumes: self.counts.resumes,
            created: self.counts.created,
            children: 0,
            nested: 0,
        });
        let start = self.now();
        if let Some(top) = self.stack.last_mut() {
            top.start = start;
        }
        Token {
            profile: self.id,
            seq,
            nested: false,
        }
    }

    /// Leaves the scope of `token`: the timer read first. Scopes entered
    /// after it and still open are closed with it (left out of order).
    #[inline(never)]
    pub(crate) fn exit(&mut self, token: Token) {
        if token.nested {
            match self.stack.last_mut() {
                Some(top) if top.seq == token.seq && top.nested > 0 => top.nested -= 1,
                _ => self.counts.stray_exits += 1,
            }
            return;
        }
        let end = self.now();
        let Some(pos) = self.stack.iter().rposition(|f| f.seq == token.seq) else {
            self.counts.stray_exits += 1;
            return;
        };
        while self.stack.len() > pos + 1 {
            self.counts.unclosed += 1;
            self.close(end);
        }
        self.close(end);
    }

    /// Pops the top frame, ending at virtual time `end`.
    fn close(&mut self, end: i64) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let c = self.calibration;
        let inner_pairs = (self.counts.pairs - frame.pairs) as i64;
        let resumes = (self.counts.resumes - frame.resumes) as i64;
        let created = (self.counts.created - frame.created) as i64;
        let inclusive = end.wrapping_sub(frame.start)
            - c.base
            - inner_pairs * c.pair
            - resumes * c.resume
            - created * c.create;
        self.counts.pairs += 1;
        let node = &mut self.nodes[frame.node as usize];
        node.open -= 1;
        if node.open == 0 {
            node.inclusive += inclusive;
        }
        node.exclusive += inclusive - frame.children;
        match self.stack.last_mut() {
            Some(parent) => parent.children += inclusive,
            None => self.root_children += inclusive,
        }
    }

    /// Closes what is still open at the last time read (the end of the
    /// task's last poll, or of the last scope event).
    pub(crate) fn close_all(&mut self) {
        let end = self.last;
        while !self.stack.is_empty() {
            self.counts.unclosed += 1;
            self.close(end);
        }
    }

    /// The profiler's own amount: the calibrated cost of every timed pair,
    /// of every resumption with scopes open and of every node made.
    pub(crate) fn overhead(&self) -> i64 {
        let c = self.calibration;
        self.counts.pairs as i64 * c.pair
            + self.counts.resumes as i64 * c.resume
            + self.counts.created as i64 * c.create
    }

    /// The calibrated costs in use.
    pub(crate) fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// The tree as record nodes, root first, every parent before its
    /// children (nodes are made in that order). `total` is the region's
    /// amount: the root's inclusive; its exclusive is what is left of it
    /// after the top-level scopes and the profiler's overhead.
    pub(crate) fn nodes(&self, root_name: &str, total: i64) -> Vec<ProfileNode> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut node = ProfileNode::default();
                if i == 0 {
                    node.name = root_name.to_string();
                    node.calls = 1;
                    node.inclusive = total;
                    node.exclusive = total - self.root_children - self.overhead();
                } else {
                    node.name = n.name.to_string();
                    node.parent = Some(n.parent);
                    node.calls = n.calls;
                    node.inclusive = n.inclusive;
                    node.exclusive = n.exclusive;
                    node.recursive = n.recursive;
                }
                node
            })
            .collect()
    }

    /// The raw inclusive amount of the first child of the root named
    /// `name` (calibration).
    pub(crate) fn top_inclusive(&self, name: &str) -> Option<i64> {
        self.find_child(0, name)
            .map(|n| self.nodes[n as usize].inclusive)
    }

    /// Whether `token` was made by this profile.
    #[inline]
    pub(crate) fn owns(&self, token: &Token) -> bool {
        token.profile == self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(max_depth: usize, max_nodes: usize) -> Profile {
        // The wall clock: real reads, exact bookkeeping.
        Profile::new(
            1,
            Timer::WallTime,
            Timer::WallTime,
            None,
            Calibration::ZERO,
            max_depth,
            max_nodes,
        )
    }

    fn calls(p: &Profile, root: &str) -> Vec<(String, Option<u32>, u64, bool)> {
        p.nodes(root, 0)
            .into_iter()
            .map(|n| (n.name, n.parent, n.calls, n.recursive))
            .collect()
    }

    #[test]
    fn paths_calls_and_recursion_flags() {
        let mut p = profile(64, 64);
        for _ in 0..3 {
            let a = p.enter("a".into());
            let b = p.enter("b".into());
            let a2 = p.enter("a".into());
            p.exit(a2);
            p.exit(b);
            p.exit(a);
        }
        let c = p.enter("c".into());
        p.exit(c);
        assert_eq!(
            calls(&p, "root"),
            vec![
                ("root".into(), None, 1, false),
                ("a".into(), Some(0), 3, false),
                ("b".into(), Some(1), 3, false),
                ("a".into(), Some(2), 3, true),
                ("c".into(), Some(0), 1, false),
            ]
        );
        assert_eq!(p.counts.pairs, 10);
        assert!(!p.has_open());
        let nodes = p.nodes("root", 0);
        // Exclusive amounts add up to the top-level inclusive amounts.
        let sum: i64 = nodes[1..].iter().map(|n| n.exclusive).sum();
        assert_eq!(sum, nodes[1].inclusive + nodes[4].inclusive);
    }

    #[test]
    fn caps_send_the_rest_to_the_overflow_bucket_counted() {
        let mut p = profile(2, 3);
        let a = p.enter("a".into());
        let b = p.enter("b".into());
        // Depth 2 reached: these three go to the bucket, the first timed,
        // the two inside it counted only.
        let c = p.enter("c".into());
        let d = p.enter("d".into());
        let e = p.enter("e".into());
        p.exit(e);
        p.exit(d);
        p.exit(c);
        p.exit(b);
        // Node cap (3 scope nodes: a, b and f) reached by g.
        let f = p.enter("f".into());
        p.exit(f);
        let g = p.enter("g".into());
        p.exit(g);
        p.exit(a);
        assert_eq!(p.counts.overflow_depth, 1);
        assert_eq!(p.counts.overflow_nodes, 1);
        assert_eq!(p.counts.nested, 2);
        assert_eq!(p.counts.pairs, 5);
        assert_eq!(
            calls(&p, "r"),
            vec![
                ("r".into(), None, 1, false),
                ("a".into(), Some(0), 1, false),
                ("b".into(), Some(1), 1, false),
                (OVERFLOW.into(), Some(0), 4, false),
                ("f".into(), Some(1), 1, false),
            ]
        );
    }

    #[test]
    fn out_of_order_and_stray_exits_are_counted_not_fatal() {
        let mut p = profile(8, 8);
        let a = p.enter("a".into());
        let b = p.enter("b".into());
        p.exit(a); // closes b too
        p.exit(b); // gone
        let other = Token {
            profile: 99,
            seq: 1,
            nested: false,
        };
        assert!(!p.owns(&other));
        let c = p.enter("c".into());
        p.close_all();
        let _ = c;
        assert_eq!(p.counts.unclosed, 2);
        assert_eq!(p.counts.stray_exits, 1);
        assert!(!p.has_open());
    }
}
