//! The report's quantile sketch against exact quantiles computed here:
//! within its stated relative error, weighted and unweighted, negative
//! values included; and merging two sketches gives the sketch of the union.

use dynostats::report::Sketch;

use crate::rng;
use rng::Rng;

/// The exact weighted nearest-rank quantile: the smallest value with at
/// least `q` of the weight at or below it.
fn exact_quantile(sorted: &[(i128, u64)], q: f64) -> i128 {
    let total: u128 = sorted.iter().map(|v| u128::from(v.1)).sum();
    let rank = ((total as f64 * q).ceil() as u128).clamp(1, total);
    let mut seen = 0u128;
    for &(v, w) in sorted {
        seen += u128::from(w);
        if seen >= rank {
            return v;
        }
    }
    unreachable!()
}

const QUANTILES: [f64; 9] = [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999];

fn check(values: &[(i128, u64)], case: &str) -> Sketch {
    let mut sketch = Sketch::new();
    for &(v, w) in values {
        sketch.add(v, w);
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    for q in QUANTILES {
        let exact = exact_quantile(&sorted, q);
        let got = sketch.quantile(q).unwrap();
        let err = (got - exact).abs() as f64;
        assert!(
            err <= exact.abs() as f64 * Sketch::RELATIVE_ERROR,
            "{case} q {q}: {got} vs exact {exact} (error {:.5})",
            err / exact.abs().max(1) as f64
        );
        if sketch.is_exact() {
            assert_eq!(got, exact, "{case} q {q}");
        }
    }
    assert_eq!(sketch.count(), values.len() as u64);
    assert_eq!(
        sketch.weight(),
        values.iter().map(|v| u128::from(v.1)).sum::<u128>()
    );
    sketch
}

#[test]
fn quantiles_are_within_the_stated_error_weighted_and_unweighted() {
    let mut rng = Rng(0x0dd5_ee7c_4e55_0001);
    for (n, decades) in [
        (10, 3.0),
        (64, 6.0),
        (1_000, 2.0),
        (100_000, 9.0),
        (100_000, 19.0),
    ] {
        let unweighted: Vec<(i128, u64)> = (0..n)
            .map(|_| ((rng.log_uniform(decades).round() as i128), 1))
            .collect();
        check(&unweighted, &format!("unweighted n {n}"));
        // Weights as different processes' sampling rates.
        let weighted: Vec<(i128, u64)> = (0..n)
            .map(|_| {
                (
                    (rng.log_uniform(decades).round() as i128),
                    [1, 10, 100, 1000][(rng.next() % 4) as usize],
                )
            })
            .collect();
        check(&weighted, &format!("weighted n {n}"));
        // Signed values (an RSS change), zero included.
        let signed: Vec<(i128, u64)> = (0..n)
            .map(|i| {
                let v = (rng.log_uniform(decades).round() as i128) - 1;
                (if i % 3 == 0 { -v } else { v }, 1 + rng.next() % 50)
            })
            .collect();
        check(&signed, &format!("signed n {n}"));
    }
}

#[test]
fn weights_decide_the_quantiles() {
    // 99 samples of 10 standing for one event each, one sample of 1000
    // standing for 1000 events: most events cost 1000.
    let mut sketch = Sketch::new();
    for _ in 0..99 {
        sketch.add(10, 1);
    }
    sketch.add(1000, 1000);
    assert_eq!(sketch.quantile(0.5), Some(1000));
    assert_eq!(sketch.quantile(0.05), Some(10));
    // Weight 0: counted, moves nothing.
    let mut zero = Sketch::new();
    zero.add(5, 0);
    assert_eq!((zero.count(), zero.quantile(0.5)), (1, None));
}

#[test]
fn the_merge_of_two_sketches_is_the_sketch_of_the_union() {
    let mut rng = Rng(0x3e26_e000_0000_0002);
    for (n, split) in [
        (40, 20),
        (100, 30),
        (10_000, 5_000),
        (10_000, 9_990),
        (10_000, 3),
    ] {
        let values: Vec<(i128, u64)> = (0..n)
            .map(|_| {
                (
                    (rng.log_uniform(7.0).round() as i128) - 500,
                    1 + rng.next() % 100,
                )
            })
            .collect();
        let (left, right) = values.split_at(split);
        let sketch_of = |vs: &[(i128, u64)]| {
            let mut s = Sketch::new();
            for &(v, w) in vs {
                s.add(v, w);
            }
            s
        };
        let union = sketch_of(&values);
        let mut merged = sketch_of(left);
        merged.merge(&sketch_of(right));
        assert_eq!(merged, union, "n {n} split {split}");
        let mut reversed = sketch_of(right);
        reversed.merge(&sketch_of(left));
        assert_eq!(reversed, union, "n {n} split {split}, reversed");
        for q in QUANTILES {
            assert_eq!(merged.quantile(q), union.quantile(q), "n {n} q {q}");
        }
        assert_eq!(
            (merged.count(), merged.weight()),
            (union.count(), union.weight())
        );
    }
}
