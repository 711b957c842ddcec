//! Resident memory from `/proc/self/statm`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::{self, StaticSlot};

/// The process's one `/proc/self/statm` descriptor and the fork
/// generation it was opened (or last reopened) in.
struct SharedStatm {
    file: File,
    generation: AtomicU64,
}

static STATM: StaticSlot<SharedStatm> = StaticSlot::new();

/// The process's `/proc/self/statm`, one descriptor for every thread (RSS
/// is per process): opened on first use, and after a `fork` pointed at the
/// child's file under the same descriptor number (the inherited one names
/// the parent). Called when counters open, never on a snapshot.
pub(super) fn shared() -> io::Result<&'static File> {
    let generation = sys::fork_generation();
    let statm = match STATM.get() {
        Some(s) => s,
        None => {
            let file = File::open("/proc/self/statm")?;
            let fresh = Box::new(SharedStatm {
                file,
                generation: AtomicU64::new(generation),
            });
            match STATM.replace(None, fresh) {
                Ok(s) => s,
                // Another thread opened it first; ours closes here.
                Err(_) => STATM.get().ok_or_else(|| io::Error::other("statm slot"))?,
            }
        }
    };
    if statm.generation.load(Ordering::Acquire) != generation {
        let fresh = File::open("/proc/self/statm")?;
        sys::replace_fd(statm.file.as_raw_fd(), fresh.as_raw_fd())?;
        statm.generation.store(generation, Ordering::Release);
    }
    Ok(&statm.file)
}

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
