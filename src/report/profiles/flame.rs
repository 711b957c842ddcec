//! What a flame graph of summed call trees says around its frames
//! ([`FlameLabels`]: a title with the unit and the input, subtitle lines
//! that fit the image, the root frame's name), and a differential flame
//! graph whose colours follow the data's spread ([`FlameDiff`]): red and
//! blue only where a frame's change lies outside its noise.
//!
//! The SVG itself is drawn by a flame graph tool (inferno, as `dynostats
//! flamegraph` and the demo do); [`FlameLabels::finish_svg`] and
//! [`FlameDiff::finish_svg`] then finish what such a tool cannot say: a
//! subtitle on several lines, the root's name, colours by significance.
//!
//! # When a change is coloured
//!
//! A frame's own (exclusive) amount summed over the records is
//! `T = Σ wᵢ xᵢ`, record `i` standing for `wᵢ` events with `xᵢ` on that
//! path (0 when it never entered it). Its variance is estimated as in
//! `compare` (the linearised estimate of `crate::report::stats`):
//! `V = n/(n-1) · Σ wᵢ² (xᵢ - m)²` with `m = T / Σw`, from sums kept per
//! path. The change `D = T_cand - k · T_base` (`k` = 1, or the ratio of
//! the totals with normalizing) has the variance `V_cand + k² V_base`,
//! and Student's t with Welch–Satterthwaite degrees of freedom gives its
//! two-sided p-value. Holm's correction over every changed frame keeps the
//! chance that any frame of two samples of the same code is coloured at
//! `1 - confidence`. Frames that pass are red (grew) or blue (shrank),
//! their intensity relative to the largest significant change; the others
//! are grey. Sums made elsewhere (a database) carry no per-record spread:
//! then nothing is judged, the colours are the tool's (relative to the
//! largest change), and the subtitle says so.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use super::Profiles;
use super::calls::{Calls, NONE};
use crate::profile::folded_frame;
use crate::record::grouped;
use crate::report::metric::Metric;
use crate::report::output::{cut, escape_name, width};
use crate::report::stats::t_sf;

/// The words of a flame graph ([`Profiles::flame_labels`]): what a tool
/// takes as title, subtitle and unit, and what [`FlameLabels::finish_svg`]
/// adds to its SVG.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlameLabels {
    /// The metric, `inclusive` (a frame is as wide as its inclusive
    /// amount) and the input: `instructions, inclusive — requests.msgpack`.
    pub title: String,
    /// The lines under the title, the unit's first (`amounts are CPU time
    /// (cpu_ns), not instructions: ...`); after [`FlameLabels::fit`], each
    /// short enough for the image.
    pub subtitle: Vec<String>,
    /// The name of the root frame, under every endpoint and region.
    pub root: String,
    /// The unit the frames' tooltips name: the timer, `x 10^k` when the
    /// amounts were scaled.
    pub count_name: String,
    /// The subtitle's font size in pixels, set by [`FlameLabels::fit`].
    font_size: usize,
}

/// Words for the amounts of `calls`: `instructions`, `CPU time (cpu_ns)`
/// ...
pub(super) fn timer_words(calls: &Calls) -> String {
    let words = match calls.metric() {
        Some(Metric::Instructions) => return "instructions".to_string(),
        Some(Metric::CpuNs) => "CPU time",
        Some(Metric::WallNs) => "wall time",
        Some(Metric::Cycles) => "CPU cycles",
        Some(Metric::RssChange) => "RSS change",
        _ => "another timer",
    };
    format!("{words} ({})", escape_name(calls.timer()))
}

/// `10^k` for a power of ten `scale`.
fn power_of_ten(scale: u128) -> String {
    format!("10^{}", scale.max(1).ilog10())
}

