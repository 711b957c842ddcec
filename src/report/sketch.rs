//! [`Sketch`]: weighted quantiles in bounded memory, mergeable.
//!
//! See [`Sketch`].

/// Bits of the mantissa kept above [`LINEAR`]: 2^6 buckets per power of 2.
const MANTISSA_BITS: u32 = 6;
const SUB: u64 = 1 << MANTISSA_BITS;
/// Buckets for every magnitude below this are exact.
const LINEAR: u64 = 2 * SUB;
/// log2 of [`LINEAR`].
const LINEAR_BITS: u32 = MANTISSA_BITS + 1;

/// The bucket of magnitude `x`.
#[inline]
fn index(x: u64) -> u32 {
    if x < LINEAR {
        return x as u32;
    }
    let e = 63 - x.leading_zeros(); // >= LINEAR_BITS
    let shift = e - MANTISSA_BITS;
    let m = x >> shift; // in [SUB, 2 * SUB)
    (LINEAR + u64::from(e - LINEAR_BITS) * SUB + (m - SUB)) as u32
}

/// The value a bucket stands for: its midpoint, rounded down.
fn representative(i: u32) -> u64 {
    let i = u64::from(i);
    if i < LINEAR {
        return i;
    }
    let e = (i - LINEAR) / SUB + u64::from(LINEAR_BITS);
    let m = (i - LINEAR) % SUB + SUB;
    let shift = e - u64::from(MANTISSA_BITS);
    let low = m << shift;
    low + ((1u64 << shift) >> 1)
}

/// Weights of consecutive buckets, starting at bucket `first`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Buckets {
    first: u32,
    weights: Vec<u64>,
}

impl Buckets {
    #[inline]
    fn add(&mut self, i: u32, weight: u64) {
        if self.weights.is_empty() {
            self.first = i;
            self.weights.push(weight);
            return;
        }
        if i < self.first {
            let grow = (self.first - i) as usize;
            self.weights.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = i;
        }
        let at = (i - self.first) as usize;
        if at >= self.weights.len() {
            self.weights.resize(at + 1, 0);
        }
        self.weights[at] = self.weights[at].saturating_add(weight);
    }

    /// Buckets with weight, lowest first.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (u32, u64)> + '_ {
        self.weights
            .iter()
            .enumerate()
            .filter(|(_, w)| **w > 0)
            .map(|(at, w)| (self.first + at as u32, *w))
    }

    fn heap_bytes(&self) -> usize {
        self.weights.capacity() * std::mem::size_of::<u64>()
    }
}

/// Weighted quantiles of integer values, in bounded memory, mergeable.
///
/// Values are integers (instructions, nanoseconds, bytes; negative for an
/// RSS change). A sketch keeps up to [`Sketch::EXACT_MAX`] distinct values
/// exactly; beyond that it keeps log-linear buckets: every magnitude below
/// 128 has its own bucket, and above it each power of two is cut into 64
/// equal buckets. A quantile is the midpoint of the bucket that holds the
/// true (weighted, nearest-rank) quantile, so it is within
/// [`Sketch::RELATIVE_ERROR`] (1/128, under 0.8%) of it. A sketch of
/// `u64` magnitudes never holds more than 3,776 buckets per sign (8 bytes
/// each), whatever the number of values, and two sketches merge bucket by
/// bucket: the merge of two sketches is the sketch of the union.
///
/// The resolution is a trade: each halving of the error doubles the
/// buckets a group's values span, and with hundreds of groups read in
/// random order the buckets' cache misses are most of the cost of adding
/// a value.
///
/// ```
/// use dynostats::report::Sketch;
///
/// let mut a = Sketch::new();
/// for v in 1..=1000 {
///     a.add(v * 1000, 1);
/// }
/// let p50 = a.quantile(0.5).unwrap();
/// assert!((p50 - 500_000).abs() as f64 <= 500_000.0 * Sketch::RELATIVE_ERROR);
///
/// // Weighted: one value standing for 1000 events outweighs the rest.
/// let mut b = Sketch::new();
/// b.add(7, 1000);
/// a.merge(&b);
/// assert_eq!(a.quantile(0.5), Some(7));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Sketch {
    /// Distinct values with their weights while there are few of them.
    exact: Vec<(i128, u64)>,
    /// Set once the values outgrew `exact`.
    bucketed: bool,
    /// Magnitudes of negative values.
    negative: Buckets,
    /// Zero and positive values.
    positive: Buckets,
    /// Values beyond `u64` magnitude, clamped into the last bucket.
    clamped: u64,
    count: u64,
    weight: u128,
}

