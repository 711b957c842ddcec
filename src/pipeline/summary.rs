//! The periodic one-line summary a running service can log
//! ([`PipelineBuilder::log_summary`](super::PipelineBuilder::log_summary)):
//! requests sampled in the interval and what the costliest endpoints cost
//! per request.
//!
//! The writer thread already takes every record off the queue; it hands
//! each one to `Summary::add`, which adds it to a small map of the
//! current interval, and `Summary::tick` prints the line when the
//! interval is over. Nothing of this runs on the measured threads.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use crate::record::grouped;
use crate::record::{Name, Record, RecordKind};

/// Where the lines go.
pub(super) enum Output {
    /// `tracing` at INFO (target `dynostats`) where a global subscriber is
    /// installed, else stderr.
    Log,
    /// A function of the user's.
    Call(Box<dyn FnMut(&str) + Send>),
}

/// The most endpoints one interval keeps apart; the records of any more
/// are summed as one `(other endpoints)` row, so a service that names
/// endpoints by unbounded values cannot grow the map.
const MAX_KEYS: usize = 1_000;

/// Endpoints named in the line, the costliest first.
const TOP: usize = 3;

/// `(method, name)` of a request record (a region has no method).
type Key = (Option<Cow<'static, str>>, Name);

/// The sums of one endpoint over the interval.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    /// Records (sampled requests).
    sampled: u64,
    /// Requests they stand for (the sum of their weights).
    events: u64,
    /// Records carrying instructions, and their sum.
    with_instructions: u64,
    instructions: u128,
    /// Records carrying CPU time, and their sum.
    with_cpu: u64,
    cpu_ns: u128,
}

impl Sums {
    fn add(&mut self, record: &Record) {
        self.sampled += 1;
        self.events = self.events.saturating_add(record.weight.max(1));
        if let Some(n) = record.instructions {
            self.with_instructions += 1;
            self.instructions += u128::from(n);
        }
        if let Some(ns) = record.cpu_ns {
            self.with_cpu += 1;
            self.cpu_ns += u128::from(ns);
        }
    }

    /// Mean cost per record of `metric`, `None` when no record has it.
    fn mean(&self, metric: Metric) -> Option<f64> {
        let (n, sum) = match metric {
            Metric::Instructions => (self.with_instructions, self.instructions),
            Metric::CpuTime => (self.with_cpu, self.cpu_ns),
        };
        (n > 0).then(|| sum as f64 / n as f64)
    }

    /// What the interval's traffic of this endpoint cost: the mean per
    /// request times the requests it stands for. Orders the endpoints.
    fn total(&self, metric: Metric) -> f64 {
        self.mean(metric).unwrap_or(0.0) * self.events as f64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Instructions,
    CpuTime,
}

/// The writer's summary: off, or summing the current interval. Every
/// method is one branch when it is off.
pub(super) struct Summary(Option<Interval>);

impl Summary {
    pub(super) fn off() -> Summary {
        Summary(None)
    }

    pub(super) fn every(interval: Duration, output: Output) -> Summary {
        Summary(Some(Interval::new(interval, output)))
    }

    /// `wake`, or the end of the interval if that comes first.
    pub(super) fn wake_by(&self, wake: Instant) -> Instant {
        self.0.as_ref().map_or(wake, |s| s.due().min(wake))
    }

    /// Adds one record taken off the queue.
    #[inline]
    pub(super) fn add(&mut self, record: &Record) {
        if let Some(s) = &mut self.0 {
            s.add(record);
        }
    }

    /// Prints the line once the interval is over, and starts the next.
    pub(super) fn tick(&mut self, now: Instant) {
        if let Some(s) = &mut self.0 {
            s.tick(now);
        }
    }

    /// Prints the line of the interval so far (at shutdown), if anything
    /// was sampled in it.
    pub(super) fn finish(&mut self) {
        if let Some(s) = &mut self.0 {
            s.finish();
        }
    }
}

/// The sums of the current interval, owned by the writer thread.
struct Interval {
    interval: Duration,
    output: Output,
    started: Instant,
    /// Request records of the interval, per endpoint.
    requests: HashMap<Key, Sums>,
    /// Region records, summed only while the interval has no request
    /// record: a service measured with guards alone still gets a line,
    /// and regions inside requests do not crowd out the endpoints.
    regions: HashMap<Key, Sums>,
    other: Sums,
}

impl Interval {
    fn new(interval: Duration, output: Output) -> Interval {
        Interval {
            interval,
            output,
            started: Instant::now(),
            requests: HashMap::new(),
            regions: HashMap::new(),
            other: Sums::default(),
        }
    }

