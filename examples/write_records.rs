//! Writes a record file from a few measured regions, for trying readers on
//! (`dynostats::read`, `scripts/check_msgpack.py`, the CLI).
//!
//! ```sh
//! cargo run --example write_records -- /tmp/records.msgpack [regions]
//! python3 scripts/check_msgpack.py /tmp/records.msgpack > /dev/null
//! ```

use dynostats::{Pipeline, Region, sink::FileSink};

fn work(n: u64) -> u64 {
    (0..n).fold(0u64, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: write_records FILE [REGIONS]")?;
    let regions: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);

    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path)?)
        .label("example", "write_records")
        .build()?;
    let pipeline = dynostats::install(pipeline).map_err(|e| e.to_string())?;
    dynostats::set_sample_rate(1);

    for i in 0..regions {
        let _request = Region::new("handle")
            .label("shard", &(i % 4).to_string())
            .start();
        std::hint::black_box(dynostats::measure_fn("parse", || work(2_000)));
        std::hint::black_box(dynostats::measure_fn("render", || work(10_000)));
    }

    let stats = pipeline.shutdown()?;
    let sink = &stats.sinks[0];
    println!(
        "{path}: {} records ({} bytes), {} dropped (queue full), {} sink errors",
        sink.written, sink.bytes_written, stats.dropped_queue_full, sink.dropped_sink_error
    );
    Ok(())
}
