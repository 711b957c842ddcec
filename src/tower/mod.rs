//! The tower middleware (feature `tower`): one record per sampled request.
//!
//! Add [`MeasureLayer`] to an axum `Router` (or any
//! `Service<http::Request<B>>`); 1 in N requests is measured per poll of
//! the service's `call`, its response future and its body, on whichever
//! worker thread ran each poll, and ends as a record named by the route
//! template (feature `axum`, [`UNMATCHED`] otherwise), never the raw path.
//! Labels come only from a [`LabelRequest`] hook such as [`HeaderLabel`],
//! the trace ids only from a [`TraceRequest`] hook such as [`TraceParent`]
//! (the W3C `traceparent` header, [`MeasureLayer::trace_context`]).
//! The whole is documented on [`MeasureLayer`].
//!
//! Split like tower-http's middlewares: `layer` ([`MeasureLayer`]),
//! `service` ([`MeasureService`]), `future` ([`ResponseFuture`]), `body`
//! ([`MeasuredBody`]), `label` and `trace` (the hooks) and `request` (what
//! a sampled request carries until its record is made).

mod body;
mod future;
mod label;
mod layer;
mod request;
mod service;
mod trace;

#[cfg(feature = "axum")]
pub use body::AxumBody;
pub use body::{MeasuredBody, ResponseBody, Wrapped};
pub use future::ResponseFuture;
pub use label::{HeaderLabel, LabelRequest};
pub use layer::MeasureLayer;
pub use service::MeasureService;
pub use trace::{TraceParent, TraceRequest};

/// The labels a [`LabelRequest`] hook fills (the record's own label type,
/// bounded by the one label rule).
pub use crate::record::Labels;

/// The record name of a request with no matched route (a 404 of the
/// router's fallback, or a service that is not an axum router).
pub const UNMATCHED: &str = "<unmatched>";

/// The label value recorded for a header value that is not in a
/// [`HeaderLabel`]'s allow-list.
pub const OTHER: &str = "<other>";

// The tests name endpoints by their axum route templates.
#[cfg(all(test, feature = "axum"))]
mod tests;
