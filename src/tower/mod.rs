//! The tower middleware, split like tower-http's: the layer, the service,
//! the response future and the response body, each in its own file. The
//! documentation of the whole is on [`MeasureLayer`].

mod body;
mod future;
mod label;
mod layer;
mod request;
mod service;

pub use body::MeasuredBody;
pub use future::ResponseFuture;
pub use label::{HeaderLabel, LabelRequest};
pub use layer::MeasureLayer;
pub use service::MeasureService;

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
