//! Which measurement the library's benches run under, with the same code:
//! criterion's wall time by default, user-space instructions of the bench
//! thread when `DYNOSTATS_BENCH_MEASUREMENT=instructions` (needs the
//! `criterion` feature and a hardware PMU: elsewhere the bench says why and
//! exits with status 2).
//!
//! ```text
//! cargo bench --bench pipeline
//! DYNOSTATS_BENCH_MEASUREMENT=instructions cargo bench --features criterion --bench pipeline
//! ```
//!
//! Group names get an ` (instructions)` suffix under instructions, so
//! criterion's saved baselines of one measurement are never compared with
//! the other's.

// Each bench uses a different subset.
#![allow(dead_code)]

/// The environment variable that picks the measurement.
pub const VAR: &str = "DYNOSTATS_BENCH_MEASUREMENT";

/// The measurement picked by [`VAR`].
pub enum Choice {
    /// Criterion's `WallTime` (unset, empty or `wall`).
    WallTime,
    /// `dynostats::criterion::Instructions` of the bench thread.
    #[cfg(feature = "criterion")]
    Instructions(dynostats::criterion::Instructions),
}

fn pick() -> Result<Choice, String> {
    let value = std::env::var(VAR).unwrap_or_default();
    match value.as_str() {
        "" | "wall" => Ok(Choice::WallTime),
        #[cfg(feature = "criterion")]
        "instructions" => dynostats::criterion::Instructions::new()
            .map(Choice::Instructions)
            .map_err(|e| {
                format!("{VAR}=instructions, but instructions cannot be counted here: {e}")
            }),
        #[cfg(not(feature = "criterion"))]
        "instructions" => Err(format!(
            "{VAR}=instructions needs the criterion feature: cargo bench --features criterion"
        )),
        other => Err(format!("{VAR}={other}: expected wall or instructions")),
    }
}

/// The measurement picked by [`VAR`]; exits with status 2 and the reason
/// when it cannot be had.
pub fn choice() -> Choice {
    pick().unwrap_or_else(|why| {
        eprintln!("{why}");
        std::process::exit(2)
    })
}

/// Whether the benches run under instructions.
pub fn instructions() -> bool {
    std::env::var(VAR).is_ok_and(|v| v == "instructions")
}

/// A group name, suffixed with the measurement when it is not wall time.
pub fn name(group: &str) -> String {
    if instructions() {
        format!("{group} (instructions)")
    } else {
        group.to_string()
    }
}

/// `fn main` for a bench: runs `both` (functions generic over the
/// measurement) under the measurement [`choice`] picks, and `wall_only`
/// (functions of `&mut Criterion`, e.g. throughput measured with
/// `iter_custom`) only under wall time.
#[macro_export]
macro_rules! bench_main {
    (both: [$($both:path),* $(,)?], wall_only: [$($wall:path),* $(,)?] $(,)?) => {
        fn main() {
            match support::choice() {
                support::Choice::WallTime => {
                    let mut c = criterion::Criterion::default().configure_from_args();
                    $($both(&mut c);)*
                    $($wall(&mut c);)*
                }
                #[cfg(feature = "criterion")]
                support::Choice::Instructions(m) => {
                    let mut c = criterion::Criterion::default()
                        .with_measurement(m)
                        .configure_from_args();
                    $($both(&mut c);)*
                    let wall_only: &[&str] = &[$(stringify!($wall)),*];
                    if !wall_only.is_empty() {
                        eprintln!(
                            "not under instructions (wall time only): {}",
                            wall_only.join(", ")
                        );
                    }
                }
            }
            criterion::Criterion::default()
                .configure_from_args()
                .final_summary();
        }
    };
}
