//! The `top` answer: scopes by their share of everything measured, with
//! calls per request, cost per call, callers and callees, and what a share
//! amounts to in servers ([`TopTable`], from [`Calls::top`]).

use std::io::{self, Write};
use std::str::FromStr;

use super::calls::{CallEdge, Calls, Function};
use crate::report::grid::{Align, Cell, Grid};
use crate::report::metric::Metric;
use crate::report::output::{
    Render, TextStyle, csv_text, cut, escape_name, human, json_int, json_num, json_string,
    json_uint, wrap,
};

/// A figure of a sum that may have saturated, as the text and CSV write it:
/// exact, or `>=N` (`<=N` for a negative bound) when it stopped at a bound,
/// as `dynostats report`'s table writes a saturated total.
fn bound(x: impl std::fmt::Display, negative: bool, saturated: bool) -> String {
    match (saturated, negative) {
        (false, _) => x.to_string(),
        (true, false) => format!(">={x}"),
        (true, true) => format!("<={x}"),
    }
}

/// What [`TopTable`] sorts its rows by, largest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopSort {
    /// Exclusive amount: where the instructions are spent.
    #[default]
    Exclusive,
    /// Inclusive amount, a recursive call counted once.
    Inclusive,
    /// Weighted calls.
    Calls,
}

impl FromStr for TopSort {
    type Err = String;

    /// Parses `exclusive`, `inclusive` or `calls`.
    fn from_str(s: &str) -> Result<TopSort, String> {
        match s {
            "exclusive" => Ok(TopSort::Exclusive),
            "inclusive" => Ok(TopSort::Inclusive),
            "calls" => Ok(TopSort::Calls),
            _ => Err(format!(
                "unknown order {s:?}: expected exclusive, inclusive or calls"
            )),
        }
    }
}

#[derive(Clone, Debug)]
enum View {
    Functions,
    Callers(String),
    Callees(String),
}

/// The rows of `dynostats top`: text, JSON or CSV of one timer's summed
/// call trees ([`Calls::top`]).
///
/// Shares are of everything measured in the profiled regions and requests
/// ([`Calls::total`]: weight x the root's inclusive amount, summed); a
/// server count (`--fleet N`) is the share times N, which holds when the
/// profiled requests are what the servers spend their CPU on.
///
/// Calls per request divide a row's weighted calls by
/// [`Calls::events`]: the requests (summed weights) of every endpoint
/// summed in these call trees, not only of the endpoints under which the
/// scope is called. Sum the trees of one endpoint
/// ([`ProfilesBuilder::endpoint`](super::ProfilesBuilder::endpoint),
/// `--endpoint NAME`) for its calls per request.
#[derive(Clone, Debug)]
#[must_use]
pub struct TopTable<'a> {
    calls: &'a Calls,
    view: View,
    sort: TopSort,
    limit: Option<usize>,
    fleet: Option<u64>,
    name_width: Option<usize>,
    note: Option<String>,
}

impl Calls {
    /// The top table of these call trees: every scope and endpoint,
    /// largest exclusive amount first.
    pub fn top(&self) -> TopTable<'_> {
        TopTable {
            calls: self,
            view: View::Functions,
            sort: TopSort::default(),
            limit: None,
            fleet: None,
            name_width: Some(60),
            note: None,
        }
    }
}

/// One row of a [`TopTable`]: a function or an edge.
struct Row {
    name: String,
    kind: &'static str,
    calls: u128,
    inclusive: i128,
    exclusive: Option<i128>,
    /// The edge's share of the drilled-into scope's inclusive amount.
    of_scope: Option<f64>,
    /// A figure of the row reached a bound ([`Function::saturated`]).
    saturated: bool,
}

impl<'a> TopTable<'a> {
    /// Row order.
    pub fn sort(mut self, sort: TopSort) -> Self {
        self.sort = sort;
        self
    }

