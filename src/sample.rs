//! 1-in-N sampling decisions: a thread-local countdown, no lock, no syscall,
//! no allocation on the "not sampled" path.
//!
//! Each [`Sampler`] owns a slot in a small thread-local array of countdowns.
//! A process that creates more samplers than there are slots gives the
//! extra ones an independent coin flip per event (probability 1/N) instead:
//! the same distribution, at the cost of a random draw per decision.
//! When a countdown reaches zero the event is sampled and a new countdown is
//! drawn from a geometric distribution of mean N, so that sampled events are
//! not phase-locked to request patterns (a plain "every Nth" would always
//! pick the same request of a periodic client).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Thread-local countdown slots.
const SLOTS: usize = 64;

/// A thread's countdown for a sampler is kept as
/// `generation * SPAN + skip - 1`, where `skip` (at least 1) is how many
/// events to let pass before the next sampled one and `generation` (1 to
/// `GENERATIONS`) numbers the sampler's rate changes. The unsampled path
/// tests that the value's top 16 bits are the generation (on aarch64 one
/// compare with a shifted operand and a branch) and decrements it: the
/// rate-change check costs one load. When `skip` runs out the decrement
/// borrows from the generation bits, so the next event is out of range and
/// decides. A rate change moves to the next generation, so on every thread
/// the next decision sees its value out of range and draws a countdown at
/// the new rate; a thread's first countdown, 0, is generation 0, never in
/// use. Generations wrap after `GENERATIONS` changes: a thread that made no
/// decision through exactly that many changes keeps its old countdown once
/// (it is still bounded by the rate it was drawn at).
const SPAN_BITS: u32 = 48;
const SPAN: u64 = 1 << SPAN_BITS;
/// The number of generations (16 bits, 0 left out).
const GENERATIONS: u64 = (1 << (64 - SPAN_BITS)) - 1;

/// The countdown slot of the global sampler [`SAMPLER`].
const GLOBAL_SLOT: usize = 0;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static COUNTDOWNS: [Cell<u64>; SLOTS] = const { [const { Cell::new(0) }; SLOTS] };
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// Decides which events to measure: on average 1 in `rate`.
///
/// `rate` 1 samples every event, 0 disables sampling. The rate can be
/// changed at run time with [`Sampler::set_rate`]; each decision costs a
/// thread-local decrement and a branch when the event is not sampled.
///
/// ```
/// let sampler = dynostats::sample::Sampler::new(100);
/// let sampled = (0..100_000).filter(|_| sampler.sample().is_some()).count();
/// assert!((500..2000).contains(&sampled), "{sampled}");
/// assert_eq!(dynostats::sample::Sampler::new(1).sample(), Some(1));
/// assert_eq!(dynostats::sample::Sampler::new(0).sample(), None);
/// ```
#[derive(Debug)]
pub struct Sampler {
    /// The generation of the rate, 1 to `GENERATIONS` (see `SPAN`).
    generation: AtomicU64,
    rate: AtomicU64,
    /// The countdown slot; `SLOTS` or more when every slot was taken (then
    /// the indexing's own bounds check selects the coin flip, so a slot
    /// costs no extra branch).
    slot: usize,
}

impl Sampler {
    /// The rate of the global sampler until [`set_sample_rate`] changes it:
    /// one region in 1000 is measured.
    pub const DEFAULT_RATE: u64 = 1000;

