//! The one output room of every answer: the [`Format`]s, the one JSON
//! writer, the one CSV writer, human units, and the one way names are made
//! safe to print.
//!
//! - **Text** (tables for a terminal): names pass through [`escape_name`]
//!   (control characters and invisible format characters as escapes, so
//!   a name cannot move the cursor, recolour the terminal or forge a
//!   line) and are cut to a width in terminal columns; numbers in human
//!   units (counts with k/M/G, times with ns/µs/ms/s, bytes with
//!   KiB/MiB/GiB, three significant digits).
//! - **JSON**: strings exact ([`json_string`]: every character kept,
//!   control characters as `\u00XX`), integers beyond
//!   [`JSON_MAX_SAFE_INTEGER`] as strings of digits, non-finite numbers as
//!   `null`.
//! - **CSV** (RFC 4180): every text cell through [`csv_text`]: escaped
//!   like the table's names (one row is one line), guarded against
//!   spreadsheet formulas, quoted when needed. Numbers are written as
//!   they are.

use std::fmt::Write as _;
use std::io;
use std::str::FromStr;

pub use crate::record::escape_name;

use unicode_width::UnicodeWidthChar;

use super::metric::Metric;

/// `x` with three significant digits (at least the integer part).
fn sig3(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A value of `metric`, short and with its unit.
pub(crate) fn human(metric: Metric, x: f64) -> String {
    let a = x.abs();
    match metric {
        Metric::Instructions | Metric::Cycles => match a {
            _ if a < 10_000.0 => format!("{x:.0}"),
            _ if a < 1e6 => format!("{}k", sig3(x / 1e3)),
            _ if a < 1e9 => format!("{}M", sig3(x / 1e6)),
            _ if a < 1e12 => format!("{}G", sig3(x / 1e9)),
            _ => format!("{}T", sig3(x / 1e12)),
        },
        Metric::CpuNs | Metric::WallNs => match a {
            _ if a < 1e3 => format!("{x:.0} ns"),
            _ if a < 1e6 => format!("{} µs", sig3(x / 1e3)),
            _ if a < 1e9 => format!("{} ms", sig3(x / 1e6)),
            _ => format!("{} s", sig3(x / 1e9)),
        },
        Metric::RssChange => {
            const KIB: f64 = 1024.0;
            match a {
                _ if a < KIB => format!("{x:.0} B"),
                _ if a < KIB * KIB => format!("{} KiB", sig3(x / KIB)),
                _ if a < KIB * KIB * KIB => format!("{} MiB", sig3(x / (KIB * KIB))),
                _ => format!("{} GiB", sig3(x / (KIB * KIB * KIB))),
            }
        }
    }
}

pub(crate) fn human_opt(metric: Metric, x: Option<i128>) -> String {
    x.map_or_else(|| "-".to_string(), |v| human(metric, v as f64))
}

/// Terminal columns `s` takes (wide characters take 2, combining ones 0).
pub(crate) fn width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `s` (already escaped) cut to at most `max` columns, ending with `…`
/// when cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// How an answer is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Aligned columns for a terminal, names escaped and cut.
    #[default]
    Table,
    /// One JSON document, every figure of every row.
    Json,
    /// CSV with a header line, every figure of every row.
    Csv,
}

impl FromStr for Format {
    type Err = String;

    /// Parses `table`, `json` or `csv`.
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(format!("unknown format {s:?}: expected table, json or csv")),
        }
    }
}

/// An answer written in every [`Format`]: the report's
/// [`Table`](super::Table), a [`Comparison`](super::compare::Comparison), a
/// time [`Series`](super::timeseries::Series), a
/// [`TopTable`](super::profiles::TopTable).
///
/// ```
/// use dynostats::report::output::Render;
/// use dynostats::report::{Format, Report};
/// use dynostats::{Record, RecordKind};
///
/// let mut report = Report::new();
/// report.add(&Record::new(RecordKind::Region, "parse"));
/// let mut csv = Vec::new();
/// report.table().write(Format::Csv, &mut csv).unwrap();
/// assert!(String::from_utf8(csv).unwrap().contains("\nregion,parse,"));
/// ```
pub trait Render {
    /// Aligned columns for a terminal.
    fn write_text<W: io::Write>(&self, out: &mut W) -> io::Result<()>;

