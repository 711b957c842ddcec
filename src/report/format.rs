//! Human units shared by every output: counts with k/M/G, times with
//! ns/µs/ms/s, bytes with KiB/MiB/GiB, three significant digits; and the
//! one way names are made safe to print.

use std::fmt::Write as _;

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
pub(super) fn human(metric: Metric, x: f64) -> String {
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

pub(super) fn human_opt(metric: Metric, x: Option<i128>) -> String {
    x.map_or_else(|| "-".to_string(), |v| human(metric, v as f64))
}

/// Whether `c` must not reach a terminal as itself: C0 and C1 controls,
/// DEL, and the invisible format characters that reorder or hide text
/// (bidirectional overrides and isolates, zero-width joiners, BOM).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// `name` safe to print on a terminal and on one line: control characters
/// (newline, ESC and every other C0/C1 control, DEL) and invisible
/// format characters are written as escapes (`\n`, `\t`, `\r`, `\e`,
/// `\x7f`, `\u{202e}`), and a backslash as `\\`, so the escaped text
/// maps back to one name only. Everything else, wide characters included,
/// is kept.
///
/// ```
/// use dynostats::report::escape_name;
///
/// assert_eq!(escape_name("/a\nregion  forged"), "/a\\nregion  forged");
/// assert_eq!(escape_name("\u{1b}[31mred"), "\\e[31mred");
/// assert_eq!(escape_name("/users/{id}"), "/users/{id}");
/// ```
pub fn escape_name(name: &str) -> String {
    if !name.chars().any(|c| c == '\\' || unsafe_char(c)) {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if (c as u32) < 0x100 && unsafe_char(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Terminal columns `s` takes (wide characters take 2, combining ones 0).
pub(super) fn width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `s` (already escaped) cut to at most `max` columns, ending with `…`
/// when cut.
pub(super) fn cut(s: &str, max: usize) -> String {
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
    fn escapes_are_unambiguous() {
        assert_eq!(escape_name("a\\nb"), "a\\\\nb");
        assert_ne!(escape_name("a\\nb"), escape_name("a\nb"));
        assert_eq!(escape_name("\u{7f}\u{85}\u{202e}"), "\\x7f\\x85\\u{202e}");
    }
}