impl Profiles {
    /// The words of a flame graph of `calls` (one of these profiles'
    /// timers) read from `source` (file names, or a database's selection),
    /// its amounts divided by `scale` ([`Calls::folded_scale`]; 1 when
    /// exact).
    ///
    /// ```
    /// use dynostats::report::profiles::Profiles;
    /// # use dynostats::record::{Detail, ProfileNode};
    /// # use dynostats::{Record, RecordKind};
    /// # let mut record = Record::new(RecordKind::Profile, "/checkout");
    /// # record.weight = 10;
    /// # let mut detail = Detail::default();
    /// # detail.timer = Some("cpu_ns".into());
    /// # let mut root = ProfileNode::default();
    /// # root.name = "/checkout".into();
    /// # root.inclusive = 100;
    /// # root.exclusive = 100;
    /// # detail.nodes = vec![root];
    /// # record.detail = Some(Box::new(detail));
    /// let mut profiles = Profiles::new();
    /// profiles.add(&record);
    /// let calls = profiles.calls(None).unwrap();
    /// let mut labels = profiles.flame_labels(calls, "requests.msgpack", 1);
    /// assert_eq!(labels.title, "CPU time (cpu_ns), inclusive — requests.msgpack");
    /// assert!(labels.subtitle[0].starts_with("amounts are CPU time (cpu_ns), not instructions"));
    /// labels.fit(400, 12, 0.59);
    /// assert!(labels.subtitle.iter().all(|l| l.chars().count() <= 53));
    /// ```
    pub fn flame_labels(&self, calls: &Calls, source: &str, scale: u128) -> FlameLabels {
        let words = timer_words(calls);
        let mut unit = self
            .timer_note(calls)
            .unwrap_or_else(|| "amounts are instructions retired (user space)".to_string());
        if scale > 1 {
            unit.push_str(&format!(
                "; amounts in units of {} {} (divided so that flame graph tools can add them \
                 up in 64 bits)",
                power_of_ten(scale),
                escape_name(calls.timer())
            ));
        }
        let count_name = if scale > 1 {
            format!("x {} {}", power_of_ten(scale), calls.timer())
        } else {
            calls.timer().to_string()
        };
        FlameLabels {
            title: format!("{words}, inclusive — {}", escape_name(source)),
            subtitle: vec![
                unit,
                format!(
                    "a frame is as wide as its inclusive amount (with what it calls); {} profile \
                     records standing for {} events, weighted",
                    grouped(calls.records()),
                    grouped(calls.events())
                ),
            ],
            root: match &self.endpoint {
                Some(endpoint) => format!("only {}", escape_name(endpoint)),
                None => "all endpoints and regions".to_string(),
            },
            count_name,
            font_size: 12,
        }
    }
}

impl FlameLabels {
    /// The words of a differential flame graph: the title names the
    /// candidate (`cand`) against the base (`base`), and the subtitle what
    /// the colours and the tooltips' percentages are ([`FlameDiff`]).
    pub fn differential(mut self, cand: &str, base: &str, diff: &FlameDiff) -> FlameLabels {
        if let Some((words, _)) = self.title.split_once(" — ") {
            self.title = format!(
                "{words} — {} against {}",
                escape_name(cand),
                escape_name(base)
            );
        }
        let mut colours = if diff.judged() {
            format!(
                "red grew, blue shrank beyond noise ({:.0}% confidence, Holm over {} changed \
                 frames); grey: within noise",
                diff.confidence * 100.0,
                diff.tested
            )
        } else {
            "red grew, blue shrank, relative to the largest change, not judged against \
             noise (no per-record spread: sums from a database, or under 2 records a side)"
                .to_string()
        };
        colours.push_str(
            "; a tooltip's +x% is the frame's own (exclusive) change as a share of the \
             whole graph, then against its own base amount",
        );
        if diff.normalized {
            colours.push_str("; the base is scaled to the candidate's total (shape, not growth)");
        }
        self.subtitle.insert(1, colours);
        self
    }