    /// When the current interval ends.
    fn due(&self) -> Instant {
        self.started + self.interval
    }

    fn add(&mut self, record: &Record) {
        let map = match record.kind {
            RecordKind::Request => &mut self.requests,
            RecordKind::Region if self.requests.is_empty() => &mut self.regions,
            _ => return,
        };
        let key = (record.method.clone(), record.name.clone());
        if let Some(sums) = map.get_mut(&key) {
            sums.add(record);
        } else if map.len() < MAX_KEYS {
            map.entry(key).or_default().add(record);
        } else {
            self.other.add(record);
        }
    }

    fn tick(&mut self, now: Instant) {
        if now >= self.due() {
            self.emit(now);
        }
    }

    fn finish(&mut self) {
        if !self.requests.is_empty() || !self.regions.is_empty() {
            self.emit(Instant::now());
        }
    }

    fn emit(&mut self, now: Instant) {
        let line = self.line(now.saturating_duration_since(self.started));
        match &mut self.output {
            Output::Call(f) => f(&line),
            Output::Log => log(&line),
        }
        self.started = now;
        self.requests.clear();
        self.regions.clear();
        self.other = Sums::default();
    }

    /// The line of an interval of `elapsed`.
    fn line(&self, elapsed: Duration) -> String {
        let (map, what) = if self.requests.is_empty() && !self.regions.is_empty() {
            (&self.regions, "region")
        } else {
            (&self.requests, "request")
        };
        let mut rows: Vec<(String, Sums)> = map
            .iter()
            .map(|((method, name), sums)| {
                let label = match method {
                    Some(m) => format!("{m} {name}"),
                    None => name.to_string(),
                };
                (label, *sums)
            })
            .collect();
        if self.other.sampled > 0 {
            rows.push(("(other endpoints)".to_string(), self.other));
        }
        let sampled: u64 = rows.iter().map(|(_, s)| s.sampled).sum();
        let events: u64 = rows.iter().map(|(_, s)| s.events).sum();
        let plural = if sampled == 1 { "" } else { "s" };
        let mut line = format!("dynostats: {} {what}{plural} sampled", grouped(sampled));
        if events != sampled {
            let _ = write!(line, " (standing for {})", grouped(events));
        }
        let _ = write!(line, " in the last {}", seconds(elapsed));
        if rows.is_empty() {
            return line;
        }
        let metric = if rows.iter().any(|(_, s)| s.with_instructions > 0) {
            Metric::Instructions
        } else {
            Metric::CpuTime
        };
        if rows.iter().all(|(_, s)| s.mean(metric).is_none()) {
            line.push_str("; no record carries instructions or CPU time");
            return line;
        }
        // The costliest traffic first; ties by name, so the line is stable.
        rows.sort_by(|(a, x), (b, y)| {
            y.total(metric)
                .total_cmp(&x.total(metric))
                .then_with(|| a.cmp(b))
        });
        let _ = match metric {
            Metric::Instructions => write!(line, "; instructions per {what}:"),
            Metric::CpuTime => write!(
                line,
                "; CPU time per {what} (no record carries instructions):"
            ),
        };
        for (i, (label, sums)) in rows.iter().take(TOP).enumerate() {
            let cost = match sums.mean(metric) {
                Some(v) if metric == Metric::Instructions => count(v),
                Some(v) => nanos(v),
                None => "-".to_string(),
            };
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(
                line,
                "{sep}{label} {cost} ({} sampled)",
                grouped(sums.sampled)
            );
        }
        if rows.len() > TOP {
            let _ = write!(line, ", and {} more", rows.len() - TOP);
        }
        line
    }
}

/// Prints a line where a service's logs go.
fn log(line: &str) {
    #[cfg(feature = "tracing")]
    if tracing::dispatcher::has_been_set() {
        tracing::info!(target: "dynostats", "{line}");
        return;
    }
    eprintln!("{line}");
}

/// Seconds with one decimal under a minute, whole seconds above.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// A count with three significant digits and an SI prefix: `812`, `4.51 k`,
/// `12.3 M`.
fn count(v: f64) -> String {
    let (v, prefix) = match v {
        v if v < 1e3 => return format!("{v:.0}"),
        v if v < 1e6 => (v / 1e3, "k"),
        v if v < 1e9 => (v / 1e6, "M"),
        v => (v / 1e9, "G"),
    };
    format!("{} {prefix}", three_digits(v))
}

/// Nanoseconds as `850 ns`, `12.3 µs`, `4.51 ms` or `1.20 s`.
fn nanos(v: f64) -> String {
    let (v, unit) = match v {
        v if v < 1e3 => return format!("{v:.0} ns"),
        v if v < 1e6 => (v / 1e3, "µs"),
        v if v < 1e9 => (v / 1e6, "ms"),
        v => (v / 1e9, "s"),
    };
    format!("{} {unit}", three_digits(v))
}

fn three_digits(v: f64) -> String {
    match v {
        v if v < 10.0 => format!("{v:.2}"),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    }
}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Summary")
            .field("interval", &self.0.as_ref().map(|s| s.interval))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &'static str, name: &str, instructions: Option<u64>, cpu: u64) -> Record {
        let mut r = Record::new(RecordKind::Request, name);
        r.method = Some(Cow::Borrowed(method));
        r.instructions = instructions;
        r.cpu_ns = Some(cpu);
        r.weight = 1;
        r
    }

    fn summary() -> Interval {
        Interval::new(Duration::from_secs(60), Output::Call(Box::new(|_| {})))
    }

    #[test]
    fn the_costliest_traffic_first_in_instructions() {
        let mut s = summary();
        for _ in 0..10 {
            s.add(&request("GET", "/cheap", Some(1_000), 10));
        }
        for _ in 0..2 {
            s.add(&request("POST", "/orders", Some(4_510_000), 10));
        }
        s.add(&request("GET", "/users/{id}", Some(12_300), 10));
        s.add(&request("GET", "/health", Some(500), 10));
        // A region inside a request is not an endpoint.
        s.add(&Record::new(RecordKind::Region, "db::query"));
        assert_eq!(
            s.line(Duration::from_secs(60)),
            "dynostats: 14 requests sampled in the last 60 s; instructions per request: \
             POST /orders 4.51 M (2 sampled), GET /users/{id} 12.3 k (1 sampled), \
             GET /cheap 1.00 k (10 sampled), and 1 more"
        );
    }

    #[test]
    fn cpu_time_when_no_record_carries_instructions_and_weights_count() {
        let mut s = summary();
        let mut r = request("GET", "/a", None, 2_500_000);
        r.weight = 100;
        s.add(&r);
        s.add(&r);
        assert_eq!(
            s.line(Duration::from_millis(1_500)),
            "dynostats: 2 requests sampled (standing for 200) in the last 1.5 s; \
             CPU time per request (no record carries instructions): GET /a 2.50 ms (2 sampled)"
        );
    }

    #[test]
    fn regions_when_there_is_no_request_and_an_empty_interval_says_so() {
        let mut s = summary();
        assert_eq!(
            s.line(Duration::from_secs(60)),
            "dynostats: 0 requests sampled in the last 60 s"
        );
        let mut r = Record::new(RecordKind::Region, "batch::run");
        r.instructions = Some(812);
        s.add(&r);
        assert_eq!(
            s.line(Duration::from_secs(90)),
            "dynostats: 1 region sampled in the last 90 s; instructions per region: \
             batch::run 812 (1 sampled)"
        );
    }

    #[test]
    fn endpoints_past_the_bound_are_summed_as_one() {
        let mut s = summary();
        for i in 0..MAX_KEYS + 5 {
            s.add(&request("GET", &format!("/u/{i}"), Some(10), 1));
        }
        assert_eq!(s.requests.len(), MAX_KEYS);
        assert_eq!(s.other.sampled, 5);
        let line = s.line(Duration::from_secs(1));
        assert!(
            line.starts_with("dynostats: 1,005 requests sampled"),
            "{line}"
        );
        // 5 records of 10 instructions: the costliest row.
        assert!(line.contains("(other endpoints) 10 (5 sampled)"), "{line}");
    }

    #[test]
    fn si_figures_keep_three_digits() {
        assert_eq!(count(999.4), "999");
        assert_eq!(count(1_234.0), "1.23 k");
        assert_eq!(count(45_600.0), "45.6 k");
        assert_eq!(count(3.2e9), "3.20 G");
        assert_eq!(nanos(850.0), "850 ns");
        assert_eq!(nanos(12_340.0), "12.3 µs");
        assert_eq!(nanos(1.2e9), "1.20 s");
    }
}