    /// One JSON document.
    fn write_json<W: io::Write>(&self, out: &mut W) -> io::Result<()>;

    /// CSV with a header line.
    fn write_csv<W: io::Write>(&self, out: &mut W) -> io::Result<()>;

    /// Aligned columns laid out by `style` (width, colour, columns shown);
    /// answers without such choices write [`Render::write_text`].
    fn write_text_styled<W: io::Write>(&self, style: &TextStyle, out: &mut W) -> io::Result<()> {
        let _ = style;
        self.write_text(out)
    }

    /// Writes the answer in `format`.
    fn write<W: io::Write>(&self, format: Format, out: &mut W) -> io::Result<()> {
        self.write_styled(format, &TextStyle::default(), out)
    }

    /// Writes the answer in `format`, a table laid out by `style`.
    fn write_styled<W: io::Write>(
        &self,
        format: Format,
        style: &TextStyle,
        out: &mut W,
    ) -> io::Result<()> {
        match format {
            Format::Json => self.write_json(out),
            Format::Csv => self.write_csv(out),
            Format::Table => self.write_text_styled(style, out),
        }
    }
}

/// The first line of an answer whose metric was chosen for the user: the
/// metric's name, or CPU time with why (`fallback`) when no record
/// carries instructions.
pub(crate) fn write_metric_line(
    out: &mut impl io::Write,
    metric: super::metric::Metric,
    fallback: Option<&str>,
) -> io::Result<()> {
    match fallback {
        Some(why) => writeln!(out, "metric: CPU time (cpu_ns): {why}"),
        None => writeln!(out, "metric: {}", metric.name()),
    }
}

/// Integers beyond this are written as JSON strings: JavaScript and jq
/// read JSON numbers as doubles, exact only up to 2^53.
pub const JSON_MAX_SAFE_INTEGER: i128 = 1 << 53;

/// `x` as a JSON number, or as a string of its digits beyond
/// [`JSON_MAX_SAFE_INTEGER`].
pub(crate) fn json_int(x: i128) -> String {
    // unsigned_abs: i128::MIN (a saturated sum) has no i128 absolute value.
    if x.unsigned_abs() <= JSON_MAX_SAFE_INTEGER.unsigned_abs() {
        x.to_string()
    } else {
        format!("\"{x}\"")
    }
}

/// [`json_int`] of an unsigned integer: exact for all of `u128`.
pub(crate) fn json_uint(x: u128) -> String {
    match i128::try_from(x) {
        Ok(x) => json_int(x),
        Err(_) => format!("\"{x}\""),
    }
}

/// [`json_int`], or `null`.
pub(crate) fn json_opt_int(x: Option<i128>) -> String {
    x.map_or_else(|| "null".to_string(), json_int)
}

/// A finite number as JSON, else `null`.
pub(crate) fn json_num(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".to_string(),
    }
}

/// `s` as a JSON string: exact (every character kept), quotes and
/// backslashes escaped, control characters (and the line separators
/// U+2028, U+2029) as `\u00XX` escapes (`\n` for a newline), so the
/// output is one line per value and safe on a terminal.
///
/// ```
/// use dynostats::report::output::json_string;
///
/// assert_eq!(json_string("a\"\n\u{1b}"), r#""a\"\n\u001b""#);
/// ```
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a spreadsheet would read `s` as a formula: it starts with `=`
/// or `@`, or with `+` or `-` followed by anything (a lone `-`, the
/// placeholder of an absent value, is text).
fn looks_like_formula(s: &str) -> bool {
    s.starts_with(['=', '@']) || (s.len() > 1 && s.starts_with(['+', '-']))
}

