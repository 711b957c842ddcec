//! `MeasureLayer` driven in this process: through `oneshot`, and with a
//! label hook that panics. One test binary instead of two (each binary
//! links the crate). Each test scopes its own pipeline to its thread and
//! runs its requests on a current-thread runtime, so the tests run side by
//! side. (`tests/layer_http.rs` installs the global pipeline and stays
//! alone.)

#[path = "../common/mod.rs"]
mod common;

mod label_hook_panic;
mod oneshot;
