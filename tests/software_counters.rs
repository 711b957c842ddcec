// Own test binary: CPU time against wall time; other tests' threads would take its CPU.
//! Software counters and clocks, for real, on this machine.

mod common;

use common::{run_delay_ns, spin_for_ms, touch_fresh_memory};
use dynostats::{Delta, counters::Counter, counters::CounterSet, counters::Counters};

/// CPU time over the wall time the thread could run (wall time minus time
/// spent waiting for a CPU while other processes ran), best of several
/// tries: on a busy machine the thread is preempted, which this removes.
fn best_cpu_wall_ratio(set: CounterSet) -> f64 {
    let mut counters = Counters::open(set);
    (0..20)
        .map(|_| {
            // The waits counted are inside the measured window, so they are
            // never more than the waits that lengthened its wall time.
            let a = counters.snapshot();
            let delay0 = run_delay_ns();
            std::hint::black_box(spin_for_ms(30));
            let delay1 = run_delay_ns();
            let b = counters.snapshot();
            let waited = delay1.zip(delay0).map_or(0, |(b, a)| b.saturating_sub(a));
            let d = Delta::between(&a, &b);
            let runnable = d.wall_ns.saturating_sub(waited).max(1);
            d.cpu_ns.expect("CPU time is always available") as f64 / runnable as f64
        })
        .fold(0.0, f64::max)
}

#[test]
fn busy_loop_cpu_time_is_within_a_few_percent_of_wall_time() {
    // Through the perf task-clock event in the group.
    let set = CounterSet::wall_only().with(Counter::CpuTime);
    let counters = Counters::open(set);
    assert!(counters.is_available(Counter::CpuTime));
    drop(counters);
    let ratio = best_cpu_wall_ratio(set);
    assert!((0.95..=1.03).contains(&ratio), "task-clock ratio {ratio}");
}

#[test]
fn sleeping_costs_no_cpu_time() {
    let mut counters = Counters::open(CounterSet::wall_only().with(Counter::CpuTime));
    let a = counters.snapshot();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let b = counters.snapshot();
    let d = Delta::between(&a, &b);
    assert!(d.wall_ns >= 100_000_000, "{d:?}");
    assert!(d.cpu_ns.unwrap() < 20_000_000, "{d:?}");
}

#[test]
fn page_faults_grow_when_fresh_memory_is_touched() {
    const SIZE: usize = 64 << 20;
    let mut counters = Counters::open(CounterSet::wall_only().with(Counter::PageFaults));
    let a = counters.snapshot();
    let _resident = touch_fresh_memory(SIZE);
    let b = counters.snapshot();
    let faults = Delta::between(&a, &b).page_faults.unwrap();
    // One fault per 4 KiB page, or per 2 MiB where transparent huge pages
    // are always on.
    let thp_always = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[always]"));
    let min = if thp_always {
        SIZE / (2 << 20)
    } else {
        SIZE / 4096
    };
    assert!(
        faults >= min as u64,
        "{faults} page faults, expected >= {min}"
    );
}

#[test]
fn context_switches_count_voluntary_sleeps() {
    let mut counters = Counters::open(CounterSet::wall_only().with(Counter::ContextSwitches));
    let a = counters.snapshot();
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let b = counters.snapshot();
    let switches = Delta::between(&a, &b).context_switches.unwrap();
    assert!(switches >= 5, "{switches}");
}

#[test]
fn peak_rss_is_at_least_current_rss() {
    let mut counters = Counters::open(
        CounterSet::wall_only()
            .with(Counter::Rss)
            .with(Counter::PeakRss),
    );
    let s = counters.snapshot();
    let (rss, peak) = (s.rss_bytes.unwrap(), s.peak_rss_bytes.unwrap());
    assert!(rss > 0 && peak >= rss, "rss {rss} peak {peak}");
}

#[test]
fn hardware_counters_are_absent_with_a_reason_or_present() {
    // Whatever the machine, a hardware counter is either readable or
    // reported unavailable with an errno: never silently missing.
    let mut counters = Counters::open(CounterSet::default());
    let s = counters.snapshot();
    for (c, v) in [
        (Counter::Instructions, s.instructions),
        (Counter::Cycles, s.cycles),
    ] {
        let reported = counters.unavailable().iter().any(|u| u.counter == c);
        assert_eq!(
            v.is_none(),
            reported,
            "{c}: {v:?} {:?}",
            counters.unavailable()
        );
        if reported {
            let u = counters
                .unavailable()
                .iter()
                .find(|u| u.counter == c)
                .unwrap();
            assert!(u.errno.is_some());
            assert!(!u.reason.is_empty());
        }
    }
}

#[test]
fn probe_reports_every_counter_and_a_cost_for_the_available_ones() {
    let probe = dynostats::probe();
    assert_eq!(probe.counters.len(), Counter::ALL.len());
    for c in &probe.counters {
        assert_eq!(c.available(), c.read_cost_ns.is_some(), "{c:?}");
    }
    for c in [Counter::WallTime, Counter::CpuTime, Counter::Rss] {
        assert!(probe.counter(c).unwrap().available(), "{c}");
    }
    let table = probe.to_string();
    for c in Counter::ALL {
        assert!(table.contains(c.name()), "{table}");
    }
}
