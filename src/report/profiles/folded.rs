//! Folded stacks of summed call trees: the input of flame graph tools
//! (inferno, speedscope, Pyroscope's ingest), what `dynostats flamegraph`
//! draws. Written by the crate's one folded writer, the one that writes a
//! single record's tree ([`CallTree::folded`](crate::profile::CallTree::folded)).

use std::io::{self, Write};

use super::calls::Calls;
use crate::profile::view::push_folded;

/// The one rule by which sums are brought within a tool's 64 bits: 1
/// while `sum` is at most `limit`, else the smallest power of ten that
/// brings it below [`Calls::FOLDED_TARGET`]. Folded stacks and pprof
/// profiles scale by it.
pub(super) fn scale_below(sum: u128, limit: u128) -> u128 {
    if sum <= limit {
        return 1;
    }
    let mut scale = 1u128;
    while sum / scale >= Calls::FOLDED_TARGET {
        scale *= 10;
    }
    scale
}

impl Calls {
    /// Folded stacks whose amounts sum beyond this are scaled for tools
    /// that count in 64 bits ([`Calls::folded_scale`]): inferno parses
    /// every amount as a `u64` and adds them up, so a sum beyond `u64`
    /// overflows there. Half of `u64::MAX` leaves room for its sums.
    pub const FOLDED_LIMIT: u128 = 1 << 63;

    /// Scaled folded stacks sum to less than this (2^53: every sum and
    /// width computed from them in `f64`, or in JSON, is exact).
    pub const FOLDED_TARGET: u128 = 1 << 53;

    /// The sum of the amounts [`Calls::write_folded`] writes: every
    /// positive weighted exclusive amount of a path (saturating at
    /// `u128::MAX`).
    pub fn folded_sum(&self) -> u128 {
        self.path_exclusives()
            .filter(|&x| x > 0)
            .fold(0u128, |sum, x| sum.saturating_add(x as u128))
    }

    /// What to divide the folded amounts by so that a tool counting in 64
    /// bits can add them up: 1 while [`Calls::folded_sum`] is at most
    /// [`Calls::FOLDED_LIMIT`] (the amounts are written exact), else the
    /// smallest power of ten that brings the sum below
    /// [`Calls::FOLDED_TARGET`]. Whoever writes scaled stacks must say so:
    /// the amounts are then in units of that power of ten.
    pub fn folded_scale(&self) -> u128 {
        scale_below(self.folded_sum(), Self::FOLDED_LIMIT)
    }

    /// Writes folded stacks, one line per path with a positive weighted
    /// exclusive amount: `root;scope;scope AMOUNT`, paths in order, frames
    /// as [`folded_frame`](crate::profile::folded_frame) writes them. A
    /// flame graph drawn from them has each frame as wide as its path's
    /// weighted inclusive amount (the profiler's overhead left out of the
    /// root). Negative exclusive amounts (clock noise on small scopes, or
    /// memory freed with the `rss` timer) are left out: flame graphs have
    /// no negative widths. The amounts are exact (they may exceed `u64`:
    /// see [`Calls::write_folded_scaled`]).
    pub fn write_folded(&self, out: &mut impl Write) -> io::Result<()> {
        self.write_folded_scaled(out, 1)
    }

    /// [`Calls::write_folded`] with every amount divided by `scale`
    /// (rounded down; a path whose amount becomes 0 is left out), e.g. by
    /// [`Calls::folded_scale`] for tools that count in 64 bits. A `scale`
    /// of 0 is taken as 1.
    pub fn write_folded_scaled(&self, out: &mut impl Write, scale: u128) -> io::Result<()> {
        let scale = i128::try_from(scale.max(1)).unwrap_or(i128::MAX);
        let mut line = String::new();
        for (names, exclusive, _) in self.paths() {
            line.clear();
            if push_folded(&mut line, names, exclusive / scale) {
                out.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }

    /// [`Calls::write_folded`] into a string.
    pub fn folded(&self) -> String {
        let mut out = Vec::new();
        let _ = self.write_folded(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
