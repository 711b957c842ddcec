//! `tracing` spans as profiler scopes (feature `tracing`).
//!
//! [`DynostatsLayer`] is a [`tracing_subscriber::Layer`]: every time a span
//! is entered inside a sampled region, measured future or request, it
//! enters a profiler scope named after the span (see [`crate::profile`]),
//! and leaves it when the span is exited. Code instrumented with
//! `#[tracing::instrument]` gets per-span instruction attribution without
//! new annotations, and `tracing::Instrument`-ed futures enter their span
//! around each poll, so a span held across `.await` is charged only for
//! its own task's polls, like an explicit scope.
//!
//! ```
//! use dynostats::profile::CallTree;
//! use dynostats::sink::MemorySink;
//! use dynostats::tracing::DynostatsLayer;
//! use dynostats::{Pipeline, Region, RecordKind};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! #[tracing::instrument]
//! fn price(items: u32) -> u32 {
//!     (0..items).map(|i| i * 3).sum()
//! }
//!
//! let subscriber = tracing_subscriber::registry().with(DynostatsLayer::new());
//! let mem = MemorySink::new();
//! let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
//! let _scope = pipeline.scoped();
//! tracing::subscriber::with_default(subscriber, || {
//!     Region::forced("checkout").run(|| price(10));
//! });
//! pipeline.flush().unwrap();
//! let profile = &mem.records_of(RecordKind::Profile)[0];
//! let tree = CallTree::from_record(profile).unwrap();
//! assert_eq!(tree.path(1), ["checkout", "price"]);
//! ```
//!
//! # Names
//!
//! The scope name is the span's name (for `#[instrument]`, the function's
//! name). With [`DynostatsLayer::name_field`], a span that has that field
//! is named `span_name:value` instead (e.g. `query:users_by_id`), which
//! splits one span into one node per value: choose a field with few
//! values, as the node cap ([`ProfileConfigBuilder::max_nodes`]) sends the
//! rest to the overflow bucket. The field is read when the span is created,
//! and only when the thread is profiling then.
//!
//! # Cost
//!
//! When the thread is not profiling (the enclosing region or request is
//! not sampled): one thread-local check in each of `on_enter` and
//! `on_exit` (and in `on_new_span` when a name field is set), beyond what
//! `tracing` itself costs. When it is: a scope enter/exit pair, plus the
//! span's lookup in the registry and its extensions (a lock, and one
//! allocation the first time a span is entered). That part is not in the
//! profiler's calibration, so it is charged to the enclosing scope; see
//! `benches/profiler.rs` for both figures.
//!
//! # A filter hides spans from this layer
//!
//! A filter on the whole subscriber (a `LevelFilter` or `EnvFilter` layer
//! added with `.with(...)`, or `fmt().with_max_level(...)`) disables the
//! spans it filters out for every layer, this one included: with a global
//! `LevelFilter::WARN`, `#[tracing::instrument]` spans (INFO unless told
//! otherwise) are never created, and the profiles, and `dynostats top`,
//! have no span in them. Filter the output layer alone instead, which
//! leaves the spans to this layer:
//!
//! ```
//! use dynostats::tracing::DynostatsLayer;
//! use tracing_subscriber::filter::LevelFilter;
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::Layer;
//!
//! let subscriber = tracing_subscriber::registry()
//!     // Logs: warnings and errors only.
//!     .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::WARN))
//!     // Profiles: every span.
//!     .with(DynostatsLayer::new());
//! # let _ = subscriber;
//! ```
//!
//! Once per process, when the first sampled region is set up with
//! profiling on, the layer checks `tracing`'s global maximum level
//! ([`LevelFilter::current`](tracing_core::LevelFilter::current)): when it
//! is below INFO, it warns (a `tracing` warning, target `dynostats`, where a
//! global subscriber lets warnings through, else on stderr).
//!
//! [`ProfileConfigBuilder::max_nodes`]: crate::profile::ProfileConfigBuilder::max_nodes

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_core::dispatcher::{self, Dispatch};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::{LevelFilter, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::profile::{self, Token};

/// A `tracing_subscriber` layer that makes spans profiler scopes; see the
/// [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct DynostatsLayer {
    field: Option<&'static str>,
}

