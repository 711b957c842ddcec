//! Prints what this machine can measure, why not, and what a read costs;
//! then counts a loop of known instruction count and compares.
//!
//! ```sh
//! cargo run --example probe
//! ```

fn main() {
    let probe = dynostats::probe();
    println!("{probe}");
    println!();
    let check = dynostats::probe::self_check(1_000_000);
    println!("{check}");
    if let dynostats::probe::SelfCheck::Ran { .. } = check {
        if !check.passed() {
            std::process::exit(1);
        }
    }
}
