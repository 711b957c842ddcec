//! `emit_and_write` of `benches/pipeline.rs` with mimalloc as the global
//! allocator, to set beside the system allocator's figure. Only this bench
//! chooses an allocator: the library never does.
//!
//! ```text
//! cargo bench --bench pipeline -- emit_and_write
//! cargo bench --bench emit_mimalloc
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/emit.rs"]
#[allow(dead_code)] // writer_capacity is benches/pipeline.rs's
mod emit;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn emit_and_write(c: &mut Criterion) {
    const N: u64 = 200_000;
    let mut g = c.benchmark_group("emit_and_write (mimalloc)");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("file_200k_records", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| emit::emit_and_write_n(N, 1)).sum())
    });
    g.throughput(Throughput::Elements(2 * N));
    g.bench_function("file_200k_records_x2_producers", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| emit::emit_and_write_n(N, 2)).sum())
    });
    g.finish();
}

criterion_group!(benches, emit_and_write);
criterion_main!(benches);
