//! Resident memory from `/proc/self/statm`.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Resident pages are the second field of `/proc/self/statm`.
pub(super) fn read_rss(statm: &File, page_size: u64) -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = statm.read_at(&mut buf, 0).ok()?;
    parse_statm_resident(&buf[..n]).map(|pages| pages * page_size)
}

/// The second space-separated decimal field of `text`. Hand-written: it
/// runs on every snapshot, and going through `str` parsing cost more than
/// the `pread` itself.
fn parse_statm_resident(text: &[u8]) -> Option<u64> {
    let first_end = text.iter().position(|&b| b == b' ')?;
    let field = &text[first_end + 1..];
    let len = field.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    Some(
        field[..len]
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_parse() {
        assert_eq!(parse_statm_resident(b"1000 250 30 4 0 100 0\n"), Some(250));
        assert_eq!(parse_statm_resident(b"garbage"), None);
        assert_eq!(parse_statm_resident(b"12 \n"), None);
        assert_eq!(parse_statm_resident(b"12 99999999999999999999 1"), None);
        assert_eq!(parse_statm_resident(b"12 0 1"), Some(0));
        // Agrees with the obvious parse on the real file.
        let real = std::fs::read_to_string("/proc/self/statm").unwrap();
        let expected: u64 = real.split_whitespace().nth(1).unwrap().parse().unwrap();
        let parsed = parse_statm_resident(real.as_bytes()).unwrap();
        assert!(parsed.abs_diff(expected) < 1024, "{parsed} vs {expected}");
    }
}
