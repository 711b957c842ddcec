use tower_layer::Layer;

use std::marker::PhantomData;

use super::MeasureService;
use super::body::Wrapped;
use super::trace::TraceParent;
use crate::sample::Sampler;

/// A tower [`Layer`] that measures each sampled request per poll and
/// emits one record of kind `request`.
///
/// Works with any `Service<http::Request<B>>` whose response is an
/// `http::Response`, and with axum's `Router::layer`, where
/// [`axum_body`](MeasureLayer::axum_body) keeps it cheap (see "Cost"):
///
/// ```
/// use axum::{Router, routing::get};
/// use dynostats::tower::MeasureLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "a user" }))
///     // Measure 1 request in 100, named by route template.
///     .layer(MeasureLayer::new(100).axum_body());
/// ```
///
/// # What a record holds
///
/// Per sampled request: `method` (`"<other>"` for a non-standard method),
/// `status` (absent when the inner service failed), `name` = the endpoint
/// as the route template from axum's `MatchedPath` (e.g. `/users/{id}`), or
/// [`UNMATCHED`](super::UNMATCHED) when there is none. Never the raw path, query string or
/// headers: labels from the request come only from a [`LabelRequest`](super::LabelRequest)
/// hook such as [`HeaderLabel`](super::HeaderLabel), bounded in count and length.
///
/// The counters are summed over the measured segments of the request: the
/// inner service's `call`, every poll of its response future, and every poll
/// of the response body until its end, so an endpoint that does its work
/// while streaming the body is counted in full. `polls` counts the future's
/// and the body's polls, `threads` the distinct threads that ran any of
/// them. Wall time runs from the `call` to the end of the body.
///
/// Nothing is measured while no pipeline is installed or scoped (see
/// [`install`](crate::install)): the records would have nowhere to go.
///
/// # Failures
///
/// An error from the inner service is recorded (`error: "service_error"`,
/// no status) and returned unchanged; an error frame of the body is
/// recorded as `"body_error"`. A panic in the inner service is recorded as
/// `error: "panic"`, `cancelled: true`, and goes on unwinding unchanged. A
/// response dropped before its body ended (the client went away) is
/// recorded as `cancelled`, except where the body is not sent anyway (`HEAD`
/// requests; `1xx`, `204` and `304` responses).
///
/// # Cost
///
/// A request that is not sampled pays one sampling decision (a
/// thread-local countdown) and the wrapping of its future and body: 84
/// user-space instructions over a bare `tower::service_fn`, 90 around a
/// whole axum `Router` (aarch64, `tests/pmu_cost.rs` and
/// `tests/pmu_router.rs`; BENCHMARKS.md). With `Router::layer` axum wraps
/// every route and boxes its service and future once more per request, for
/// any layer: a layer that does nothing costs 1,055 instructions there, on
/// a request of 6,169. `MeasureLayer` adds 1,432 that way with
/// [`axum_body`](MeasureLayer::axum_body), 1,717 without it (axum then
/// boxes every `MeasuredBody` into its `Body`, sampled or not). Around the
/// router the layer cannot see the route template (axum sets `MatchedPath`
/// inside the router), so records would all be named
/// [`UNMATCHED`](super::UNMATCHED): use `Router::layer` with `axum_body`
/// when names matter, which is nearly always.
///
/// A sampled request reads the counters at the start and end of each
/// measured segment (the `call`, each poll of the response future, each
/// poll of the body), and RSS at the first start and the end: see
/// BENCHMARKS.md for what that costs.
///
/// # Configuration
///
/// ```
/// use dynostats::{tower::HeaderLabel, tower::MeasureLayer};
///
/// let layer = MeasureLayer::new(1000)
///     .labels(HeaderLabel::new(http::HeaderName::from_static("x-feature"), ["a", "b"]));
/// // The rate can change at run time, for every service the layer made.
/// layer.sampler().set_rate(100);
/// assert_eq!(layer.sampler().rate(), 100);
/// ```
///
/// # Trace context
///
/// With [`trace_context`](MeasureLayer::trace_context), a sampled request
/// that arrives with a valid W3C `traceparent` header carries its trace id
/// and parent span id in its record and its profile record (`trace_id`,
/// `span_id`), so that `dynostats report --trace-id ID` answers for that
/// one request and a trace links to what its request cost here. An
/// invalid header, or more than one, is ignored (nothing of it is copied)
/// and counted in the status records (`traceparent_ignored`); see
/// [`TraceParent`](super::TraceParent) for the rules.
///
/// ```
/// use axum::{Router, routing::get};
/// use dynostats::tower::MeasureLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "a user" }))
///     .layer(MeasureLayer::new(100).axum_body().trace_context());
/// ```
///
/// The header is read on the sampled path only: an unsampled request
/// costs what it costs without it (BENCHMARKS.md, `layer_trace_*`).
/// [`trace_context_with`](MeasureLayer::trace_context_with) takes the ids
/// from a hook instead, such as the current `tracing` span's OpenTelemetry
/// context.
#[derive(Debug)]
pub struct MeasureLayer<L = (), W = Wrapped, T = ()> {
    sampler: &'static Sampler,
    labeler: L,
    tracer: T,
    wrap: PhantomData<fn() -> W>,
}

