//! Streaming weighted moments and confidence intervals of a ratio of two
//! means: the statistics `compare` and `timeseries` share.
//!
//! # Method
//!
//! Each side of a comparison is a stream of sampled records, record `i`
//! with value `x_i` standing for `w_i` events (its weight). The cost per
//! event is the weighted mean `m = Σ w_i x_i / Σ w_i`. [`Moments`] keeps
//! six sums (count, `Σw`, `Σw·d`, `Σw·d²`, `Σw²`, `Σw²·d`, `Σw²·d²` with
//! `d = x - shift`, the shift being the first value, to keep the
//! subtraction of large squares exact enough): memory does not grow with
//! the number of records, and two [`Moments`] merge.
//!
//! The variance of `m` is the linearisation (sandwich) estimate
//! `Σ w_i² (x_i - m)² / (Σw)² · n/(n-1)`: with equal weights it is
//! `s²/n`. Its degrees of freedom use the effective sample size
//! `(Σw)² / Σw²`.
//!
//! The relative delta `cand / base - 1` has, by the delta method, the
//! variance `(v_c + R² v_b) / m_b²` with `R = m_c / m_b`; its degrees of
//! freedom are Welch–Satterthwaite's over the two (or, for a mix-adjusted
//! figure, all the groups') components, and the interval is
//! `R - 1 ± t(df, 1 - α/2) · se`.
//!
//! Assumptions: records are independent draws (sampling spread over
//! time, not bursts of one slow minute); both means are positive and
//! large against their standard errors (the delta method is a first-order
//! approximation; with ten samples or more per side and a coefficient of
//! variation under 1 it is close); the weights are the sampler's, not
//! correlated with the values.

/// Streaming weighted moments of one stream of values: count, events,
/// weighted mean and the variance of that mean, in constant memory.
///
/// ```
/// use dynostats::report::Moments;
///
/// let mut m = Moments::default();
/// for x in [10.0, 12.0, 14.0] {
///     m.add(x, 2);
/// }
/// assert_eq!((m.count(), m.weight()), (3, 6.0));
/// assert_eq!(m.mean(), Some(12.0));
/// // Equal weights: the variance of the mean is s²/n = 4/3.
/// assert!((m.variance_of_mean().unwrap() - 4.0 / 3.0).abs() < 1e-9);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moments {
    n: u64,
    shift: f64,
    sw: f64,
    sw_d: f64,
    sw_d2: f64,
    sw2: f64,
    sw2_d: f64,
    sw2_d2: f64,
}

impl Moments {
    /// Adds a value standing for `weight` events (weight 0 adds nothing).
    #[inline]
    pub fn add(&mut self, x: f64, weight: u64) {
        if weight == 0 || !x.is_finite() {
            return;
        }
        if self.n == 0 {
            self.shift = x;
        }
        let w = weight as f64;
        let d = x - self.shift;
        self.n += 1;
        self.sw += w;
        self.sw_d += w * d;
        self.sw_d2 += w * d * d;
        let w2 = w * w;
        self.sw2 += w2;
        self.sw2_d += w2 * d;
        self.sw2_d2 += w2 * d * d;
    }

    /// The moments of `n` values (of positive weight) given their sums
    /// about `shift`: with `d = x - shift`, `Σw`, `Σw·d`, `Σw·d²`, `Σw²`,
    /// `Σw²·d`, `Σw²·d²`. What a source that sums by itself (a database)
    /// hands over; sums about a shift near the mean keep the variance
    /// exact enough.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn from_sums(n: u64, shift: f64, sums: [f64; 6]) -> Moments {
        if n == 0 {
            return Moments::default();
        }
        let [sw, sw_d, sw_d2, sw2, sw2_d, sw2_d2] = sums;
        Moments {
            n,
            shift,
            sw,
            sw_d,
            sw_d2,
            sw2,
            sw2_d,
            sw2_d2,
        }
    }

    /// Adds every value of `other`: afterwards `self` holds both streams.
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        // Re-express other's sums about self's shift: d' = d + delta.
        let delta = other.shift - self.shift;
        self.n += other.n;
        self.sw_d2 += other.sw_d2 + 2.0 * delta * other.sw_d + delta * delta * other.sw;
        self.sw_d += other.sw_d + delta * other.sw;
        self.sw += other.sw;
        self.sw2_d2 += other.sw2_d2 + 2.0 * delta * other.sw2_d + delta * delta * other.sw2;
        self.sw2_d += other.sw2_d + delta * other.sw2;
        self.sw2 += other.sw2;
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Summed weights: the events the values stand for.
    pub fn weight(&self) -> f64 {
        self.sw
    }

    /// The weighted mean, `None` without values.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.shift + self.sw_d / self.sw)
    }

    /// Effective sample size `(Σw)² / Σw²` (the count, with equal
    /// weights).
    pub fn effective_count(&self) -> f64 {
        if self.sw2 > 0.0 {
            self.sw * self.sw / self.sw2
        } else {
            0.0
        }
    }

    /// The estimated variance of [`Moments::mean`] (see the module's
    /// method), `None` with fewer than two values.
    pub fn variance_of_mean(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let c = self.sw_d / self.sw; // mean - shift
        let ss = self.sw2_d2 - 2.0 * c * self.sw2_d + c * c * self.sw2;
        let n = self.n as f64;
        Some((ss.max(0.0) / (self.sw * self.sw)) * n / (n - 1.0))
    }

    /// The mean with its variance and degrees-of-freedom term, for
    /// [`RatioTest`]; `None` with fewer than two values.
    pub(crate) fn estimate(&self) -> Option<Estimate> {
        let var = self.variance_of_mean()?;
        let dof = (self.effective_count() - 1.0).max(1.0);
        Some(Estimate {
            mean: self.mean()?,
            var,
            q: var * var / dof,
        })
    }
}

