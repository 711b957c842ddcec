//! [`Grid`]: the one layout of the text tables (`report`, `compare`),
//! fitted to a [`TextStyle`]: columns that are 0 or empty in every row
//! left out (unless asked for), names cut with `…` to fit the width, and,
//! when a row still does not fit, its columns moved to further blocks of
//! the same rows, each block repeating the rows' key columns (kind,
//! name). A number is never cut, and a row never wraps inside a cell.

use std::io::{self, Write};

use super::output::{Paint, TextStyle, cut, width};

/// Spaces between two columns.
const GAP: usize = 2;

/// Where a column's cells sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text (kinds, names, verdicts).
    Left,
    /// Numbers.
    Right,
}

/// One cell: its text and, on a terminal, its colour.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cell {
    text: String,
    paint: Option<Paint>,
}

impl Cell {
    /// `text` coloured by `paint` where the style has colour.
    pub(crate) fn painted(text: impl Into<String>, paint: Option<Paint>) -> Cell {
        Cell {
            text: text.into(),
            paint,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, paint: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// One column: its header and how the layout may treat it.
#[derive(Clone, Debug)]
pub(crate) struct Column {
    header: String,
    align: Align,
    key: bool,
    shrink_to: Option<usize>,
    first: bool,
    optional: bool,
    joined: bool,
}

impl Column {
    /// Repeated at the left of every block (kind, name, splits).
    pub(crate) fn key(&mut self) -> &mut Self {
        self.key = true;
        self
    }

    /// May be cut with `…` down to `columns` (or its header's width) to
    /// fit: names, never numbers.
    pub(crate) fn shrink_to(&mut self, columns: usize) -> &mut Self {
        self.shrink_to = Some(columns);
        self
    }

    /// Stays in the first block when a row is split (the figures a reader
    /// decides by).
    pub(crate) fn first(&mut self) -> &mut Self {
        self.first = true;
        self
    }

    /// Left out when 0, `-` or empty in every row (unless
    /// [`TextStyle::all_columns`]).
    pub(crate) fn optional(&mut self) -> &mut Self {
        self.optional = true;
        self
    }

    /// Stays in the block of the column before it (`p50` and `p99`, `base`
    /// and `cand`).
    pub(crate) fn joined(&mut self) -> &mut Self {
        self.joined = true;
        self
    }
}

/// A table of text cells, laid out when written.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grid {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl Grid {
    /// No columns, no rows.
    pub(crate) fn new() -> Grid {
        Grid::default()
    }

    /// Adds a column headed `header`; its flags are set on what this
    /// returns.
    pub(crate) fn column(&mut self, header: impl Into<String>, align: Align) -> &mut Column {
        self.columns.push(Column {
            header: header.into(),
            align,
            key: false,
            shrink_to: None,
            first: false,
            optional: false,
            joined: false,
        });
        self.columns.last_mut().expect("just pushed")
    }

    /// Adds a row: one cell per column, in the columns' order.
    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// True without rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether column `c` says nothing: 0, `-` or empty in every row.
    fn says_nothing(&self, c: usize) -> bool {
        self.rows.iter().all(|r| {
            let t = r.get(c).map_or("", |cell| cell.text.trim());
            t.is_empty() || t == "-" || t == "0"
        })
    }

    /// Writes the header and the rows laid out by `style` (see the
    /// module), and returns the headers of the optional columns left out
    /// because they said nothing.
    pub(crate) fn write(&self, out: &mut impl Write, style: &TextStyle) -> io::Result<Vec<String>> {
        let mut dropped = Vec::new();
        let mut shown = Vec::new();
        for (c, column) in self.columns.iter().enumerate() {
            if column.optional && !style.all_columns && self.says_nothing(c) {
                dropped.push(column.header.clone());
            } else {
                shown.push(c);
            }
        }
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(c, column)| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |cell| width(&cell.text)))
                    .chain([width(&column.header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let blocks = match style.width {
            None => vec![shown],
            Some(max) => {
                // Names cut by as little as gives the fewest blocks: all
                // on one line if cutting can do it, else as many columns
                // per line as the cut names leave room for.
                let room: usize = shown
                    .iter()
                    .filter_map(|&c| Some(widths[c].saturating_sub(self.least(c)?)))
                    .sum();
                // Lines that overflow count first (a narrow terminal may
                // leave no choice), then the blocks, then the cut.
                let mut best: Option<(usize, usize, usize)> = None;
                for cut in 0..=room {
                    let shrunk = self.shrunk(&shown, &widths, cut);
                    let blocks = self.blocks(&shown, &shrunk, max);
                    let overflow = blocks
                        .iter()
                        .map(|b| line_width(b, &shrunk).saturating_sub(max))
                        .max()
                        .unwrap_or(0);
                    let this = (overflow, blocks.len(), cut);
                    if best.is_none_or(|b| (this.0, this.1) < (b.0, b.1)) {
                        best = Some(this);
                    }
                    if this.0 == 0 && this.1 == 1 {
                        break;
                    }
                }
                widths = self.shrunk(&shown, &widths, best.map_or(0, |b| b.2));
                self.blocks(&shown, &widths, max)
            }
        };
        for (i, block) in blocks.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            let header: Vec<Cell> = block
                .iter()
                .map(|&c| Cell::from(self.columns[c].header.as_str()))
                .collect();
            self.write_line(out, block, &widths, &header, style)?;
            for row in &self.rows {
                let cells: Vec<Cell> = block.iter().map(|&c| row[c].clone()).collect();
                self.write_line(out, block, &widths, &cells, style)?;
            }
        }
        Ok(dropped)
    }

    /// How narrow column `c` may be cut, if at all.
    fn least(&self, c: usize) -> Option<usize> {
        let column = &self.columns[c];
        column
            .shrink_to
            .map(|least| least.max(width(&column.header)).max(2))
    }

    /// `widths` with `cut` columns taken from the cuttable ones among
    /// `shown`, the first first.
    fn shrunk(&self, shown: &[usize], widths: &[usize], mut cut: usize) -> Vec<usize> {
        let mut widths = widths.to_vec();
        for &c in shown {
            if let Some(least) = self.least(c) {
                let take = widths[c].saturating_sub(least).min(cut);
                widths[c] -= take;
                cut -= take;
            }
        }
        widths
    }

    /// The blocks of `shown` columns, each at most `max` wide where it
    /// can be: the key columns in every block; the first block holds the
    /// columns marked first and, in order, the others that fit; further
    /// blocks the rest, in order.
    fn blocks(&self, shown: &[usize], widths: &[usize], max: usize) -> Vec<Vec<usize>> {
        if line_width(shown, widths) <= max {
            return vec![shown.to_vec()];
        }
        let keys: Vec<usize> = shown
            .iter()
            .copied()
            .filter(|&c| self.columns[c].key)
            .collect();
        // Units: a column and the joined ones after it.
        let mut units: Vec<Vec<usize>> = Vec::new();
        for &c in shown.iter().filter(|&&c| !self.columns[c].key) {
            match units.last_mut() {
                Some(unit) if self.columns[c].joined => unit.push(c),
                _ => units.push(vec![c]),
            }
        }
        let is_first = |unit: &Vec<usize>| unit.iter().any(|&c| self.columns[c].first);
        let mut block = keys.clone();
        block.extend(units.iter().filter(|u| is_first(u)).flatten());
        let mut rest: Vec<Vec<usize>> = if line_width(&block, widths) <= max {
            units.into_iter().filter(|u| !is_first(u)).collect()
        } else {
            // The first columns alone do not fit: no block is special.
            block.clone_from(&keys);
            units
        };
        let mut blocks = Vec::new();
        loop {
            let mut taken = 0;
            for unit in &rest {
                let mut wider = block.clone();
                wider.extend(unit);
                // A block takes at least one unit, fitting or not.
                if line_width(&wider, widths) > max && block.len() > keys.len() {
                    break;
                }
                block = wider;
                taken += 1;
            }
            rest.drain(..taken);
            block.sort_unstable();
            blocks.push(std::mem::replace(&mut block, keys.clone()));
            if rest.is_empty() {
                return blocks;
            }
        }
    }

    /// One line of `cells` (the columns of `block`), padded to `widths`.
    fn write_line(
        &self,
        out: &mut impl Write,
        block: &[usize],
        widths: &[usize],
        cells: &[Cell],
        style: &TextStyle,
    ) -> io::Result<()> {
        let mut line = String::new();
        for (i, (&c, cell)) in block.iter().zip(cells).enumerate() {
            if i > 0 {
                line.push_str(&" ".repeat(GAP));
            }
            let text = if width(&cell.text) > widths[c] {
                cut(&cell.text, widths[c])
            } else {
                cell.text.clone()
            };
            let pad = " ".repeat(widths[c] - width(&text));
            let text = match cell.paint {
                Some(p) => p.apply(&text, style.color),
                None => text,
            };
            match self.columns[c].align {
                Align::Left => {
                    line.push_str(&text);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(&text);
                }
            }
        }
        writeln!(out, "{}", line.trim_end())
    }
}

/// The width of a line of `columns`.
fn line_width(columns: &[usize], widths: &[usize]) -> usize {
    columns.iter().map(|&c| widths[c]).sum::<usize>() + GAP * columns.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        let mut g = Grid::new();
        g.column("kind", Align::Left).key();
        g.column("name", Align::Left).key().shrink_to(6);
        g.column("errors", Align::Right).optional();
        g.column("base", Align::Right);
        g.column("cand", Align::Right).joined();
        g.column("interval", Align::Right).first();
        g.column("verdict", Align::Left).first();
        for (name, errors) in [("GET /a/very/long/name", "0"), ("GET /b", "0")] {
            g.row(vec![
                "endpoint".into(),
                name.into(),
                errors.into(),
                "1.00 ms".into(),
                "1.10 ms".into(),
                "[+9.12%, +10.88%]".into(),
                Cell::painted("slower", Some(Paint::Worse)),
            ]);
        }
        g
    }

    fn written(g: &Grid, style: &TextStyle) -> (String, Vec<String>) {
        let mut out = Vec::new();
        let dropped = g.write(&mut out, style).unwrap();
        (String::from_utf8(out).unwrap(), dropped)
    }

    #[test]
    fn wide_enough_is_one_line_per_row_without_empty_columns() {
        let (text, dropped) = written(&grid(), &TextStyle::new());
        assert_eq!(dropped, ["errors"]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[1],
            "endpoint  GET /a/very/long/name  1.00 ms  1.10 ms  [+9.12%, +10.88%]  slower"
        );
        // Every column asked for: errors is back.
        let (text, dropped) = written(&grid(), &TextStyle::new().all_columns(true));
        assert!(dropped.is_empty());
        assert!(text.lines().next().unwrap().contains("errors"), "{text}");
    }

    #[test]
    fn names_are_cut_before_rows_are_split() {
        // 70 columns: the name is cut to fit one line.
        let (text, _) = written(&grid(), &TextStyle::new().width(Some(70)));
        assert!(text.lines().all(|l| width(l) <= 70), "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("GET /a/very/l… "), "{text}");
    }

    #[test]
    fn narrow_rows_move_columns_to_a_second_block_whole() {
        let (text, _) = written(&grid(), &TextStyle::new().width(Some(50)));
        assert!(text.lines().all(|l| width(l) <= 50), "{text}");
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 2, "{text}");
        // The first block keeps the columns marked first; base and cand
        // (joined) move together; kind and name start every block.
        assert!(blocks[0].starts_with("kind") && blocks[0].contains("verdict"));
        assert!(blocks[0].contains("[+9.12%, +10.88%]") && !blocks[0].contains("base"));
        assert!(blocks[1].starts_with("kind") && blocks[1].contains("1.00 ms  1.10 ms"));
        for number in ["1.00 ms", "1.10 ms", "[+9.12%, +10.88%]"] {
            assert_eq!(text.matches(number).count(), 2, "{number} in {text}");
        }
    }

    #[test]
    fn colour_goes_around_the_word_not_the_padding() {
        let (text, _) = written(&grid(), &TextStyle::new().color(true));
        assert!(text.contains("\x1b[31mslower\x1b[0m\n"), "{text:?}");
        let (plain, _) = written(&grid(), &TextStyle::new());
        assert!(!plain.contains('\x1b'));
    }
}