impl<L: Clone, W, T: Clone> Clone for MeasureLayer<L, W, T> {
    fn clone(&self) -> Self {
        MeasureLayer {
            sampler: self.sampler,
            labeler: self.labeler.clone(),
            tracer: self.tracer.clone(),
            wrap: PhantomData,
        }
    }
}

impl MeasureLayer {
    /// Measures on average 1 in `rate` requests (1 = all, 0 = none); each
    /// record carries `weight = rate`.
    ///
    /// The layer's sampler (24 bytes) lives for the rest of the process:
    /// services share it without a reference count, which every request
    /// would otherwise increment and decrement on whichever core it runs
    /// (axum clones a route's service per request). Make layers once, at
    /// start-up.
    pub fn new(rate: u64) -> MeasureLayer {
        MeasureLayer {
            sampler: Box::leak(Box::new(Sampler::new(rate))),
            labeler: (),
            tracer: (),
            wrap: PhantomData,
        }
    }
}

impl<L, W, T> MeasureLayer<L, W, T> {
    /// Adds labels from each sampled request with `labeler` (see
    /// [`LabelRequest`](super::LabelRequest)).
    #[must_use]
    pub fn labels<L2>(self, labeler: L2) -> MeasureLayer<L2, W, T> {
        MeasureLayer {
            sampler: self.sampler,
            labeler,
            tracer: self.tracer,
            wrap: PhantomData,
        }
    }

    /// Records the W3C trace context of each sampled request: the trace id
    /// and parent span id of its `traceparent` header, as the `trace_id`
    /// and `span_id` of its record and its profile record (see "Trace
    /// context" above, and [`TraceParent`](super::TraceParent) for what is
    /// valid).
    #[must_use]
    pub fn trace_context(self) -> MeasureLayer<L, W, TraceParent> {
        self.trace_context_with(TraceParent)
    }

    /// Records the trace context that `tracer` names for each sampled
    /// request (see [`TraceRequest`](super::TraceRequest)): a closure, or
    /// `(TraceParent, closure)` for the header first and the closure when
    /// there is none.
    ///
    /// The current `tracing` span's OpenTelemetry context, for a service
    /// that runs `tracing-opentelemetry` (and has a span entered around the
    /// layer's `call`, as tower-http's `TraceLayer` outside it does):
    ///
    /// ```
    /// use dynostats::{record::TraceContext, tower::MeasureLayer};
    /// use opentelemetry::trace::TraceContextExt as _;
    /// use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    ///
    /// let layer = MeasureLayer::new(100).trace_context_with(|_: &http::Request<String>| {
    ///     let context = tracing::Span::current().context();
    ///     let span = context.span();
    ///     let ids = span.span_context();
    ///     TraceContext::from_bytes(ids.trace_id().to_bytes(), ids.span_id().to_bytes())
    /// });
    /// # let _ = layer;
    /// ```
    ///
    /// (`tests/trace_otel.rs` runs this hook with the real crates.) The
    /// OpenTelemetry crates are not a dependency of this crate, not even
    /// behind a feature: `tracing-opentelemetry` works only with the one
    /// `opentelemetry` release it was built for, and a span's context is
    /// found only through the very crate versions the service uses, so a
    /// feature here would pin every service to this crate's pair (and
    /// silently find no context under another). The hook is those five
    /// lines in the service, against its own versions.
    #[must_use]
    pub fn trace_context_with<T2>(self, tracer: T2) -> MeasureLayer<L, W, T2> {
        MeasureLayer {
            sampler: self.sampler,
            labeler: self.labeler,
            tracer,
            wrap: PhantomData,
        }
    }

    /// Answers with axum's `Body` (see [`AxumBody`](super::AxumBody)): the
    /// way to attach the layer with axum's `Router::layer`, where it keeps
    /// an unsampled request's body as it is instead of having axum box it
    /// a second time (see "Cost" above).
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    #[must_use]
    pub fn axum_body(self) -> MeasureLayer<L, super::AxumBody, T> {
        MeasureLayer {
            sampler: self.sampler,
            labeler: self.labeler,
            tracer: self.tracer,
            wrap: PhantomData,
        }
    }

    /// The sampler shared by every service of this layer; change its rate
    /// with [`Sampler::set_rate`].
    pub fn sampler(&self) -> &'static Sampler {
        self.sampler
    }
}

impl<S, L: Clone, W, T: Clone> Layer<S> for MeasureLayer<L, W, T> {
    type Service = MeasureService<S, L, W, T>;

    fn layer(&self, inner: S) -> MeasureService<S, L, W, T> {
        MeasureService::new(
            inner,
            self.sampler,
            self.labeler.clone(),
            self.tracer.clone(),
        )
    }
}