/// A mean with the variance of its estimate, and the term
/// `Σ vᵢ² / (nᵢ - 1)` of its components that Welch–Satterthwaite's
/// degrees of freedom need. Sums of independent estimates are estimates
/// ([`Estimate::add_scaled`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Estimate {
    /// The mean.
    pub mean: f64,
    /// The variance of the mean.
    pub var: f64,
    /// `Σ vᵢ² / (nᵢ - 1)` over the independent components of `var`.
    pub q: f64,
}

impl Estimate {
    /// Adds `c · other` (an independent estimate scaled by a constant).
    pub(crate) fn add_scaled(&mut self, other: &Estimate, c: f64) {
        self.mean += c * other.mean;
        self.var += c * c * other.var;
        self.q += c.powi(4) * other.q;
    }
}

/// An estimate with its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

impl Interval {
    /// True when the interval leaves out 0.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The relative delta `cand / base - 1` of two estimates, with its
/// standard error (delta method) and Welch–Satterthwaite degrees of
/// freedom: what an interval and a one-sided test are made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RatioTest {
    pub(crate) estimate: f64,
    pub(crate) se: f64,
    pub(crate) df: f64,
}

impl RatioTest {
    /// The relative delta of `cand` against `base`; `None` when the base
    /// mean is not positive or a variance is not finite.
    pub(crate) fn new(base: &Estimate, cand: &Estimate) -> Option<RatioTest> {
        if base.mean.is_nan() || base.mean <= 0.0 || !base.var.is_finite() || !cand.var.is_finite()
        {
            return None;
        }
        let r = cand.mean / base.mean;
        let m2 = base.mean * base.mean;
        let (vc, vb) = (cand.var / m2, r * r * base.var / m2);
        let (qc, qb) = (cand.q / (m2 * m2), r.powi(4) * base.q / (m2 * m2));
        let var = vc + vb;
        let df = if qc + qb > 0.0 {
            var * var / (qc + qb)
        } else {
            f64::INFINITY
        };
        Some(RatioTest {
            estimate: r - 1.0,
            se: var.sqrt(),
            df,
        })
    }

    /// The two-sided `confidence` interval of the relative delta.
    pub(crate) fn interval(&self, confidence: f64) -> Interval {
        let t = t_quantile(0.5 + confidence / 2.0, self.df);
        Interval {
            estimate: self.estimate,
            low: self.estimate - t * self.se,
            high: self.estimate + t * self.se,
        }
    }

    /// The p-value of the one-sided test of "the relative delta is at most
    /// `threshold`": small when the data say it lies above. With no
    /// spread at all, 0 when the estimate is above and 1 otherwise.
    pub(crate) fn p_above(&self, threshold: f64) -> f64 {
        if self.se.is_nan() || self.se <= 0.0 {
            return if self.estimate > threshold { 0.0 } else { 1.0 };
        }
        t_sf((self.estimate - threshold) / self.se, self.df)
    }
}

/// Student's t upper tail `P(T > t)` with `df` degrees of freedom (the
/// normal tail for infinite or very large `df`), through the regularized
/// incomplete beta function: relative error near 1e-10 in the tails a gate
/// over thousands of rows reaches.
pub(crate) fn t_sf(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if !df.is_finite() || df > 1e7 {
        return 0.5 * erfc(t / std::f64::consts::SQRT_2);
    }
    let v = df.max(1e-3);
    // P(|T| > |t|) = I_{v / (v + t^2)}(v / 2, 1 / 2).
    let two_sided = incomplete_beta(v / 2.0, 0.5, v / (v + t * t));
    if t > 0.0 {
        0.5 * two_sided
    } else {
        1.0 - 0.5 * two_sided
    }
}