    /// A sampler that picks 1 in `rate` events (0 = none, 1 = all).
    pub fn new(rate: u64) -> Sampler {
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed).min(SLOTS);
        Sampler {
            generation: AtomicU64::new(1),
            rate: AtomicU64::new(rate),
            slot,
        }
    }

    /// The sampler used by the crate's guards, slot 0.
    pub(crate) const fn global(rate: u64) -> Sampler {
        Sampler {
            generation: AtomicU64::new(1),
            rate: AtomicU64::new(rate),
            slot: GLOBAL_SLOT,
        }
    }

    /// The current rate.
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Changes the rate; every thread uses it from its next decision on,
    /// whatever countdown the old rate left it.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
        // Release: a thread that sees the new generation sees the new rate.
        let next = |generation: u64| Some(generation % GENERATIONS + 1);
        let _ = self
            .generation
            .fetch_update(Ordering::Release, Ordering::Relaxed, next);
    }

    /// Decides for one event: `Some(weight)` when it is sampled, where
    /// `weight` is the rate in force (the number of events the sample stands
    /// for), `None` otherwise.
    #[inline]
    pub fn sample(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::Relaxed);
        COUNTDOWNS
            .try_with(|slots| match slots.get(self.slot) {
                Some(cell) => self.count_down(cell, generation),
                None => self.coin_flip(),
            })
            .ok()
            .flatten()
    }

    /// [`Sampler::sample`] of the global sampler: its slot is known, so
    /// there is no slot to load and no bounds to check.
    #[inline]
    pub(crate) fn sample_global() -> Option<u64> {
        let generation = SAMPLER.generation.load(Ordering::Relaxed);
        COUNTDOWNS
            .try_with(|slots| SAMPLER.count_down(&slots[GLOBAL_SLOT], generation))
            .ok()
            .flatten()
    }

    /// One event on this thread's countdown `cell`.
    #[inline]
    fn count_down(&self, cell: &Cell<u64>, generation: u64) -> Option<u64> {
        let v = cell.get();
        // This generation's countdown, `skip - 1` in the low bits.
        if v >> SPAN_BITS == generation {
            cell.set(v - 1);
            return None;
        }
        self.decide(cell)
    }

    /// A sampled event (`skip` is 0), a thread's first event, or the first
    /// after a rate change (out of range).
    #[cold]
    fn decide(&self, cell: &Cell<u64>) -> Option<u64> {
        // Acquire: the rate read below is the one this generation was set
        // with.
        let generation = self.generation.load(Ordering::Acquire);
        let rate = self.rate.load(Ordering::Relaxed);
        let countdown = |skip: u64| (generation << SPAN_BITS).wrapping_add(skip).wrapping_sub(1);
        if rate == 0 {
            // Unsampled for a very long while, or until the rate changes.
            cell.set(countdown(SPAN));
            return None;
        }
        if cell.get() != countdown(0) {
            // First event at this rate on this thread: it is the first of
            // a fresh countdown.
            let left = draw_countdown(rate);
            if left > 1 {
                cell.set(countdown(left - 2));
                return None;
            }
        }
        cell.set(countdown(draw_countdown(rate) - 1));
        Some(rate)
    }

    /// The decision of a sampler without a countdown slot.
    #[cold]
    fn coin_flip(&self) -> Option<u64> {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return None;
        }
        (next_uniform() * rate as f64 <= 1.0).then_some(rate)
    }
}

/// The process-wide sampler behind [`crate::measure`], measured futures and
/// regions that name no sampler of their own.
pub(crate) static SAMPLER: Sampler = Sampler::global(Sampler::DEFAULT_RATE);

/// Sets the rate of the global sampler used by [`crate::measure`],
/// [`crate::measure_fn`], [`crate::Region::new`] and [`crate::Measure::measured`]: 1 in `rate` regions is measured (1 = all, 0 =
/// none). Records carry the rate as their `weight`. Every thread uses the
/// new rate from its next region on.
pub fn set_sample_rate(rate: u64) {
    SAMPLER.set_rate(rate);
}

/// The rate of the global sampler.
pub fn sample_rate() -> u64 {
    SAMPLER.rate()
}

/// A geometric variate with mean `rate`, at least 1 and below `SPAN` (the
/// tail beyond 2^48 events is cut: no rate anyone uses reaches it).
fn draw_countdown(rate: u64) -> u64 {
    draw_geometric(rate).min(SPAN - 1)
}