impl PartialEq for Sketch {
    /// Equal when they describe the same weighted values: the order in
    /// which values were added does not matter.
    fn eq(&self, other: &Sketch) -> bool {
        let sorted = |s: &Sketch| {
            let mut v = s.exact.clone();
            v.sort_unstable();
            v
        };
        self.bucketed == other.bucketed
            && self.count == other.count
            && self.weight == other.weight
            && self.clamped == other.clamped
            && self.negative.iter().eq(other.negative.iter())
            && self.positive.iter().eq(other.positive.iter())
            && sorted(self) == sorted(other)
    }
}

impl Sketch {
    /// Largest relative error of a quantile once values are bucketed:
    /// 1/128 (about 0.78%). Quantiles of magnitudes below 128, and of
    /// sketches that still hold at most [`Sketch::EXACT_MAX`] distinct
    /// values, are exact.
    pub const RELATIVE_ERROR: f64 = 1.0 / 128.0;
    /// Distinct values kept exactly before a sketch switches to buckets.
    pub const EXACT_MAX: usize = 64;
    /// Magnitudes below this have a bucket each.
    pub(crate) const LINEAR: u64 = LINEAR;
    /// log2 of [`Sketch::LINEAR`].
    pub(crate) const LINEAR_BITS: u32 = LINEAR_BITS;
    /// Buckets per power of two above [`Sketch::LINEAR`].
    pub(crate) const SUB: u64 = SUB;
    /// log2 of [`Sketch::SUB`].
    pub(crate) const MANTISSA_BITS: u32 = MANTISSA_BITS;

    /// The bucket `value` falls in once a sketch keeps buckets, as one
    /// signed key: the bucket of its magnitude for zero and positive
    /// values, `-1 -` that for negative ones. Magnitudes beyond `u64` are
    /// clamped into the last bucket. The ClickHouse rollup stores its
    /// sketches as weights per key (`dynostats::clickhouse`).
    pub fn bucket(value: i128) -> i16 {
        let magnitude = u64::try_from(value.unsigned_abs()).unwrap_or(u64::MAX);
        let i = index(magnitude) as i16;
        if value < 0 { -1 - i } else { i }
    }