/// A text cell of CSV: escaped like a table's names ([`escape_name`]: a
/// row is one line and a terminal shows it as text), prefixed with `'`
/// when a spreadsheet would run it as a formula (`=`, `@`, and `+` or `-`
/// with more after them; a name or label value is data, never a
/// formula), and quoted (RFC 4180) when it holds a comma, a quote or a
/// space at either end.
///
/// ```
/// use dynostats::report::output::csv_text;
///
/// assert_eq!(csv_text("/users/{id}"), "/users/{id}");
/// assert_eq!(csv_text("=HYPERLINK(\"x\")"), r#""'=HYPERLINK(""x"")""#);
/// assert_eq!(csv_text("a,b"), r#""a,b""#);
/// assert_eq!(csv_text("\u{1b}[31mred"), r"\e[31mred");
/// assert_eq!(csv_text("-"), "-");
/// ```
pub fn csv_text(s: &str) -> String {
    let mut s = escape_name(s);
    if looks_like_formula(&s) {
        s.insert(0, '\'');
    }
    if s.contains([',', '"']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Unix nanoseconds as a UTC time in ISO 8601: `2025-11-26T09:49:00Z`,
/// with the fraction of a second when there is one (`...:00.250Z`).
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// How text answers (tables) are laid out for the reader: the width to
/// fit, colour, and whether columns with nothing to say are shown. JSON
/// and CSV ignore it: they always have every figure.
///
/// The default fits no width (every row on one line), has no colour and
/// leaves out columns that are 0 or empty in every row (cancelled,
/// errors, forced, absent ...), naming them below the table.
///
/// ```
/// use dynostats::report::output::{Render, TextStyle};
/// use dynostats::{Record, RecordKind, Report};
///
/// let mut report = Report::new();
/// let mut r = Record::new(RecordKind::Region, "parse");
/// r.cpu_ns = Some(1_500);
/// report.add(&r);
/// let mut text = Vec::new();
/// let style = TextStyle::new().width(Some(60));
/// report.table().write_text_styled(&style, &mut text).unwrap();
/// let text = String::from_utf8(text).unwrap();
/// assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
/// assert!(text.contains("1.50 µs"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct TextStyle {
    pub(crate) width: Option<usize>,
    pub(crate) color: bool,
    pub(crate) all_columns: bool,
}

impl TextStyle {
    /// No width, no colour, empty columns left out.
    pub fn new() -> TextStyle {
        TextStyle::default()
    }

    /// Fits lines into `columns` terminal columns (`None`: no limit). A
    /// table too wide is fitted by cutting long names with `…`, then by
    /// moving columns to further blocks of the same rows (each repeating
    /// the rows' kind and name); a number is never cut or wrapped.
    pub fn width(mut self, columns: Option<usize>) -> Self {
        self.width = columns;
        self
    }

    /// Colours verdicts and alerts (ANSI escapes): for a terminal only.
    pub fn color(mut self, on: bool) -> Self {
        self.color = on;
        self
    }

    /// Shows every column, also those that are 0 or empty in every row.
    pub fn all_columns(mut self, on: bool) -> Self {
        self.all_columns = on;
        self
    }
}

/// A colour of a word in a text answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Paint {
    /// FAIL, ALERT: bold red.
    Alarm,
    /// slower: red.
    Worse,
    /// faster: green.
    Better,
    /// DISAGREE, UNDECIDED: yellow.
    Caution,
}