fn draw_geometric(rate: u64) -> u64 {
    if rate <= 1 {
        return 1;
    }
    let u = next_uniform();
    // P(countdown = k) = (1-p)^(k-1) p with p = 1/rate.
    let p = 1.0 / rate as f64;
    let k = (u.ln() / (1.0 - p).ln()).floor() + 1.0;
    if k.is_finite() && k >= 1.0 {
        (k as u64).max(1)
    } else {
        rate
    }
}

/// A uniform number in (0, 1] from a per-thread xorshift64* generator.
fn next_uniform() -> f64 {
    RNG.try_with(|cell| {
        let mut x = cell.get();
        if x == 0 {
            // Seed from the clock and the thread's stack address.
            let local = 0u8;
            x = crate::sys::monotonic_ns() ^ ((&local as *const u8 as u64) << 17) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        cell.set(x);
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (r as f64 + 1.0) / (1u64 << 53) as f64
    })
    .unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_one_samples_everything_with_weight_one() {
        let s = Sampler::new(1);
        assert!((0..1000).all(|_| s.sample() == Some(1)));
    }

    #[test]
    fn rate_zero_samples_nothing() {
        let s = Sampler::new(0);
        assert!((0..1000).all(|_| s.sample().is_none()));
    }

    #[test]
    fn mean_rate_and_weight() {
        let s = Sampler::new(50);
        let n = 500_000;
        let picks: Vec<u64> = (0..n).filter_map(|_| s.sample()).collect();
        assert!(picks.iter().all(|&w| w == 50));
        let expected = n as f64 / 50.0;
        let got = picks.len() as f64;
        assert!(
            (got - expected).abs() < expected * 0.05,
            "{got} vs {expected}"
        );
    }

    #[test]
    fn not_phase_locked() {
        // Intervals between samples vary (geometric), unlike "every Nth".
        let s = Sampler::new(10);
        let mut gaps = std::collections::BTreeSet::new();
        let mut last = 0;
        for i in 0..10_000 {
            if s.sample().is_some() {
                gaps.insert(i - last);
                last = i;
            }
        }
        assert!(gaps.len() > 10, "{gaps:?}");
    }

    #[test]
    fn samplers_beyond_the_slots_keep_their_own_rate() {
        let many: Vec<Sampler> = (0..SLOTS + 8).map(|_| Sampler::new(1000)).collect();
        let last = Sampler::new(10);
        assert_eq!(last.slot, SLOTS);
        let n = 200_000;
        let picks = (0..n).filter(|_| last.sample().is_some()).count() as f64;
        let expected = n as f64 / 10.0;
        assert!((picks - expected).abs() < expected * 0.05, "{picks}");
        // And the slotless ones at rate 1000 do not share its decisions.
        let other = many.last().unwrap();
        let picks = (0..n).filter(|_| other.sample().is_some()).count() as f64;
        assert!((100.0..300.0).contains(&picks), "{picks}");
    }

    #[test]
    fn rate_change_takes_effect() {
        let s = Sampler::new(0);
        assert!(s.sample().is_none());
        s.set_rate(1);
        assert_eq!(s.sample(), Some(1));
    }

    #[test]
    fn every_rate_change_is_seen_also_after_the_generations_wrap() {
        // Past `GENERATIONS` changes the generation wraps back to 1; at each
        // change this thread's countdown from the generation before, and a
        // fresh thread's first one, must be out of range.
        let s = Sampler::new(1_000_000_000_000);
        assert_eq!(s.sample(), None);
        let mut wrapped = false;
        for i in 0..GENERATIONS + 10 {
            let before = s.generation.load(Ordering::Relaxed);
            let (rate, expected) = if i % 2 == 0 { (1, Some(1)) } else { (0, None) };
            s.set_rate(rate);
            let after = s.generation.load(Ordering::Relaxed);
            assert!((1..=GENERATIONS).contains(&after));
            wrapped |= after < before;
            assert_eq!(s.sample(), expected, "change {i}");
            if i % 4096 == 0 || after < before {
                let fresh = std::thread::scope(|t| t.spawn(|| s.sample()).join().unwrap());
                assert_eq!(fresh, expected, "a new thread at change {i}");
            }
        }
        assert!(wrapped);
    }
}