    /// At most `n` rows (`None`: all).
    pub fn limit(mut self, n: Option<usize>) -> Self {
        self.limit = n;
        self
    }

    /// Adds how many of `servers` servers each row's inclusive and
    /// exclusive shares amount to.
    pub fn fleet(mut self, servers: Option<u64>) -> Self {
        self.fleet = servers;
        self
    }

    /// Cuts names in the text table to `columns` (`None`: whole).
    pub fn name_width(mut self, columns: Option<usize>) -> Self {
        self.name_width = columns;
        self
    }

    /// A line shown above the text table and as `note` in JSON (e.g. why
    /// the amounts are CPU time, not instructions).
    pub fn note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// Instead of functions: the callers of the scope `name`, each edge
    /// with its share.
    pub fn callers(mut self, name: &str) -> Self {
        self.view = View::Callers(name.to_string());
        self
    }

    /// Instead of functions: what the scope (or endpoint) `name` calls.
    pub fn callees(mut self, name: &str) -> Self {
        self.view = View::Callees(name.to_string());
        self
    }

    fn metric(&self) -> Metric {
        self.calls.metric().unwrap_or(Metric::Instructions)
    }

    fn rows(&self) -> Vec<Row> {
        let edge_row = |e: CallEdge, callers: bool, of: i128| Row {
            name: if callers { e.caller } else { e.callee },
            kind: if callers && e.caller_root {
                "endpoint"
            } else {
                "scope"
            },
            calls: e.calls,
            inclusive: e.inclusive,
            exclusive: None,
            of_scope: (of != 0).then(|| 100.0 * e.inclusive as f64 / of as f64),
            saturated: e.saturated,
        };
        let of = |name: &str| -> i128 {
            self.calls
                .function(name)
                .map(|f| f.inclusive)
                .or_else(|| {
                    self.calls
                        .functions()
                        .into_iter()
                        .find(|f| f.root && f.name == name)
                        .map(|f| f.inclusive)
                })
                .unwrap_or(0)
        };
        let mut rows: Vec<Row> = match &self.view {
            View::Functions => self
                .calls
                .functions()
                .into_iter()
                .map(|f: Function| Row {
                    kind: if f.root { "endpoint" } else { "scope" },
                    name: f.name,
                    calls: f.calls,
                    inclusive: f.inclusive,
                    exclusive: Some(f.exclusive),
                    of_scope: None,
                    saturated: f.saturated,
                })
                .collect(),
            View::Callers(name) => {
                let of = of(name);
                self.calls
                    .callers(name)
                    .into_iter()
                    .map(|e| edge_row(e, true, of))
                    .collect()
            }
            View::Callees(name) => {
                let of = of(name);
                self.calls
                    .callees(name)
                    .into_iter()
                    .map(|e| edge_row(e, false, of))
                    .collect()
            }
        };
        // Stable: ties keep the library's order (by name).
        match self.sort {
            TopSort::Exclusive => {
                rows.sort_by_key(|r| std::cmp::Reverse(r.exclusive.unwrap_or(r.inclusive)))
            }
            TopSort::Inclusive => rows.sort_by_key(|r| std::cmp::Reverse(r.inclusive)),
            TopSort::Calls => rows.sort_by_key(|r| std::cmp::Reverse(r.calls)),
        }
        if let Some(n) = self.limit {
            rows.truncate(n);
        }
        rows
    }

    fn per_request(&self, calls: u128) -> f64 {
        if self.calls.events() == 0 {
            0.0
        } else {
            calls as f64 / self.calls.events() as f64
        }
    }

    fn per_call(calls: u128, amount: i128) -> Option<f64> {
        (calls > 0).then(|| amount as f64 / calls as f64)
    }

    fn servers(&self, amount: i128) -> Option<f64> {
        self.fleet
            .map(|n| n as f64 * self.calls.share(amount) / 100.0)
    }

