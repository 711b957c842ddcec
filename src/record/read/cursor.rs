//! The MessagePack cursor over the reader's buffer: the head of each
//! value, every length checked against the bytes present and the record
//! size limit before it is used, and nesting skipped without recursion.

use super::MAX_DEPTH;
use super::frame::Stop;

/// The head of one MessagePack value. Strings, binaries and extensions
/// carry their payload; arrays and maps only their length (their elements
/// follow).
#[derive(Clone, Copy)]
pub(super) enum Head<'a> {
    Nil,
    Bool(bool),
    Uint(u64),
    /// A negative integer.
    Neg(i64),
    Float,
    Str(&'a [u8]),
    Bin,
    Ext,
    Array(u64),
    Map(u64),
}

impl Head<'_> {
    #[inline]
    pub(super) fn describe(self) -> &'static str {
        match self {
            Head::Nil => "nil",
            Head::Bool(_) => "a boolean",
            Head::Uint(_) => "an unsigned integer",
            Head::Neg(_) => "a negative integer",
            Head::Float => "a float",
            Head::Str(_) => "a string",
            Head::Bin => "binary data",
            Head::Ext => "an extension value",
            Head::Array(_) => "an array",
            Head::Map(_) => "a map",
        }
    }

    /// The objects that follow this head as its elements.
    #[inline]
    pub(super) fn children(self) -> u64 {
        match self {
            Head::Array(n) => n,
            Head::Map(n) => 2 * n,
            _ => 0,
        }
    }
}

