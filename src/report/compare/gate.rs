//! The deploy gate: the verdict of a row or of the overall figure against
//! `--fail-above`, and what the comparison as a whole says.

use super::{CompareOptions, Comparison, RowComparison, Verdict};
use crate::report::stats::Interval;

pub(super) fn decide(
    interval: Option<Interval>,
    samples: (u64, u64),
    options: &CompareOptions,
    what: &str,
) -> Verdict {
    if samples.0 < options.test.min_samples || samples.1 < options.test.min_samples {
        return Verdict::Undecided(format!(
            "{} base and {} candidate samples of {what}, fewer than --min-samples {}",
            samples.0, samples.1, options.test.min_samples
        ));
    }
    let Some(interval) = interval else {
        return Verdict::Undecided(format!("no positive base cost of {what}"));
    };
    match options.fail_above {
        Some(p) if interval.low > 0.0 && interval.estimate > p => Verdict::Fail,
        _ => Verdict::Pass,
    }
}

impl Comparison {
    /// True when a row or the overall figure failed the gate.
    pub fn failed(&self) -> bool {
        self.offenders().next().is_some()
            || self
                .overall
                .as_ref()
                .is_some_and(|o| o.verdict == Verdict::Fail)
    }

    /// The rows that failed the gate.
    pub fn offenders(&self) -> impl Iterator<Item = &RowComparison> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Fail)
    }

    /// The rows that could not be decided.
    pub fn undecided(&self) -> impl Iterator<Item = &RowComparison> {
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Undecided(_)))
    }

    /// Whether anything (a row or the overall figure) is undecided.
    pub fn any_undecided(&self) -> bool {
        self.undecided().next().is_some()
            || self
                .overall
                .as_ref()
                .is_some_and(|o| matches!(o.verdict, Verdict::Undecided(_)))
    }
}