    /// The sketch of values summed by a source that holds them elsewhere
    /// (a database): `count` values (weight 0 included) of summed
    /// `weight`; `exact`, the distinct values of positive weight with
    /// their weights, when there are at most [`Sketch::EXACT_MAX`] of
    /// them, else the weights per [`Sketch::bucket`] key. Equal to the
    /// sketch of the same values added one by one.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn from_parts(
        exact: Option<Vec<(i128, u64)>>,
        buckets: &[(i16, u64)],
        count: u64,
        weight: u128,
    ) -> Sketch {
        let mut sketch = Sketch {
            count,
            weight,
            ..Sketch::default()
        };
        match exact {
            Some(values) if values.len() <= Self::EXACT_MAX => sketch.exact = values,
            _ => {
                sketch.bucketed = true;
                for &(key, w) in buckets {
                    if w == 0 {
                        continue;
                    }
                    if key < 0 {
                        sketch.negative.add((-1 - i32::from(key)) as u32, w);
                    } else {
                        sketch.positive.add(key as u32, w);
                    }
                }
            }
        }
        sketch
    }

    /// An empty sketch.
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Adds `value` standing for `weight` events. A weight of 0 counts the
    /// value (see [`Sketch::count`]) but moves no quantile.
    #[inline]
    pub fn add(&mut self, value: i128, weight: u64) {
        self.count += 1;
        self.weight = self.weight.saturating_add(u128::from(weight));
        if weight == 0 {
            return;
        }
        if !self.bucketed {
            if let Some(slot) = self.exact.iter_mut().find(|(v, _)| *v == value) {
                slot.1 = slot.1.saturating_add(weight);
                return;
            }
            if self.exact.len() < Self::EXACT_MAX {
                if self.exact.capacity() == 0 {
                    self.exact.reserve_exact(4);
                }
                self.exact.push((value, weight));
                return;
            }
            self.switch_to_buckets();
        }
        self.add_bucketed(value, weight);
    }

    #[inline]
    fn add_bucketed(&mut self, value: i128, weight: u64) {
        let magnitude = match u64::try_from(value.unsigned_abs()) {
            Ok(m) => m,
            Err(_) => {
                self.clamped = self.clamped.saturating_add(1);
                u64::MAX
            }
        };
        let i = index(magnitude);
        if value < 0 {
            self.negative.add(i, weight);
        } else {
            self.positive.add(i, weight);
        }
    }

    fn switch_to_buckets(&mut self) {
        self.bucketed = true;
        for (value, weight) in std::mem::take(&mut self.exact) {
            self.add_bucketed(value, weight);
        }
    }

    /// Adds every value of `other`: afterwards `self` is the sketch of both
    /// sets of values.
    pub fn merge(&mut self, other: &Sketch) {
        let (count, weight) = (self.count, self.weight);
        if other.bucketed {
            if !self.bucketed {
                self.switch_to_buckets();
            }
            for (i, w) in other.negative.iter() {
                self.negative.add(i, w);
            }
            for (i, w) in other.positive.iter() {
                self.positive.add(i, w);
            }
            self.clamped = self.clamped.saturating_add(other.clamped);
        } else {
            for &(value, w) in &other.exact {
                self.add(value, w);
            }
        }
        self.count = count.saturating_add(other.count);
        self.weight = weight.saturating_add(other.weight);
    }

    /// Values added (weight 0 included).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The values' summed weights: the events they stand for.
    pub fn weight(&self) -> u128 {
        self.weight
    }

    /// Whether the quantiles are exact (few distinct values) rather than
    /// within [`Sketch::RELATIVE_ERROR`].
    pub fn is_exact(&self) -> bool {
        !self.bucketed
    }

    /// Values whose magnitude is beyond `u64`, counted in the last bucket.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// The `q`-quantile (`0 < q <= 1`) of the values weighted by their
    /// weights, by nearest rank: the smallest value with at least `q` of
    /// the weight at or below it. `None` when no value of positive weight
    /// was added.
    pub fn quantile(&self, q: f64) -> Option<i128> {
        let total: u128 = if self.bucketed {
            self.negative
                .iter()
                .chain(self.positive.iter())
                .map(|(_, w)| u128::from(w))
                .sum()
        } else {
            self.exact.iter().map(|(_, w)| u128::from(*w)).sum()
        };
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil() as u128;
        let rank = rank.clamp(1, total);
        let mut seen = 0u128;
        if !self.bucketed {
            let mut sorted = self.exact.clone();
            sorted.sort_unstable_by_key(|v| v.0);
            for (value, w) in sorted {
                seen += u128::from(w);
                if seen >= rank {
                    return Some(value);
                }
            }
            return None;
        }
        // Negative values, largest magnitude (lowest value) first.
        for (i, w) in self.negative.iter().rev() {
            seen += u128::from(w);
            if seen >= rank {
                return Some(-i128::from(representative(i)));
            }
        }
        for (i, w) in self.positive.iter() {
            seen += u128::from(w);
            if seen >= rank {
                return Some(i128::from(representative(i)));
            }
        }
        None
    }

    /// Bytes this sketch holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.exact.capacity() * std::mem::size_of::<(i128, u64)>()
            + self.negative.heap_bytes()
            + self.positive.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values_within_the_error() {
        let mut x = 1u64;
        while x < u64::MAX / 3 {
            for v in [x, x + 1, x * 3 / 2, x * 2 - 1] {
                let r = representative(index(v));
                let err = (r as f64 - v as f64).abs() / v as f64;
                assert!(err <= Sketch::RELATIVE_ERROR, "{v}: {r} ({err})");
            }
            x = x * 2 + 1;
        }
        assert_eq!(representative(index(127)), 127);
        assert_eq!(index(u64::MAX), 3775);
        // Buckets are ordered like their values.
        assert!(index(127) < index(128) && index(128) < index(130));
    }
}