/// A cursor over the bytes of one record (and what follows it in the
/// buffer), refusing any length that would take the record past `max_len`.
pub(super) struct Cursor<'a> {
    /// The bytes from the record's start.
    pub(super) bytes: &'a [u8],
    /// Bytes consumed from the record's start.
    pub(super) pos: usize,
    /// The record size limit.
    pub(super) max_len: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8], Stop> {
        if n > (self.max_len - self.pos.min(self.max_len)) as u64 {
            return Err(self.too_long(n));
        }
        let n = n as usize;
        if self.bytes.len() - self.pos < n {
            return Err(Stop::Incomplete);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn too_long(&self, more: u64) -> Stop {
        Stop::Framing(format!(
            "the record would be longer than the limit of {} bytes \
             ({} bytes read, {} more announced): a corrupt length?",
            self.max_len, self.pos, more
        ))
    }

    #[inline(always)]
    pub(super) fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    #[inline(always)]
    pub(super) fn be(&mut self, width: u64) -> Result<u64, Stop> {
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    }

    /// Checks that `objects` more objects (each at least one byte) can fit.
    #[inline]
    pub(super) fn room_for(&self, objects: u64) -> Result<(), Stop> {
        if objects > (self.max_len - self.pos.min(self.max_len)) as u64 {
            return Err(self.too_long(objects));
        }
        Ok(())
    }

    /// Reads the head of the next value. Always inlined: returned through
    /// memory, its result costs a store-forwarding stall per value.
    #[inline(always)]
    pub(super) fn head(&mut self) -> Result<Head<'a>, Stop> {
        let marker = self.byte()?;
        let head = match marker {
            0x00..=0x7f => Head::Uint(u64::from(marker)),
            0x80..=0x8f => Head::Map(u64::from(marker & 0x0f)),
            0x90..=0x9f => Head::Array(u64::from(marker & 0x0f)),
            0xa0..=0xbf => Head::Str(self.take(u64::from(marker & 0x1f))?),
            0xc0 => Head::Nil,
            0xc1 => {
                return Err(Stop::Framing(format!(
                    "the byte 0xc1 (never used by MessagePack) at offset {} in the record",
                    self.pos - 1
                )));
            }
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4..=0xc6 => {
                let len = self.be(1 << (marker - 0xc4))?;
                self.take(len)?;
                Head::Bin
            }
            0xc7..=0xc9 => {
                let len = self.be(1 << (marker - 0xc7))?;
                self.take(len + 1)?;
                Head::Ext
            }
            0xca => {
                self.take(4)?;
                Head::Float
            }
            0xcb => {
                self.take(8)?;
                Head::Float
            }
            0xcc..=0xcf => Head::Uint(self.be(1 << (marker - 0xcc))?),
            0xd0..=0xd3 => {
                let width = 1u32 << (marker - 0xd0);
                let raw = self.be(u64::from(width))?;
                // Sign-extend from `width` bytes.
                let shift = 64 - 8 * width;
                let v = ((raw << shift) as i64) >> shift;
                if v >= 0 {
                    Head::Uint(v as u64)
                } else {
                    Head::Neg(v)
                }
            }
            0xd4..=0xd8 => {
                self.take(1 + (1 << (marker - 0xd4)))?;
                Head::Ext
            }
            0xd9..=0xdb => {
                let len = self.be(1 << (marker - 0xd9))?;
                Head::Str(self.take(len)?)
            }
            0xdc | 0xdd => Head::Array(self.be(2 << (marker - 0xdc))?),
            0xde | 0xdf => Head::Map(self.be(2 << (marker - 0xde))?),
            0xe0..=0xff => Head::Neg(i64::from(marker as i8)),
        };
        self.room_for(head.children())?;
        Ok(head)
    }

    /// Skips the elements of `head` (a container at nesting `level`; the
    /// record map is level 1). Returns `false` when they nest deeper than
    /// [`MAX_DEPTH`] (they are skipped all the same).
    pub(super) fn skip_children(&mut self, head: Head<'a>, level: usize) -> Result<bool, Stop> {
        let children = head.children();
        if children == 0 {
            return Ok(true);
        }
        if level > MAX_DEPTH {
            self.skip_flat(children)?;
            return Ok(false);
        }
        // Objects still to skip at each open level, innermost last.
        let mut stack = [0u64; MAX_DEPTH + 1];
        let mut top = 0;
        stack[0] = children;
        let mut deep_enough = true;
        loop {
            while stack[top] == 0 {
                if top == 0 {
                    return Ok(deep_enough);
                }
                top -= 1;
            }
            stack[top] -= 1;
            let child = self.head()?;
            let n = child.children();
            if n > 0 {
                // The child is a container at level `level + top + 1`.
                if level + top + 1 > MAX_DEPTH {
                    deep_enough = false;
                    self.skip_flat(n)?;
                } else {
                    top += 1;
                    stack[top] = n;
                }
            }
        }
    }

    /// Skips `pending` objects without following their depth: framing only.
    pub(super) fn skip_flat(&mut self, mut pending: u64) -> Result<(), Stop> {
        while pending > 0 {
            pending -= 1;
            let head = self.head()?;
            pending += head.children();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SkipReason, read};
    use crate::record::{Record, RecordKind};

    /// The record `{..fields of r, "z": [[[...nil...]]]}` with the record
    /// map and `arrays` arrays: `arrays + 1` levels in all.
    fn nested(arrays: usize) -> Vec<u8> {
        let mut bytes = Record::new(RecordKind::Region, "deep").to_msgpack();
        // Bump the fixmap's entry count by one for the extra key.
        assert!(matches!(bytes[0], 0x80..=0x8e), "{:#x}", bytes[0]);
        bytes[0] += 1;
        bytes.extend_from_slice(&[0xa1, b'z']);
        bytes.extend(std::iter::repeat_n(0x91, arrays));
        bytes.push(0xc0);
        bytes
    }

    #[test]
    fn nesting_is_bounded_without_exhausting_the_stack() {
        // 32 levels decode (the unknown field is ignored); 33 do not.
        assert_eq!(Record::from_msgpack(&nested(31)).unwrap().name, "deep");
        let err = Record::from_msgpack(&nested(32)).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        // Far deeper, on a thread with a small stack, and the record after
        // it is still read.
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let mut bytes = nested(100_000);
                bytes.extend(Record::new(RecordKind::Region, "after").to_msgpack());
                let mut reader = read(&bytes[..]);
                assert!(reader.next().unwrap().is_err());
                assert_eq!(reader.next().unwrap().unwrap().name, "after");
                assert_eq!(reader.damage().skipped[&SkipReason::TooDeep], 1);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
