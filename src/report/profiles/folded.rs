//! Folded stacks of summed call trees: the input of flame graph tools
//! (inferno, speedscope, Pyroscope's ingest), what `dynostats flamegraph`
//! draws. Written by the crate's one folded writer, the one that writes a
//! single record's tree ([`CallTree::folded`](crate::profile::CallTree::folded)).

use std::io::{self, Write};

use super::calls::Calls;
use crate::profile::view::push_folded;

impl Calls {
    /// Writes folded stacks, one line per path with a positive weighted
    /// exclusive amount: `root;scope;scope AMOUNT`, paths in order, frames
    /// as [`folded_frame`](crate::profile::folded_frame) writes them. A
    /// flame graph drawn from them has each frame as wide as its path's
    /// weighted inclusive amount (the profiler's overhead left out of the
    /// root). Negative exclusive amounts (clock noise on small scopes, or
    /// memory freed with the `rss` timer) are left out: flame graphs have
    /// no negative widths.
    pub fn write_folded(&self, out: &mut impl Write) -> io::Result<()> {
        let mut line = String::new();
        for (names, exclusive, _) in self.paths() {
            line.clear();
            if push_folded(&mut line, names, exclusive) {
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
