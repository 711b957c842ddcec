//! [`escape_name`]: the one way a name from a record (an endpoint, a
//! scope, a label value, a message) is made safe to print on a terminal
//! and on one line, used by every output of the crate and the command.

use std::fmt::Write as _;

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
/// use dynostats::record::escape_name;
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

/// `n` with its thousands separated by commas (`12,345`): the way every
/// count a person reads is printed, by the crate (the pipeline's stats and
/// summary lines, flame graphs' words) and by the command.
///
/// ```
/// use dynostats::record::grouped;
///
/// assert_eq!(grouped(999u32), "999");
/// assert_eq!(grouped(1_234_567u64), "1,234,567");
/// ```
pub fn grouped(n: impl Into<u128>) -> String {
    let digits = n.into().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234, "1,234"),
            (12_345, "12,345"),
            (1_234_567, "1,234,567"),
            (u128::from(u64::MAX), "18,446,744,073,709,551,615"),
        ];
        for (n, text) in cases {
            assert_eq!(grouped(n), text);
        }
    }

    #[test]
    fn escapes_are_unambiguous() {
        assert_eq!(escape_name("a\\nb"), "a\\\\nb");
        assert_ne!(escape_name("a\\nb"), escape_name("a\nb"));
        assert_eq!(escape_name("\u{7f}\u{85}\u{202e}"), "\\x7f\\x85\\u{202e}");
    }
}