    /// The line the text table shows when a sum saturated.
    const SATURATED: &'static str = "WARNING: sums reached the bounds of 128-bit integers and \
        stopped there (saturated): the total, and the rows marked (saturated), are bounds, \
        not exact; their shares and per-request figures are not exact either";

    fn title(&self) -> String {
        let what = match &self.view {
            View::Functions => "scopes".to_string(),
            View::Callers(n) => format!("callers of {}", escape_name(n)),
            View::Callees(n) => format!("callees of {}", escape_name(n)),
        };
        format!(
            "top {what} by share of all {} measured ({} profile records standing for {} \
             events; weighted; the profiler's own {:.3}%)",
            self.calls.timer(),
            self.calls.records(),
            self.calls.events(),
            self.calls.share(self.calls.overhead())
        )
    }
}

impl std::fmt::Display for TopTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::new();
        self.write_text(&mut out).map_err(|_| std::fmt::Error)?;
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl Render for TopTable<'_> {
    /// Writes the text table; when sums saturated, a warning line under
    /// the title, and `(saturated)` after the name of each row whose
    /// figures did.
    fn write_text<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.write_text_styled(&TextStyle::default(), out)
    }

    /// The text table fitted to `style`'s width as `report`'s is: the
    /// lines above it wrapped at spaces, long names cut with `…` first,
    /// then the columns after the shares moved to a further block of the
    /// same rows.
    fn write_text_styled<W: Write>(&self, style: &TextStyle, out: &mut W) -> io::Result<()> {
        let metric = self.metric();
        let title = self.title();
        let lines = self
            .note
            .iter()
            .map(String::as_str)
            .chain([title.as_str()])
            .chain(self.calls.saturated().then_some(Self::SATURATED));
        for line in lines {
            for part in wrap(line, style.width, 2) {
                writeln!(out, "{part}")?;
            }
        }
        let rows = self.rows();
        let edges = !matches!(self.view, View::Functions);
        // Figures sit in columns at least this wide, as they always have.
        let number = |s: String| Cell::from(format!("{s:>10}"));
        let mut grid = Grid::new();
        grid.column("name", Align::Left).key().shrink_to(16);
        grid.column(format!("{:>10}", "inclusive"), Align::Right)
            .first();
        let second = if edges { "of scope" } else { "exclusive" };
        grid.column(format!("{second:>10}"), Align::Right).first();
        grid.column(format!("{:>10}", "calls/req"), Align::Right);
        grid.column(format!("{:>10}", "per call"), Align::Right);
        if let Some(n) = self.fleet {
            grid.column(format!("{:>18}", format!("servers of {n}")), Align::Right);
        }
        for r in &rows {
            let name = escape_name(&r.name);
            let name = if r.kind == "endpoint" && !edges {
                format!("{name} (own)")
            } else {
                name
            };
            let name = match self.name_width {
                Some(w) => cut(&name, w),
                None => name,
            };
            let name = if r.saturated {
                format!("{name} (saturated)")
            } else {
                name
            };
            let second = match (edges, r.exclusive, r.of_scope) {
                (true, _, Some(of)) => format!("{of:.1}%"),
                (false, Some(x), _) => format!("{:.3}%", self.calls.share(x)),
                _ => "-".to_string(),
            };
            let mut cells = vec![
                Cell::from(name),
                number(format!("{:.3}%", self.calls.share(r.inclusive))),
                number(second),
                number(format!("{:.3}", self.per_request(r.calls))),
                number(
                    Self::per_call(r.calls, r.inclusive)
                        .map_or("-".to_string(), |x| human(metric, x)),
                ),
            ];
            if let Some(s) = self.servers(r.inclusive) {
                cells.push(Cell::from(format!("{:>18}", format!("~{s:.1}"))));
            }
            grid.row(cells);
        }
        grid.write(out, style)?;
        if rows.is_empty() {
            writeln!(out, "(no rows)")?;
        }
        Ok(())
    }

    /// Writes the rows as one JSON object: the timer, totals, and
    /// `rows` (every figure, shares in percent). When sums saturated
    /// ([`Calls::saturated`]), `"saturated":true` at the top and in each
    /// row whose figures did.
    fn write_json<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let c = self.calls;
        write!(
            out,
            "{{\"timer\":{},\"records\":{},\"events\":{},\"total\":{},\"overhead\":{}",
            json_string(c.timer()),
            c.records(),
            json_uint(c.events()),
            json_int(c.total()),
            json_int(c.overhead())
        )?;
        if c.saturated() {
            write!(out, ",\"saturated\":true")?;
        }
        if let Some(note) = &self.note {
            write!(out, ",\"note\":{}", json_string(note))?;
        }
        match &self.view {
            View::Functions => {}
            View::Callers(n) => write!(out, ",\"callers_of\":{}", json_string(n))?,
            View::Callees(n) => write!(out, ",\"callees_of\":{}", json_string(n))?,
        }
        if let Some(n) = self.fleet {
            write!(out, ",\"fleet\":{n}")?;
        }
        write!(out, ",\"rows\":[")?;
        for (i, r) in self.rows().iter().enumerate() {
            write!(
                out,
                "{}\n{{\"name\":{},\"kind\":\"{}\",\"calls\":{},\"inclusive\":{},\
                 \"inclusive_share\":{},\"calls_per_request\":{},\"per_call\":{}",
                if i > 0 { "," } else { "" },
                json_string(&r.name),
                r.kind,
                json_uint(r.calls),
                json_int(r.inclusive),
                json_num(Some(c.share(r.inclusive))),
                json_num(Some(self.per_request(r.calls))),
                json_num(Self::per_call(r.calls, r.inclusive)),
            )?;
            if let Some(x) = r.exclusive {
                write!(
                    out,
                    ",\"exclusive\":{},\"exclusive_share\":{}",
                    json_int(x),
                    json_num(Some(c.share(x)))
                )?;
            }
            if let Some(of) = r.of_scope {
                write!(out, ",\"share_of_scope\":{}", json_num(Some(of)))?;
            }
            if let Some(s) = self.servers(r.inclusive) {
                write!(out, ",\"servers_inclusive\":{}", json_num(Some(s)))?;
            }
            if let Some(s) = r.exclusive.and_then(|x| self.servers(x)) {
                write!(out, ",\"servers_exclusive\":{}", json_num(Some(s)))?;
            }
            if r.saturated {
                write!(out, ",\"saturated\":true")?;
            }
            write!(out, "}}")?;
        }
        writeln!(out, "\n]}}")
    }

    /// Writes the rows as CSV with a header line. The calls, inclusive and
    /// exclusive amounts of a row whose sums saturated are written `>=N`
    /// (`<=N` at the negative bound).
    fn write_csv<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let c = self.calls;
        let fleet = self.fleet.is_some();
        write!(
            out,
            "timer,name,kind,calls,inclusive,inclusive_share,exclusive,exclusive_share,\
             share_of_scope,calls_per_request,per_call"
        )?;
        if fleet {
            write!(out, ",servers_inclusive,servers_exclusive")?;
        }
        writeln!(out)?;
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x}"));
        for r in self.rows() {
            write!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                c.timer(),
                csv_text(&r.name),
                r.kind,
                bound(r.calls, false, r.saturated),
                bound(r.inclusive, r.inclusive < 0, r.saturated),
                c.share(r.inclusive),
                r.exclusive
                    .map_or(String::new(), |x| bound(x, x < 0, r.saturated)),
                opt(r.exclusive.map(|x| c.share(x))),
                opt(r.of_scope),
                self.per_request(r.calls),
                opt(Self::per_call(r.calls, r.inclusive)),
            )?;
            if fleet {
                write!(
                    out,
                    ",{},{}",
                    opt(self.servers(r.inclusive)),
                    opt(r.exclusive.and_then(|x| self.servers(x)))
                )?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}
