//! Prints what this machine can measure, where each counter comes from,
//! why not, and what a read costs; then what this thread's own counters
//! read now; then counts a loop of known instruction count and compares.
//!
//! ```sh
//! cargo run --example probe
//! ```

fn main() {
    let probe = dynostats::probe();
    println!("{probe}");
    println!();
    let _ = dynostats::snapshot();
    if let Some(thread) = dynostats::probe::Probe::thread() {
        println!("this thread's counters, as its snapshots read them now:");
        println!("{thread}");
        println!();
    }
    let check = dynostats::probe::self_check(1_000_000);
    println!("{check}");
    if let dynostats::probe::SelfCheck::Ran { .. } = check {
        if !check.passed() {
            std::process::exit(1);
        }
    }
}
