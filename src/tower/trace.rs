//! The trace a sampled request belongs to: the [`TraceRequest`] hook,
//! [`TraceParent`] (the W3C header) and the hooks' combinations.

use http::{HeaderName, Request};

use crate::record::{TRACEPARENT, TraceContext, note_ignored_traceparent};

/// The header's name, made once: a lookup by `&str` would check and
/// lower-case the name on every request.
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);

/// A hook that names the trace of a sampled request: its
/// [`TraceContext`] goes into the request's record and its profile record
/// (`trace_id`, `span_id`).
///
/// Implemented for `()` (no trace), for [`TraceParent`] (the W3C
/// `traceparent` header: what
/// [`MeasureLayer::trace_context`](super::MeasureLayer::trace_context)
/// installs), for closures `Fn(&http::Request<B>) -> Option<TraceContext>`
/// (e.g. the current `tracing` span's OpenTelemetry context; see
/// [`MeasureLayer::trace_context_with`](super::MeasureLayer::trace_context_with))
/// and for pairs of hooks: the first one's answer, else the second's.
///
/// It runs only for sampled requests, before the inner service is called.
/// A hook that panics does not fail the request: the panic is caught and
/// the record carries no trace context (the panic message still goes to
/// the panic hook).
pub trait TraceRequest<B> {
    /// The trace context of `request`, if it has one.
    fn trace_context(&self, request: &Request<B>) -> Option<TraceContext>;
}

impl<B> TraceRequest<B> for () {
    #[inline]
    fn trace_context(&self, _: &Request<B>) -> Option<TraceContext> {
        None
    }
}

impl<B, F> TraceRequest<B> for F
where
    F: Fn(&Request<B>) -> Option<TraceContext>,
{
    fn trace_context(&self, request: &Request<B>) -> Option<TraceContext> {
        self(request)
    }
}

impl<B, X, Y> TraceRequest<B> for (X, Y)
where
    X: TraceRequest<B>,
    Y: TraceRequest<B>,
{
    fn trace_context(&self, request: &Request<B>) -> Option<TraceContext> {
        self.0
            .trace_context(request)
            .or_else(|| self.1.trace_context(request))
    }
}

/// The W3C `traceparent` header of a request: its trace id and parent span
/// id, when the request has exactly one such header and it is valid
/// ([`TraceContext::from_traceparent`]).
///
/// A request without the header has no trace context. A request whose
/// header is invalid, or that has more than one, has none either, and is
/// counted: the status records' `traceparent_ignored`
/// ([`traceparent_ignored`](crate::record::traceparent_ignored)). Only
/// sampled requests are looked at, so the count is of sampled requests (one
/// per request, however many headers it had).
///
/// ```
/// use dynostats::tower::{TraceParent, TraceRequest};
///
/// let req = http::Request::builder()
///     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
///     .body(())
///     .unwrap();
/// let context = TraceParent.trace_context(&req).unwrap();
/// assert_eq!(context.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
///
/// let req = http::Request::builder().header("traceparent", "00-not-an-id").body(()).unwrap();
/// let before = dynostats::record::traceparent_ignored();
/// assert!(TraceParent.trace_context(&req).is_none());
/// assert!(dynostats::record::traceparent_ignored() > before);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceParent;

impl<B> TraceRequest<B> for TraceParent {
    fn trace_context(&self, request: &Request<B>) -> Option<TraceContext> {
        let mut headers = request.headers().get_all(&TRACEPARENT_HEADER).iter();
        let first = headers.next()?;
        let context = match headers.next() {
            // Two are one too many: W3C has no rule to choose, so neither.
            Some(_) => None,
            None => TraceContext::from_traceparent(first.as_bytes()),
        };
        if context.is_none() {
            note_ignored_traceparent();
        }
        context
    }
}