    /// Makes the words fit an image `image_width` pixels wide whose
    /// subtitle font is `font_size` pixels with characters `font_width`
    /// of it wide (monospace; the title's font is 5 pixels larger, as
    /// inferno draws it): subtitle lines are wrapped at spaces, the title
    /// cut with `…`.
    pub fn fit(&mut self, image_width: usize, font_size: usize, font_width: f64) {
        self.font_size = font_size.max(1);
        let room = image_width.saturating_sub(2 * PAD) as f64;
        // 5% to spare: a renderer's monospace font may be a little wider
        // than the tool's estimate (DejaVu Sans Mono's is 0.602).
        let columns =
            |size: usize| ((0.95 * room / (size as f64 * font_width)).floor() as usize).max(8);
        self.title = cut(&self.title, columns(self.font_size + 5));
        let columns = columns(self.font_size);
        self.subtitle = self
            .subtitle
            .iter()
            .flat_map(|line| wrap(line, columns))
            .collect();
    }

    /// The SVG `svg`, drawn by inferno (0.12) with [`FlameLabels::title`],
    /// the first subtitle line and [`FlameLabels::count_name`], finished:
    /// the further subtitle lines under the first (the picture moved down
    /// to make room) and the root frame named [`FlameLabels::root`]. An
    /// error names what of inferno's layout was not found (the SVG is then
    /// best written as drawn).
    pub fn finish_svg(&self, svg: &str) -> Result<String, String> {
        let mut svg = svg.to_string();
        let line = (self.font_size + 4) as f64;
        let extra = line * self.subtitle.len().saturating_sub(1) as f64;
        if extra > 0.0 {
            let (start, end) =
                element(&svg, "<text id=\"subtitle\"", "</text>").ok_or("no subtitle text")?;
            let y = attr(&svg[start..end], "y").ok_or("no subtitle y")?;
            let mut lines = String::new();
            for (i, text) in self.subtitle.iter().enumerate().skip(1) {
                let _ = write!(
                    lines,
                    "<text class=\"subtitle\" text-anchor=\"middle\" x=\"50.0000%\" \
                     y=\"{:.2}\">{}</text>",
                    y + line * i as f64,
                    xml(text)
                );
            }
            svg.insert_str(end + "</text>".len(), &lines);
            let shifts: [(&str, &str); 4] = [
                ("<svg version=\"1.1\"", "height"),
                ("<rect x=\"0\" y=\"0\" width=\"100%\"", "height"),
                ("<text id=\"details\"", "y"),
                ("<text id=\"matched\"", "y"),
            ];
            for (tag, name) in shifts {
                shift_attr(&mut svg, tag, name, extra)?;
            }
            let (start, end) =
                element(&svg, "<svg version=\"1.1\"", ">").ok_or("no svg element")?;
            let tag = &svg[start..end];
            let height = attr(tag, "height").ok_or("no height")?;
            let width = attr(tag, "width").ok_or("no width")?;
            let fixed =
                set_attr(tag, "viewBox", &format!("0 0 {width} {height}")).ok_or("no viewBox")?;
            svg.replace_range(start..end, &fixed);
            let frames = "<svg id=\"frames\" ";
            let at = svg.find(frames).ok_or("no frames element")?;
            svg.insert_str(at + frames.len(), &format!("y=\"{extra:.0}\" "));
        }
        // The root frame: inferno names it "all" in its tooltip and leaves
        // its text empty.
        let root = "<g><title>all (";
        let at = svg.find(root).ok_or("no root frame")?;
        let name = xml(&self.root);
        svg.replace_range(at..at + root.len(), &format!("<g><title>{name} ("));
        let end = at + svg[at..].find("</g>").ok_or("no end of the root frame")?;
        if let Some(empty) = svg[at..end].find("></text>") {
            svg.insert_str(at + empty + 1, &name);
        }
        Ok(svg)
    }
}

/// inferno's horizontal padding, each side.
const PAD: usize = 10;

