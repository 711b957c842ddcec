//! The `tracing` layer: `#[tracing::instrument]`-ed functions give the same
//! call tree (paths and call counts) as the same functions with explicit
//! scopes, and a configured field splits a span by its value.

use dynostats::profile::{self, CallTree, ProfileConfig, Timer};
use dynostats::sink::MemorySink;
use dynostats::tracing::DynostatsLayer;
use dynostats::{Pipeline, Record, RecordKind, Region};
use tracing_subscriber::layer::SubscriberExt;

fn work(n: u64) -> u64 {
    std::hint::black_box((0..n).fold(0u64, |x, i| x ^ i))
}

#[tracing::instrument]
fn handler(items: u64) -> u64 {
    let mut total = work(1000);
    for i in 0..items {
        total += price(i);
    }
    total + query("users") + query("orders") + query("users")
}

#[tracing::instrument]
fn price(item: u64) -> u64 {
    work(2000) + tax(item)
}

#[tracing::instrument]
fn tax(item: u64) -> u64 {
    work(500 + item)
}

#[tracing::instrument]
fn query(table: &str) -> u64 {
    work(3000 + table.len() as u64)
}

fn explicit_handler(items: u64) -> u64 {
    let _s = dynostats::scope("handler");
    let mut total = work(1000);
    for i in 0..items {
        total += explicit_price(i);
    }
    total + explicit_query("users") + explicit_query("orders") + explicit_query("users")
}

fn explicit_price(item: u64) -> u64 {
    let _s = dynostats::scope("price");
    work(2000) + explicit_tax(item)
}

fn explicit_tax(item: u64) -> u64 {
    dynostats::scope_fn("tax", || work(500 + item))
}

fn explicit_query(table: &str) -> u64 {
    let _s = dynostats::scope("query");
    work(3000 + table.len() as u64)
}

fn profile_of(f: impl FnOnce() -> u64) -> Record {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
    pipeline.in_scope(|| Region::forced("request").run(f));
    pipeline.flush().unwrap();
    mem.records_of(RecordKind::Profile)
        .pop()
        .expect("a profile record")
}

/// Paths and calls, in a stable order.
fn shape(record: &Record) -> Vec<(String, u64)> {
    let tree = CallTree::from_record(record).unwrap();
    let mut shape: Vec<(String, u64)> = (0..tree.nodes().len())
        .map(|i| (tree.path(i).join("/"), tree.nodes()[i].calls))
        .collect();
    shape.sort();
    shape
}

#[test]
fn instrumented_functions_give_the_tree_of_explicit_scopes() {
    let _profiler = crate::hold_profiler();
    profile::configure(ProfileConfig::builder().timer(Timer::CpuTime).build());
    let explicit = profile_of(|| explicit_handler(3));
    let subscriber = tracing_subscriber::registry().with(DynostatsLayer::new());
    let traced = tracing::subscriber::with_default(subscriber, || profile_of(|| handler(3)));
    assert_eq!(shape(&traced), shape(&explicit));
    assert_eq!(
        shape(&traced),
        [
            ("request".to_string(), 1),
            ("request/handler".to_string(), 1),
            ("request/handler/price".to_string(), 3),
            ("request/handler/price/tax".to_string(), 3),
            ("request/handler/query".to_string(), 3),
        ]
    );
    let tree = CallTree::from_record(&traced).unwrap();
    let exclusive: i64 = tree.nodes().iter().map(|n| n.exclusive).sum();
    assert_eq!(exclusive + tree.overhead(), tree.root().inclusive);
    assert!(tree.find(&["handler", "price"]).unwrap().inclusive > 0);

    // Without a sampled region the layer enters no scope.
    let subscriber = tracing_subscriber::registry().with(DynostatsLayer::new());
    let before = profile::stats();
    tracing::subscriber::with_default(subscriber, || handler(3));
    assert_eq!(profile::stats(), before);

    // One field names the scope: one node per table.
    let subscriber = tracing_subscriber::registry().with(DynostatsLayer::new().name_field("table"));
    let by_table = tracing::subscriber::with_default(subscriber, || profile_of(|| handler(1)));
    let shape = shape(&by_table);
    assert!(
        shape.contains(&("request/handler/query:users".to_string(), 2)),
        "{shape:?}"
    );
    assert!(
        shape.contains(&("request/handler/query:orders".to_string(), 1)),
        "{shape:?}"
    );
    assert!(
        shape.contains(&("request/handler/price".to_string(), 1)),
        "{shape:?}"
    );
}
