//! `timeseries` alerts on synthetic windows: two endpoints, 100 requests
//! each per one-minute window, 20% per-request noise, seeded. Each window
//! is a test, so over many windows of unchanged code a few alert by
//! chance; `consecutive(2)` (two windows in a row) cuts those, while a
//! sustained regression still alerts.

use dynostats::report::timeseries::{Series, Timeseries, TimeseriesOptions};
use dynostats::{Record, RecordKind};

use crate::rng::Rng;

const MINUTE: u64 = 60_000_000_000;
/// Windows per trial: the first has no baseline, 23 are judged.
const WINDOWS: u64 = 24;

/// One trial's windows; from window `step` on, costs are `scale` times
/// higher.
fn series(rng: &mut Rng, step: u64, scale: f64) -> Timeseries {
    let mut ts = Timeseries::new(MINUTE);
    let mut r = Record::new(RecordKind::Request, "");
    r.method = Some("GET".into());
    for window in 0..WINDOWS {
        let s = if window >= step { scale } else { 1.0 };
        for (name, mean) in [("/a", 100_000.0), ("/b", 300_000.0)] {
            r.name = name.into();
            for i in 0..100 {
                r.ts = 1_764_000_000_000_000_000 + window * MINUTE + i;
                r.instructions = Some((mean * s * (1.0 + 0.2 * rng.normal())).max(1.0) as u64);
                ts.add(&r);
            }
        }
    }
    ts
}

fn alerts(series: &Series) -> Vec<usize> {
    (0..series.windows.len())
        .filter(|&i| series.windows[i].alert)
        .collect()
}

fn options(consecutive: usize) -> TimeseriesOptions {
    TimeseriesOptions::new()
        .alert(Some(0.01))
        .consecutive(consecutive)
}

#[test]
fn two_windows_in_a_row_cut_chance_alerts_and_keep_a_sustained_regression() {
    let (mut single, mut double, mut judged) = (0, 0, 0);
    for trial in 0..20u64 {
        let mut rng = Rng(0x5eed_0000 + trial * 7919);
        let noise = series(&mut rng, WINDOWS, 1.0);
        let one = noise.analyse(options(1));
        let two = noise.analyse(options(2));
        judged += one.windows.iter().filter(|w| w.decided).count();
        single += alerts(&one).len();
        double += alerts(&two).len();

        // 10% more from window 12 on: found in the window of the step
        // alone, and on the next window with two in a row.
        let regressed = series(&mut rng, 12, 1.10);
        let one = regressed.analyse(options(1));
        let two = regressed.analyse(options(2));
        assert!(
            alerts(&one).contains(&12),
            "trial {trial}: {:?}",
            alerts(&one)
        );
        assert!(
            alerts(&two).contains(&13),
            "trial {trial}: {:?}",
            alerts(&two)
        );
    }
    eprintln!(
        "noise only: {single} chance alerts one window at a time, {double} two in a row, of {judged} windows"
    );
    assert_eq!(judged, 20 * 23);
    // At 95% a window alone alerts by chance now and then (one-sided:
    // about 2.5% of windows, less the 1% threshold): these windows do.
    assert!(single >= 4, "{single} of {judged}: the test lost its noise");
    // Two in a row: a small fraction of that.
    assert!(double * 4 <= single, "{double} two in a row vs {single}");
}