/// `line` cut at spaces into lines of at most `columns` columns (a word
/// longer than that on its own line, cut).
fn wrap(line: &str, columns: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in line.split(' ') {
        if !current.is_empty() && width(&current) + 1 + width(word) > columns {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        while width(&current) > columns {
            let head: String = current.chars().take(columns).collect();
            let rest: String = current.chars().skip(columns).collect();
            lines.push(head);
            current = rest;
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// `s` escaped for XML text and attributes.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The byte range of the first element starting with `start`, up to and
/// excluding `end`.
fn element(svg: &str, start: &str, end: &str) -> Option<(usize, usize)> {
    let from = svg.find(start)?;
    let to = from + svg[from..].find(end)?;
    Some((from, to))
}

/// The number in attribute `name` of the start tag `tag`.
fn attr(tag: &str, name: &str) -> Option<f64> {
    attr_text(tag, name)?.parse().ok()
}

fn attr_text<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    let to = from + tag[from..].find('"')?;
    Some(&tag[from..to])
}

/// `tag` with attribute `name` set to `value`.
fn set_attr(tag: &str, name: &str, value: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    let to = from + tag[from..].find('"')?;
    Some(format!("{}{value}{}", &tag[..from], &tag[to..]))
}

/// Adds `by` to the number in attribute `name` of the first element
/// starting with `tag`.
fn shift_attr(svg: &mut String, tag: &str, name: &str, by: f64) -> Result<(), String> {
    let (start, end) = element(svg, tag, ">").ok_or_else(|| format!("no {tag}"))?;
    let old = &svg[start..end];
    let value = attr(old, name).ok_or_else(|| format!("no {name} in {tag}"))?;
    let fixed = set_attr(old, name, &format!("{:.2}", value + by))
        .ok_or_else(|| format!("no {name} in {tag}"))?;
    svg.replace_range(start..end, &fixed);
    Ok(())
}

/// What the data say of one frame's change ([`FlameDiff`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Grew beyond its noise.
    Grew,
    /// Shrank beyond its noise.
    Shrank,
    /// Changed by less than its noise.
    WithinNoise,
    /// Not judged: no per-record spread is known.
    NotJudged,
    /// The same amount on both sides.
    Unchanged,
}

/// One stack of a differential flame graph: its amounts as drawn and what
/// the data say of its change.
#[derive(Clone, Debug)]
struct Stack {
    /// The base's amount as drawn (scaled, normalized).
    base: u128,
    /// The candidate's amount as drawn (scaled).
    cand: u128,
    /// The p-value of its change (1 when not judged).
    p: f64,
    verdict: Verdict,
}

/// A differential flame graph's stacks ([`Calls::diff_against`]): the
/// folded pairs `stack BASE CANDIDATE` a tool draws, and per stack whether
/// its change lies beyond its noise (the module's method).
#[derive(Clone, Debug)]
pub struct FlameDiff {
    stacks: Vec<(String, Stack)>,
    confidence: f64,
    normalized: bool,
    tested: usize,
    judged: bool,
}

/// One side's sums of a folded stack: weighted exclusive amount, `Σ w²x`,
/// `Σ w²x²`.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    total: i128,
    sw2_x: f64,
    sw2_x2: f64,
}

impl Calls {
    /// Per folded stack (as [`Calls::write_folded`] names it), the sums
    /// of its paths.
    fn stack_sums(&self) -> HashMap<String, Sums> {
        let mut out: HashMap<String, Sums> = HashMap::new();
        for p in &self.paths {
            let mut names = Vec::new();
            let mut at = Some(p);
            while let Some(node) = at {
                names.push(folded_frame(&self.entries[node.name as usize].name));
                at = (node.parent != NONE).then(|| &self.paths[node.parent as usize]);
            }
            names.reverse();
            let s = out.entry(names.join(";")).or_default();
            s.total = s.total.saturating_add(p.exclusive);
            s.sw2_x += p.sw2_x;
            s.sw2_x2 += p.sw2_x2;
        }
        out
    }

    /// Whether the per-record spread of every path is known: at least 2
    /// records, all added one by one.
    fn spread_known(&self) -> bool {
        self.spread_records >= 2 && self.spread_records == self.records && self.sw2 > 0.0
    }

    /// The variance of a stack's weighted total (the module's method) and
    /// its degrees of freedom.
    fn variance(&self, s: &Sums) -> (f64, f64) {
        let events = self.events() as f64;
        let n = self.spread_records as f64;
        let m = if events > 0.0 {
            s.total as f64 / events
        } else {
            0.0
        };
        let ss = s.sw2_x2 - 2.0 * m * s.sw2_x + m * m * self.sw2;
        let var = ss.max(0.0) * n / (n - 1.0);
        let effective = events * events / self.sw2;
        (var, (effective - 1.0).max(1.0))
    }

    /// The differential flame graph of these call trees (the candidate)
    /// against `base`'s (of the same timer; `None`: the base has no such
    /// call trees, every stack is new): every stack of either side
    /// with its amounts divided by `scale` (as
    /// [`Calls::write_folded_scaled`]); with `normalize`, the base's
    /// amounts scaled so that both totals match (as inferno's
    /// `--normalize`). Each change is judged at `confidence` (0.95: 95%)
    /// as the module's method says.
    pub fn diff_against(
        &self,
        base: Option<&Calls>,
        normalize: bool,
        scale: u128,
        confidence: f64,
    ) -> FlameDiff {
        let scale = scale.max(1);
        let mine = self.stack_sums();
        let theirs = base.map(Calls::stack_sums).unwrap_or_default();
        let drawn = |s: Option<&Sums>| s.map_or(0, |s| s.total.max(0) as u128 / scale);
        let mut keys: Vec<&String> = mine.keys().chain(theirs.keys()).collect();
        keys.sort();
        keys.dedup();
        let sum = |m: &HashMap<String, Sums>| -> u128 { m.values().map(|s| drawn(Some(s))).sum() };
        let (total_cand, total_base) = (sum(&mine), sum(&theirs));
        // The factor the base is drawn with, and the one its sums are
        // judged with (unscaled).
        let k = if normalize && total_base > 0 && total_base != total_cand {
            total_cand as f64 / total_base as f64
        } else {
            1.0
        };
        let base = base.filter(|b| self.spread_known() && b.spread_known());
        let judged = base.is_some();
        let mut stacks = Vec::new();
        for key in keys {
            let (c, b) = (mine.get(key), theirs.get(key));
            let cand = drawn(c);
            let mut base_drawn = drawn(b);
            if k != 1.0 {
                base_drawn = (base_drawn as f64 * k) as u128;
            }
            if cand == 0 && drawn(b) == 0 {
                continue;
            }
            let (c, b) = (
                c.copied().unwrap_or_default(),
                b.copied().unwrap_or_default(),
            );
            let delta = c.total.max(0) as f64 - k * b.total.max(0) as f64;
            let (verdict, p) = if cand == base_drawn {
                (Verdict::Unchanged, 1.0)
            } else if let Some(base) = base {
                let (vc, dfc) = self.variance(&c);
                let (vb, dfb) = base.variance(&b);
                let vb = k * k * vb;
                let var = vc + vb;
                let p = if var <= 0.0 {
                    if delta == 0.0 { 1.0 } else { 0.0 }
                } else {
                    let df = var * var / (vc * vc / dfc + vb * vb / dfb).max(f64::MIN_POSITIVE);
                    (2.0 * t_sf(delta.abs() / var.sqrt(), df)).min(1.0)
                };
                (Verdict::WithinNoise, p)
            } else {
                (Verdict::NotJudged, 1.0)
            };
            stacks.push((
                key.clone(),
                Stack {
                    base: base_drawn,
                    cand,
                    p,
                    verdict,
                },
            ));
        }
        // Holm's step-down over the changed stacks.
        let alpha = 1.0 - confidence;
        let mut order: Vec<usize> = (0..stacks.len())
            .filter(|&i| stacks[i].1.verdict == Verdict::WithinNoise)
            .collect();
        let tested = order.len();
        order.sort_by(|&a, &b| stacks[a].1.p.total_cmp(&stacks[b].1.p));
        for (rank, &i) in order.iter().enumerate() {
            if stacks[i].1.p > alpha / (tested - rank) as f64 {
                break;
            }
            let s = &mut stacks[i].1;
            s.verdict = if s.cand > s.base {
                Verdict::Grew
            } else {
                Verdict::Shrank
            };
        }
        FlameDiff {
            stacks,
            confidence,
            normalized: k != 1.0,
            tested,
            judged,
        }
    }
}

impl FlameDiff {
    /// Writes the folded pairs `stack BASE CANDIDATE`, one line per stack
    /// of either side, sorted: what inferno's differential flame graph
    /// draws.
    pub fn write_folded(&self, out: &mut impl Write) -> io::Result<()> {
        for (stack, s) in &self.stacks {
            writeln!(out, "{stack} {} {}", s.base, s.cand)?;
        }
        Ok(())
    }

    /// Whether the changes were judged against their noise (each side's
    /// per-record spread is known).
    pub fn judged(&self) -> bool {
        self.judged
    }

    /// The verdict on the stack `stack` (folded frames joined with `;`).
    pub fn verdict(&self, stack: &str) -> Option<Verdict> {
        self.stacks
            .iter()
            .find(|(k, _)| k == stack)
            .map(|(_, s)| s.verdict)
    }

    /// Stacks that grew or shrank beyond their noise.
    pub fn significant(&self) -> usize {
        self.stacks
            .iter()
            .filter(|(_, s)| matches!(s.verdict, Verdict::Grew | Verdict::Shrank))
            .count()
    }

    /// The stack each frame of a flame graph drawn from
    /// [`FlameDiff::write_folded`] stands for, keyed by (depth, first
    /// sample): the frames as a flame graph tool lays them out from the
    /// sorted stacks (depth 0 is the root).
    fn layout(&self) -> HashMap<(usize, u128), String> {
        let mut frames = HashMap::new();
        let mut lines: Vec<String> = self
            .stacks
            .iter()
            .map(|(k, s)| format!("{k} {} {}", s.base, s.cand))
            .collect();
        lines.sort_unstable();
        let mut open: Vec<String> = Vec::new();
        let mut time = 0u128;
        for line in &lines {
            let Some((stack, counts)) = line.rsplit_once(' ') else {
                continue;
            };
            let Some((stack, _)) = stack.rsplit_once(' ') else {
                continue;
            };
            let cand: u128 = counts.parse().unwrap_or(0);
            let names: Vec<&str> = stack.split(';').collect();
            let shared = open
                .iter()
                .zip(&names)
                .take_while(|(a, b)| a.as_str() == **b)
                .count();
            open.truncate(shared);
            for (depth, name) in names.iter().enumerate().skip(shared) {
                open.push(name.to_string());
                frames.insert((depth + 1, time), names[..=depth].join(";"));
            }
            time += cand;
        }
        frames
    }

    /// The SVG `svg`, drawn by inferno (0.12) from
    /// [`FlameDiff::write_folded`], with each changed frame coloured by
    /// its verdict (red grew, blue shrank, beyond noise, their intensity
    /// relative to the largest such change; grey within noise) and its
    /// tooltip ending with the change against its own base amount and the
    /// verdict. Not judged ([`FlameDiff::judged`]): the tooltips only.
    pub fn finish_svg(&self, svg: &str) -> Result<String, String> {
        let by_stack: HashMap<&str, &Stack> =
            self.stacks.iter().map(|(k, s)| (k.as_str(), s)).collect();
        let layout = self.layout();
        let largest = self
            .stacks
            .iter()
            .filter(|(_, s)| matches!(s.verdict, Verdict::Grew | Verdict::Shrank))
            .map(|(_, s)| s.cand.abs_diff(s.base))
            .max()
            .unwrap_or(1)
            .max(1);
        // Every frame: (start, end) of its <g>, y, first sample.
        let mut frames = Vec::new();
        let mut from = 0;
        while let Some(at) = svg[from..].find("<g><title>") {
            let start = from + at;
            let end = start + svg[start..].find("</g>").ok_or("a frame without its end")?;
            let g = &svg[start..end];
            let rect = element(g, "<rect ", ">").ok_or("a frame without a rect")?;
            let rect = &g[rect.0..rect.1];
            let y = attr(rect, "y").ok_or("a frame without y")?;
            let x: u128 = attr_text(rect, "fg:x")
                .and_then(|x| x.parse().ok())
                .ok_or("a frame without fg:x")?;
            frames.push((start, end, y, x));
            from = end;
        }
        let root_y = frames.iter().map(|f| f.2).fold(f64::MIN, f64::max);
        let mut ys: Vec<f64> = frames.iter().map(|f| f.2).collect();
        ys.sort_by(f64::total_cmp);
        ys.dedup();
        let height = ys.windows(2).map(|w| w[1] - w[0]).fold(f64::MAX, f64::min);
        let mut out = String::with_capacity(svg.len() + svg.len() / 4);
        let mut copied = 0;
        for (start, end, y, x) in frames {
            let depth = if height == f64::MAX {
                0
            } else {
                ((root_y - y) / height).round() as usize
            };
            let Some(stack) = layout
                .get(&(depth, x))
                .and_then(|k| by_stack.get(k.as_str()))
            else {
                continue;
            };
            if stack.verdict == Verdict::Unchanged {
                continue;
            }
            let mut g = svg[start..end].to_string();
            if self.judged {
                let colour = match stack.verdict {
                    Verdict::Grew | Verdict::Shrank => {
                        let c = 100 + 150 * (largest - stack.cand.abs_diff(stack.base)) / largest;
                        if stack.verdict == Verdict::Grew {
                            format!("rgb(255,{c},{c})")
                        } else {
                            format!("rgb({c},{c},255)")
                        }
                    }
                    _ => "rgb(215,215,215)".to_string(),
                };
                if let Some((a, b)) = element(&g, "<rect ", ">") {
                    if let Some(fixed) = set_attr(&g[a..b], "fill", &colour) {
                        g.replace_range(a..b, &fixed);
                    }
                }
            }
            // The tooltip: "NAME (N unit, P%; +D%)" gains the change
            // against the frame's own base amount and the verdict.
            if let Some(close) = g.find(")</title>") {
                let own = if stack.base == 0 {
                    "new".to_string()
                } else {
                    format!(
                        "{:+.1}%",
                        100.0 * (stack.cand as f64 - stack.base as f64) / stack.base as f64
                    )
                };
                let verdict = match stack.verdict {
                    Verdict::Grew => "grew beyond noise",
                    Verdict::Shrank => "shrank beyond noise",
                    Verdict::WithinNoise => "within noise",
                    _ => "not judged",
                };
                g.insert_str(
                    close,
                    &format!(" of the graph, own amount {own}: {verdict}"),
                );
            }
            out.push_str(&svg[copied..start]);
            out.push_str(&g);
            copied = end;
        }
        out.push_str(&svg[copied..]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word_within_the_columns() {
        let line = "amounts are CPU time (cpu_ns), not instructions: no profile record carries \
                    instructions";
        let lines = wrap(line, 30);
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{lines:?}");
        assert_eq!(lines.join(" "), line);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }

    #[test]
    fn xml_escapes_what_text_and_attributes_need() {
        assert_eq!(xml("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }

    /// `n` profile records of `/a` (weight 10) whose `f` costs about
    /// `f` and `g` about 500, each ±20% (a seeded generator).
    fn profiles(n: usize, f: f64, seed: u64) -> Profiles {
        use crate::record::{Detail, ProfileNode, Record, RecordKind};
        let mut state = seed;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            0.8 + 0.4 * ((state >> 11) as f64 / (1u64 << 53) as f64)
        };
        let node = |name: &str, parent: Option<u32>, inclusive: i64, exclusive: i64| ProfileNode {
            name: name.into(),
            parent,
            calls: 1,
            inclusive,
            exclusive,
            ..ProfileNode::default()
        };
        let mut profiles = Profiles::new();
        for _ in 0..n {
            let (x, y) = ((f * noise()) as i64, (500.0 * noise()) as i64);
            let mut record = Record::new(RecordKind::Profile, "/a");
            record.weight = 10;
            record.detail = Some(Box::new(Detail {
                timer: Some("instructions".into()),
                nodes: vec![
                    node("/a", None, 100 + x + y, 100),
                    node("f", Some(0), x, x),
                    node("g", Some(0), y, y),
                ],
                ..Detail::default()
            }));
            profiles.add(&record);
        }
        profiles
    }

    #[test]
    fn two_samples_of_the_same_code_colour_nothing_but_rarely() {
        // Holm keeps the chance that any frame is coloured at 5%: over
        // 100 pairs of samples, about 5 graphs with a coloured frame
        // (more than 12 has a chance below 1 in 1000).
        let mut coloured = 0;
        for seed in 1..=100 {
            let (base, cand) = (
                profiles(200, 1000.0, seed),
                profiles(200, 1000.0, seed + 1000),
            );
            let (base, cand) = (base.calls(None).unwrap(), cand.calls(None).unwrap());
            let diff = cand.diff_against(Some(base), false, 1, 0.95);
            assert!(diff.judged());
            assert_ne!(diff.verdict("/a;f"), Some(Verdict::NotJudged));
            coloured += usize::from(diff.significant() > 0);
        }
        assert!(
            coloured <= 12,
            "{coloured} of 100 graphs of the same code coloured"
        );
    }

    #[test]
    fn a_real_change_is_coloured_and_only_it() {
        let (base, cand) = (profiles(200, 1000.0, 1), profiles(200, 1100.0, 2));
        let (base, cand) = (base.calls(None).unwrap(), cand.calls(None).unwrap());
        let diff = cand.diff_against(Some(base), false, 1, 0.95);
        assert_eq!(diff.verdict("/a;f"), Some(Verdict::Grew));
        assert_eq!(diff.verdict("/a;g"), Some(Verdict::WithinNoise));
        // The root's own amount is the same on both sides.
        assert_eq!(diff.verdict("/a"), Some(Verdict::Unchanged));
        let reversed = base.diff_against(Some(cand), false, 1, 0.95);
        assert_eq!(reversed.verdict("/a;f"), Some(Verdict::Shrank));
        // The pairs: base then candidate, sorted.
        let mut pairs = Vec::new();
        diff.write_folded(&mut pairs).unwrap();
        let pairs = String::from_utf8(pairs).unwrap();
        let lines: Vec<&str> = pairs.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "/a 200000 200000", "{pairs}");
        assert!(lines[1].starts_with("/a;f "), "{pairs}");
    }

    #[test]
    fn without_spread_nothing_is_judged() {
        let (base, cand) = (profiles(1, 1000.0, 1), profiles(1, 2000.0, 2));
        let (base, cand) = (base.calls(None).unwrap(), cand.calls(None).unwrap());
        let diff = cand.diff_against(Some(base), false, 1, 0.95);
        assert!(!diff.judged());
        assert_eq!(diff.verdict("/a;f"), Some(Verdict::NotJudged));
        let alone = cand.diff_against(None, false, 1, 0.95);
        assert_eq!(alone.verdict("/a;f"), Some(Verdict::NotJudged));
    }
}
