use std::sync::Arc;

use tower_layer::Layer;

use super::MeasureService;
use crate::sample::Sampler;

/// A tower [`Layer`] that measures each sampled request per poll and
/// emits one record of kind `request`.
///
/// Works with any `Service<http::Request<B>>` whose response is an
/// `http::Response`, and with axum's `Router::layer`:
///
/// ```
/// use axum::{Router, routing::get};
/// use dynostats::tower::MeasureLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "a user" }))
///     // Measure 1 request in 100.
///     .layer(MeasureLayer::new(100));
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
#[derive(Clone, Debug)]
pub struct MeasureLayer<L = ()> {
    sampler: Arc<Sampler>,
    labeler: L,
}

impl MeasureLayer {
    /// Measures on average 1 in `rate` requests (1 = all, 0 = none); each
    /// record carries `weight = rate`.
    pub fn new(rate: u64) -> MeasureLayer {
        MeasureLayer {
            sampler: Arc::new(Sampler::new(rate)),
            labeler: (),
        }
    }
}

impl<L> MeasureLayer<L> {
    /// Adds labels from each sampled request with `labeler` (see
    /// [`LabelRequest`](super::LabelRequest)).
    pub fn labels<L2>(self, labeler: L2) -> MeasureLayer<L2> {
        MeasureLayer {
            sampler: self.sampler,
            labeler,
        }
    }

    /// The sampler shared by every service of this layer; change its rate
    /// with [`Sampler::set_rate`].
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }
}

impl<S, L: Clone> Layer<S> for MeasureLayer<L> {
    type Service = MeasureService<S, L>;

    fn layer(&self, inner: S) -> MeasureService<S, L> {
        MeasureService::new(inner, self.sampler.clone(), self.labeler.clone())
    }
}
