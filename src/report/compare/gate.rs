//! The deploy gate: which rows and the overall figure can be judged, the
//! one test that judges them all together, and what the comparison as a
//! whole says.
//!
//! With `fail_above` = P, each judged row (and the mix-adjusted overall
//! figure) is a one-sided test of "its relative delta is at most P"; the
//! gate fails the rows whose test rejects under Holm's step-down
//! correction over every judged row at the level `1 - confidence`. So an
//! unchanged deploy fails with probability at most that level however
//! many endpoints it has (the family-wise error), where judging each row
//! alone at that level would fail a service of 200 endpoints nearly every
//! time. Rows with too few samples, or no positive base cost, are
//! undecided and not in the family. The method is in `docs/compare.md`.

use super::{CompareOptions, Comparison, Overall, RowComparison, Verdict};
use crate::report::stats::Interval;

/// `Undecided` with why when a row (or the overall figure, `what`) cannot
/// be judged: too few samples on a side, or no interval (no positive base
/// cost). Otherwise `Pass`, until [`gate`] says otherwise.
pub(super) fn judgeable(
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
    if interval.is_none() {
        return Verdict::Undecided(format!("no positive base cost of {what}"));
    }
    Verdict::Pass
}

/// Holm's step-down procedure over `p_values` at family level `alpha`:
/// which of them reject. The smallest p-value is tested at `alpha / m`,
/// the next at `alpha / (m - 1)` ..., stopping at the first that does not
/// reject.
pub(crate) fn holm(p_values: &[f64], alpha: f64) -> Vec<bool> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut reject = vec![false; m];
    for (k, &i) in order.iter().enumerate() {
        if p_values[i] <= alpha / (m - k) as f64 {
            reject[i] = true;
        } else {
            break;
        }
    }
    reject
}

/// Judges every decided row and the overall figure together against
/// `options.fail_above` (see the module): the rows whose test rejects
/// fail. Without a gate, a decided row says what its interval says:
/// slower, faster or no change.
pub(super) fn gate(
    rows: &mut [RowComparison],
    overall: Option<&mut Overall>,
    options: &CompareOptions,
) {
    let Some(threshold) = options.fail_above else {
        for row in rows.iter_mut().filter(|r| r.verdict == Verdict::Pass) {
            row.verdict = Verdict::of_interval(row.headline.relative);
        }
        if let Some(o) = overall.filter(|o| o.verdict == Verdict::Pass) {
            o.verdict = Verdict::of_interval(o.mix_adjusted);
        }
        return;
    };
    let alpha = 1.0 - options.test.confidence;
    let p =
        |test: Option<crate::report::stats::RatioTest>| test.map_or(1.0, |t| t.p_above(threshold));
    let mut verdicts: Vec<&mut Verdict> = Vec::new();
    let mut p_values = Vec::new();
    for row in rows.iter_mut() {
        if row.verdict == Verdict::Pass {
            p_values.push(p(row.headline.test));
            verdicts.push(&mut row.verdict);
        }
    }
    if let Some(o) = overall.filter(|o| o.verdict == Verdict::Pass) {
        p_values.push(p(o.test));
        verdicts.push(&mut o.verdict);
    }
    for (verdict, reject) in verdicts.into_iter().zip(holm(&p_values, alpha)) {
        if reject {
            *verdict = Verdict::Fail;
        }
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

    /// Whether anything (a row or the overall figure) is undecided, or,
    /// with a gate, nothing could be judged at all
    /// ([`Comparison::nothing_judged`]).
    pub fn any_undecided(&self) -> bool {
        self.undecided().next().is_some()
            || self
                .overall
                .as_ref()
                .is_some_and(|o| matches!(o.verdict, Verdict::Undecided(_)))
            || self.nothing_judged()
    }

    /// True when the gate is set and no row and no overall figure could be
    /// judged (empty inputs, or every group under `min_samples`): the gate
    /// knows nothing, so it neither passes nor fails.
    pub fn nothing_judged(&self) -> bool {
        let judged = |v: &Verdict| matches!(v, Verdict::Pass | Verdict::Fail);
        self.fail_above.is_some()
            && !self.rows.iter().any(|r| judged(&r.verdict))
            && !self.overall.as_ref().is_some_and(|o| judged(&o.verdict))
    }
}
