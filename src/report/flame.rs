//! Folded stacks of summed call trees: the input of flame graph tools
//! (inferno, speedscope, Pyroscope's ingest), what `dynostats flamegraph`
//! draws.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::format::escape_name;
use super::tree::Calls;

/// A name as one frame of a folded stack: `;` (the frame separator)
/// becomes `:`, and what must not reach a terminal or break a line is
/// escaped as in every other output ([`escape_name`]).
pub fn folded_frame(name: &str) -> String {
    escape_name(name).replace(';', ":")
}

impl Calls {
    /// Writes folded stacks, one line per path with a positive weighted
    /// exclusive amount: `root;scope;scope AMOUNT`, paths in order. A
    /// flame graph drawn from them has each frame as wide as its path's
    /// weighted inclusive amount (the profiler's overhead left out of the
    /// root). Negative exclusive amounts (clock noise on small scopes, or
    /// memory freed with the `rss` timer) are left out: flame graphs have
    /// no negative widths.
    pub fn write_folded(&self, out: &mut impl Write) -> io::Result<()> {
        let mut line = String::new();
        for (names, exclusive, _) in self.paths() {
            if exclusive <= 0 {
                continue;
            }
            line.clear();
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    line.push(';');
                }
                line.push_str(&folded_frame(name));
            }
            let _ = writeln!(line, " {exclusive}");
            out.write_all(line.as_bytes())?;
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
