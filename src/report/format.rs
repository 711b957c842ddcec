//! Human units shared by every output: counts with k/M/G, times with
//! ns/µs/ms/s, bytes with KiB/MiB/GiB, three significant digits.

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

pub(super) fn human_opt(metric: Metric, x: Option<i64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| human(metric, v as f64))
}
