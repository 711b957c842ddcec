//! Why a counter is absent: [`Unavailable`], the errno of a failed
//! `perf_event_open` turned into a sentence a person can act on.

use std::fmt;
use std::io;

use super::Counter;

/// Why a counter is absent: the OS error number (if any) and a sentence a
/// person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    /// The counter concerned.
    pub counter: Counter,
    /// The `errno` returned by the kernel, if the failure came from a system
    /// call.
    pub errno: Option<i32>,
    /// What happened and what to do about it.
    pub reason: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.counter.name(), self.explanation())
    }
}

impl Unavailable {
    /// The reason followed by the symbolic errno, e.g. "no hardware PMU: ...
    /// (ENOENT)": the one sentence the probe, status records and errors
    /// show for an absent counter.
    pub fn explanation(&self) -> String {
        match self.errno {
            Some(e) => format!("{} ({})", self.reason, errno_name(e)),
            None => self.reason.clone(),
        }
    }

    /// Explains an errno returned by `perf_event_open` for `counter`.
    pub(crate) fn from_open_error(counter: Counter, err: &io::Error) -> Unavailable {
        let errno = err.raw_os_error();
        let hardware = counter.is_hardware();
        let reason = match errno {
            Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) if hardware => {
                "no hardware PMU: this looks like a VM without a virtual PMU, \
                 or a CPU whose PMU the kernel does not support"
                    .to_string()
            }
            Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) => {
                "the kernel does not support this software event".to_string()
            }
            Some(libc::EACCES) => eacces_reason(counter, paranoid_level()),
            Some(libc::EPERM) => "perf_event_open is forbidden here (EPERM): a seccomp \
                 filter or container policy blocks it; allow the perf_event_open \
                 system call, or lower perf_event_paranoid"
                .to_string(),
            Some(libc::EMFILE) | Some(libc::ENFILE) => "out of file descriptors: raise the \
                 limit (ulimit -n) or close descriptors; each thread needs one per \
                 perf counter"
                .to_string(),
            Some(libc::ENOSPC) | Some(libc::EBUSY) => {
                "the PMU has no free counter (another tool may hold them)".to_string()
            }
            Some(libc::ENOSYS) => "this kernel has no perf_event_open system call".to_string(),
            _ => format!("perf_event_open failed: {err}"),
        };
        Unavailable {
            counter,
            errno,
            reason,
        }
    }
}

/// Why `perf_event_open` of `counter` answered `EACCES`, given the
/// `perf_event_paranoid` level. The kernel's rule for a process without
/// CAP_PERFMON: 2 refuses events that count in the kernel, and 3 (a Debian
/// and Android patch) refuses every event.
fn eacces_reason(counter: Counter, level: Option<i32>) -> String {
    let what = if counter.is_hardware() {
        "hardware counters"
    } else {
        "perf events"
    };
    match level {
        Some(level) if level >= 3 => format!(
            "perf_event_paranoid is {level}: this kernel opens no perf event for an \
             unprivileged process; {what} need 2 or lower, or CAP_PERFMON"
        ),
        Some(level) if level == 2 && counter.counts_in_kernel() => format!(
            "perf_event_paranoid is {level}: {counter} count in the kernel, which needs 1 \
             or lower, or CAP_PERFMON"
        ),
        Some(level) => format!(
            "perf_event_open was refused although perf_event_paranoid is {level}: a \
             security module (SELinux, AppArmor) may forbid it; CAP_PERFMON allows it"
        ),
        None => "perf_event_open was refused (EACCES): lower \
                 /proc/sys/kernel/perf_event_paranoid to 2 or grant CAP_PERFMON"
            .to_string(),
    }
}

/// `/proc/sys/kernel/perf_event_paranoid`, if readable.
pub(crate) fn paranoid_level() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The symbolic name of an errno value, e.g. "ENOENT".
pub(crate) fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOSPC => "ENOSPC",
        libc::EBUSY => "EBUSY",
        libc::EINVAL => "EINVAL",
        libc::ENODEV => "ENODEV",
        libc::ENOSYS => "ENOSYS",
        libc::E2BIG => "E2BIG",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enoent_on_hardware_says_no_pmu() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        let u = Unavailable::from_open_error(Counter::Instructions, &err);
        assert_eq!(u.errno, Some(libc::ENOENT));
        assert!(u.reason.contains("no hardware PMU"), "{}", u.reason);
        assert!(u.to_string().contains("ENOENT"));
    }

    #[test]
    fn eacces_names_paranoid() {
        let err = io::Error::from_raw_os_error(libc::EACCES);
        let u = Unavailable::from_open_error(Counter::Cycles, &err);
        assert!(u.reason.contains("perf_event_paranoid"), "{}", u.reason);
        assert!(u.reason.contains("CAP_PERFMON"), "{}", u.reason);
    }

    #[test]
    fn eacces_follows_the_kernels_paranoid_rule() {
        // 3 (Debian's patch): nothing opens for an unprivileged process.
        let three = eacces_reason(Counter::PageFaults, Some(3));
        assert!(three.starts_with("perf_event_paranoid is 3"), "{three}");
        assert!(
            three.contains("no perf event") && three.contains("2 or lower"),
            "{three}"
        );
        let hw = eacces_reason(Counter::Instructions, Some(4));
        assert!(hw.contains("hardware counters need 2 or lower"), "{hw}");
        // 2: only events that count in the kernel are refused.
        let switches = eacces_reason(Counter::ContextSwitches, Some(2));
        assert!(switches.contains("1 or lower"), "{switches}");
        let other = eacces_reason(Counter::Cycles, Some(2));
        assert!(!other.contains("need 2 or lower"), "{other}");
        assert!(other.contains("CAP_PERFMON"), "{other}");
    }

    #[test]
    fn emfile_says_fd_limit() {
        let err = io::Error::from_raw_os_error(libc::EMFILE);
        let u = Unavailable::from_open_error(Counter::PageFaults, &err);
        assert!(u.reason.contains("file descriptors"), "{}", u.reason);
    }
}
