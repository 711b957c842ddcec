//! Feeds arbitrary bytes to `dynostats::read` and checks what must hold for
//! any input: no panic; each item starts where the previous one ended; a
//! record decodes from exactly its bytes, which an independent MessagePack
//! decoder frames the same way (and a record in its canonical encoding
//! re-encodes to those very bytes); an error names the offset at which its
//! object starts, inside the input and at or after the end of the last
//! record; nothing is read past the input, and iteration ends.

#![no_main]

use dynostats::{Error, Record};
use libfuzzer_sys::fuzz_target;

/// A small limit, so the fuzzer reaches it with small inputs.
const MAX_RECORD_LEN: usize = 512;

fuzz_target!(|input: &[u8]| {
    check(input, dynostats::read(input).max_record_len(MAX_RECORD_LEN));
    check(input, dynostats::read(input));
});

fn check(input: &[u8], mut reader: dynostats::record::RecordReader<&[u8]>) {
    let len = input.len() as u64;
    let mut items = 0usize;
    let mut last_error_ends = false;
    loop {
        let start = reader.offset();
        let Some(item) = reader.next() else { break };
        let end = reader.offset();
        items += 1;
        assert!(items <= input.len(), "more items than bytes");
        assert!(
            !last_error_ends,
            "an item after an error that ends the iteration"
        );
        assert!(
            start <= end && end <= len,
            "offsets {start}..{end} of {len}"
        );
        let span = &input[start as usize..end as usize];
        match item {
            Ok(record) => {
                assert!(end > start);
                assert_eq!(Record::from_msgpack(span).ok().as_ref(), Some(&record));
                let mut rest = &input[start as usize..];
                rmpv::decode::read_value(&mut rest).expect("a record is MessagePack");
                assert_eq!(len - rest.len() as u64, end, "framed unlike rmpv");
                // Re-encoding gives the same record; and the same bytes
                // when the input was in the canonical encoding.
                let encoded = record.to_msgpack();
                assert_eq!(Record::from_msgpack(&encoded).ok().as_ref(), Some(&record));
                let canonical = Record::from_msgpack(&encoded).unwrap().to_msgpack();
                assert_eq!(canonical, encoded);
            }
            Err(Error::Decode { offset, .. }) | Err(Error::Truncated { offset }) => {
                assert_eq!(offset, start, "the error names another offset");
                assert!(offset < len, "error offset {offset} outside {len} bytes");
                if end > start && Record::from_msgpack(span).is_err() {
                    // A whole map that is not a record: the iteration goes
                    // on after it, unless the framing failed.
                } else {
                    last_error_ends = true;
                }
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert!(reader.next().is_none(), "items after the end");
}
