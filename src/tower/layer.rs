use tower_layer::Layer;

use std::marker::PhantomData;

use super::MeasureService;
use super::body::Wrapped;
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
#[derive(Debug)]
pub struct MeasureLayer<L = (), W = Wrapped> {
    sampler: &'static Sampler,
    labeler: L,
    wrap: PhantomData<fn() -> W>,
}

impl<L: Clone, W> Clone for MeasureLayer<L, W> {
    fn clone(&self) -> Self {
        MeasureLayer {
            sampler: self.sampler,
            labeler: self.labeler.clone(),
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
            wrap: PhantomData,
        }
    }
}

impl<L, W> MeasureLayer<L, W> {
    /// Adds labels from each sampled request with `labeler` (see
    /// [`LabelRequest`](super::LabelRequest)).
    #[must_use]
    pub fn labels<L2>(self, labeler: L2) -> MeasureLayer<L2, W> {
        MeasureLayer {
            sampler: self.sampler,
            labeler,
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
    pub fn axum_body(self) -> MeasureLayer<L, super::AxumBody> {
        MeasureLayer {
            sampler: self.sampler,
            labeler: self.labeler,
            wrap: PhantomData,
        }
    }

    /// The sampler shared by every service of this layer; change its rate
    /// with [`Sampler::set_rate`].
    pub fn sampler(&self) -> &'static Sampler {
        self.sampler
    }
}

impl<S, L: Clone, W> Layer<S> for MeasureLayer<L, W> {
    type Service = MeasureService<S, L, W>;

    fn layer(&self, inner: S) -> MeasureService<S, L, W> {
        MeasureService::new(inner, self.sampler, self.labeler.clone())
    }
}