/// The complementary error function (Chebyshev fit, fractional error
/// under 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function `I_x(a, b)`.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function (modified
/// Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=10_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The standard normal quantile (Acklam's rational approximation,
/// relative error under 1.2e-9), for `p` in (0, 1).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Student's t quantile with `df` degrees of freedom (Hill's
/// Cornish–Fisher expansion in `1/df` from the normal quantile: within
/// 0.1% for `df >= 5`; `df` below 1 is taken as 1).
pub(crate) fn t_quantile(p: f64, df: f64) -> f64 {
    let z = normal_quantile(p);
    if !df.is_finite() {
        return z;
    }
    let v = df.max(1.0);
    let z2 = z * z;
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
    z + g1 / v + g2 / (v * v) + g3 / v.powi(3) + g4 / v.powi(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_tail_matches_known_values_and_the_quantile() {
        // Tables: t(10) 0.975 quantile 2.228139; t(1) (Cauchy) tail at 1 is 1/4.
        assert!((t_sf(2.228_139, 10.0) - 0.025).abs() < 1e-6);
        assert!((t_sf(1.0, 1.0) - 0.25).abs() < 1e-9);
        assert!((t_sf(0.0, 7.0) - 0.5).abs() < 1e-12);
        assert!((t_sf(-2.228_139, 10.0) - 0.975).abs() < 1e-6);
        // The normal tail: 1.959964 -> 0.025, 5 -> 2.8665e-7.
        assert!((t_sf(1.959_964, f64::INFINITY) - 0.025).abs() < 1e-7);
        assert!((t_sf(5.0, f64::INFINITY) / 2.866_515_7e-7 - 1.0).abs() < 1e-5);
        // Tails computed independently (numerical integration of the
        // density): the deep tails of few degrees of freedom.
        for (t, df, p) in [
            (4.0, 5.0, 0.005_161_707_740),
            (3.5, 30.0, 7.384_037_188e-4),
            (11.178, 5.0, 4.999_373_006e-5),
        ] {
            let got = t_sf(t, df);
            assert!((got / p - 1.0).abs() < 1e-6, "t {t} df {df}: {got} not {p}");
        }
        // Against the quantile (Cornish-Fisher, close in the deep tails
        // only with many degrees of freedom), down to the tails a Holm
        // correction over 10,000 rows reaches.
        for df in [30.0, 200.0, 1e5] {
            for p in [0.2, 0.05, 1e-3, 1e-5, 5e-7] {
                let got = t_sf(t_quantile(1.0 - p, df), df);
                assert!((got / p - 1.0).abs() < 0.05, "df {df} p {p}: {got}");
            }
        }
    }

    #[test]
    fn ratio_interval_of_a_ten_percent_shift() {
        let (mut base, mut cand) = (Moments::default(), Moments::default());
        for i in 0..1000 {
            let noise = (i % 10) as f64;
            base.add(100.0 + noise, 1);
            cand.add(110.0 + noise, 1);
        }
        let ci = RatioTest::new(&base.estimate().unwrap(), &cand.estimate().unwrap())
            .unwrap()
            .interval(0.95);
        assert!((ci.estimate - 10.0 / 104.5).abs() < 1e-12);
        assert!(ci.low > 0.09 && ci.high < 0.1);
    }

    #[test]
    fn quantiles_match_tables() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.005) + 2.575_829).abs() < 1e-5);
        // t tables: t(0.975, 10) = 2.228, t(0.975, 30) = 2.042.
        assert!((t_quantile(0.975, 10.0) - 2.228).abs() < 2e-3);
        assert!((t_quantile(0.975, 30.0) - 2.042).abs() < 1e-3);
        assert!((t_quantile(0.995, 20.0) - 2.845).abs() < 3e-3);
    }

    #[test]
    fn weighted_variance_matches_the_direct_formula() {
        let values = [(5.0, 1u64), (7.0, 3), (1e9 + 3.0, 2), (2.0, 10), (4.5, 1)];
        let mut m = Moments::default();
        for &(x, w) in &values {
            m.add(x, w);
        }
        let sw: f64 = values.iter().map(|v| v.1 as f64).sum();
        let mean = values.iter().map(|v| v.0 * v.1 as f64).sum::<f64>() / sw;
        let ss: f64 = values
            .iter()
            .map(|v| (v.1 as f64).powi(2) * (v.0 - mean).powi(2))
            .sum();
        let expected = ss / (sw * sw) * 5.0 / 4.0;
        assert!((m.mean().unwrap() - mean).abs() < 1e-6 * mean);
        let got = m.variance_of_mean().unwrap();
        assert!((got - expected).abs() < 1e-9 * expected, "{got} {expected}");
    }

    #[test]
    fn merging_is_adding_both() {
        let mut a = Moments::default();
        let mut b = Moments::default();
        let mut both = Moments::default();
        for i in 0..100u64 {
            let x = 1000.0 + (i * 37 % 101) as f64;
            let w = 1 + i % 4;
            both.add(x, w);
            if i % 3 == 0 {
                a.add(x, w)
            } else {
                b.add(x + 0.0, w)
            }
        }
        a.merge(&b);
        assert_eq!(a.count(), both.count());
        assert!((a.mean().unwrap() - both.mean().unwrap()).abs() < 1e-9);
        let (va, vb) = (
            a.variance_of_mean().unwrap(),
            both.variance_of_mean().unwrap(),
        );
        assert!((va - vb).abs() < 1e-9 * vb);
    }

    #[test]
    fn too_few_values_have_no_variance() {
        let mut m = Moments::default();
        assert_eq!(m.mean(), None);
        m.add(3.0, 1);
        assert_eq!(m.variance_of_mean(), None);
        assert!(m.estimate().is_none());
    }
}