impl DynostatsLayer {
    /// Scopes named after the spans.
    pub fn new() -> DynostatsLayer {
        DynostatsLayer::default()
    }

    /// Names the scope of a span that has field `field` `name:value`.
    #[must_use]
    pub fn name_field(mut self, field: &'static str) -> DynostatsLayer {
        self.field = Some(field);
        self
    }
}

/// The scopes a span has entered and not yet left (a span can be entered
/// again while entered).
struct Entered(Vec<Token>);

/// The scope name made from the span's name field.
struct FieldName(String);

struct FindField<'a> {
    field: &'a str,
    value: Option<String>,
}

impl Visit for FindField<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.field {
            self.value = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == self.field {
            self.value = Some(format!("{value:?}"));
        }
    }
}

/// The warning for a global maximum level of `current`, when it hides
/// `#[instrument]`'s spans (INFO) from the layer.
fn filter_warning(current: LevelFilter) -> Option<String> {
    if current >= LevelFilter::INFO {
        return None;
    }
    let level = match current.into_level() {
        Some(level) => format!("{level}"),
        None => "OFF".to_string(),
    };
    Some(format!(
        "dynostats: tracing's maximum level is {level}: spans below it, such as \
         #[tracing::instrument]'s (INFO by default), are disabled for every layer, so \
         DynostatsLayer sees none of them and profiles (and `dynostats top`) will have \
         no span scopes. A filter on the whole subscriber does this; filter the output \
         layer alone instead, e.g. fmt::layer().with_filter(LevelFilter::{level}) \
         (see dynostats::tracing, \"A filter hides spans from this layer\")"
    ))
}

/// Warns once per process if spans cannot reach the layer (run at the
/// first profiled region, when the subscriber is set up).
fn check_filter() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(warning) = filter_warning(LevelFilter::current()) else {
        return;
    };
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    if dispatcher::has_been_set() && LevelFilter::current() >= LevelFilter::WARN {
        tracing::warn!(target: "dynostats", "{warning}");
    } else {
        eprintln!("{warning}");
    }
}

impl<S> Layer<S> for DynostatsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, _subscriber: &Dispatch) {
        profile::on_first_profile(check_filter);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(field) = self.field else {
            return;
        };
        if !profile::is_profiling() {
            return;
        }
        let mut find = FindField { field, value: None };
        attrs.record(&mut find);
        let (Some(value), Some(span)) = (find.value, ctx.span(id)) else {
            return;
        };
        let name = format!("{}:{value}", span.name());
        span.extensions_mut().insert(FieldName(name));
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !profile::is_profiling() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let name = match extensions.get_mut::<FieldName>() {
            Some(FieldName(name)) => Cow::Owned(name.clone()),
            None => Cow::Borrowed(span.name()),
        };
        // Room for the token first: the scope starts at its timer read, and
        // an allocation after it would be charged to the span.
        if extensions.get_mut::<Entered>().is_none() {
            extensions.insert(Entered(Vec::with_capacity(2)));
        }
        let Some(token) = profile::enter_named(name) else {
            return;
        };
        if let Some(Entered(tokens)) = extensions.get_mut::<Entered>() {
            tokens.push(token);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !profile::is_profiling() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let token = span
            .extensions_mut()
            .get_mut::<Entered>()
            .and_then(|Entered(tokens)| tokens.pop());
        if let Some(token) = token {
            profile::exit_token(token);
        }
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn a_maximum_level_below_info_is_warned_about() {
        for hides in [LevelFilter::WARN, LevelFilter::ERROR, LevelFilter::OFF] {
            let warning = filter_warning(hides).expect("INFO spans are disabled");
            assert!(warning.contains("DynostatsLayer sees none"), "{warning}");
        }
        let warning = filter_warning(LevelFilter::WARN).unwrap();
        assert!(warning.contains("maximum level is WARN"), "{warning}");
        assert!(
            warning.contains("with_filter(LevelFilter::WARN)"),
            "{warning}"
        );
        assert!(
            filter_warning(LevelFilter::OFF)
                .unwrap()
                .contains("maximum level is OFF")
        );
        for passes in [LevelFilter::INFO, LevelFilter::DEBUG, LevelFilter::TRACE] {
            assert_eq!(filter_warning(passes), None);
        }
    }
}