impl Paint {
    /// `text` between this colour's ANSI escape and the reset, when
    /// `on`; else `text` as it is.
    pub(crate) fn apply(self, text: &str, on: bool) -> String {
        if !on || text.is_empty() {
            return text.to_string();
        }
        let code = match self {
            Paint::Alarm => "1;31",
            Paint::Worse => "31",
            Paint::Better => "32",
            Paint::Caution => "33",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// Writes `text` (one paragraph, no newline) as lines of at most
/// `style`'s width, broken at spaces, the lines after the first indented
/// by `indent` spaces; without a width, as one line. A word longer than
/// the width stays whole. `paint` colours the paragraph's first word
/// (`FAIL:`, `ALERT`).
pub(crate) fn write_wrapped(
    out: &mut impl io::Write,
    style: &TextStyle,
    indent: usize,
    paint: Option<Paint>,
    text: &str,
) -> io::Result<()> {
    let lines = wrap(text, style.width, indent);
    for (i, line) in lines.iter().enumerate() {
        match paint.filter(|_| i == 0 && style.color) {
            Some(p) => {
                let (first, rest) = line.split_at(line.find(' ').unwrap_or(line.len()));
                writeln!(out, "{}{rest}", p.apply(first, true))?;
            }
            None => writeln!(out, "{line}")?,
        }
    }
    Ok(())
}

/// `text` broken at spaces into lines of at most `columns` columns, the
/// lines after the first indented by `indent` spaces.
pub(crate) fn wrap(text: &str, columns: Option<usize>, indent: usize) -> Vec<String> {
    let Some(max) = columns else {
        return vec![text.to_string()];
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    let lead = " ".repeat(text.len() - text.trim_start().len());
    line.push_str(&lead);
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !empty && width(&line) + 1 + width(word) > max {
            lines.push(std::mem::take(&mut line));
            line.push_str(&" ".repeat(indent));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    lines.push(line);
    lines
}

/// A fraction as a signed percentage with two decimals.
pub(crate) fn pct(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_counts_columns_not_bytes() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 3), "abc");
        // Each of these takes two columns.
        assert_eq!(width("日本語"), 6);
        assert_eq!(cut("日本語です", 5), "日本…");
        assert!(width(&cut("日本語です", 5)) <= 5);
    }

    #[test]
    fn wrapping_breaks_at_spaces_within_the_width() {
        let text = "DISAGREE: the metrics' deltas differ beyond their noise";
        assert_eq!(
            wrap(text, Some(24), 2),
            [
                "DISAGREE: the metrics'",
                "  deltas differ beyond",
                "  their noise"
            ]
        );
        assert_eq!(wrap(text, None, 2), [text]);
        // A word longer than the width stays whole, on its own line.
        assert_eq!(wrap("a 0123456789 b", Some(5), 0), ["a", "0123456789", "b"]);
    }

    #[test]
    fn paint_only_when_on() {
        assert_eq!(Paint::Alarm.apply("FAIL", false), "FAIL");
        assert_eq!(Paint::Alarm.apply("FAIL", true), "\x1b[1;31mFAIL\x1b[0m");
    }

    #[test]
    fn utc_times_are_iso_8601() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_764_150_540_000_000_000), "2025-11-26T09:49:00Z");
        // A leap day, and a fraction of a second.
        assert_eq!(utc(951_782_400_250_000_000), "2000-02-29T00:00:00.25Z");
        assert_eq!(utc(4_102_444_799_000_000_000), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn json_integers_beyond_2_pow_53_are_strings() {
        assert_eq!(json_int(1 << 53), "9007199254740992");
        assert_eq!(json_int((1 << 53) + 1), "\"9007199254740993\"");
        assert_eq!(json_int(-(1 << 60)), "\"-1152921504606846976\"");
        assert_eq!(json_int(i128::MIN), format!("\"{}\"", i128::MIN));
        assert_eq!(json_uint(u128::MAX), format!("\"{}\"", u128::MAX));
        assert_eq!(json_uint(7), "7");
        assert_eq!(json_num(Some(f64::NAN)), "null");
    }

    #[test]
    fn csv_cells_are_one_line_and_never_formulas() {
        for hostile in ["=1+1", "+1", "-1+2", "@SUM(A1)"] {
            assert!(csv_text(hostile).starts_with('\''), "{hostile}");
        }
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("a\nb"), "a\\nb");
        assert_eq!(csv_text(" x"), "\" x\"");
    }
}
