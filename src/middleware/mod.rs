//! The tower middleware, split like tower-http's: the layer, the service,
//! the response future and the response body, each in its own file. The
//! documentation of the whole is on [`MeasureLayer`].

mod body;
mod future;
mod layer;
mod service;

use std::borrow::Cow;

use http::{HeaderName, Method, Request};

use crate::measured::PollAccounting;
use crate::{MAX_LABEL_LEN, MAX_LABELS, Record, RecordKind};

pub use body::MeasuredBody;
pub use future::ResponseFuture;
pub use layer::MeasureLayer;
pub use service::MeasureService;

/// The record name of a request with no matched route (a 404 of the
/// router's fallback, or a service that is not an axum router).
pub const UNMATCHED: &str = "<unmatched>";

/// The label value recorded for a header value that is not in a
/// [`HeaderLabel`]'s allow-list.
pub const OTHER: &str = "<other>";

/// Labels added to a request's record by a [`LabelRequest`] hook.
///
/// At most [`MAX_LABELS`] labels, keys and values cut to
/// [`MAX_LABEL_LEN`] bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    entries: Vec<(String, String)>,
}

impl Labels {
    /// Adds (or replaces) a label. Returns `false` when it was not added
    /// because the record already holds [`MAX_LABELS`] labels.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        let key = crate::record::bounded(key, MAX_LABEL_LEN);
        let value = crate::record::bounded(value, MAX_LABEL_LEN);
        if let Some(entry) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            entry.1 = value;
            return true;
        }
        if self.entries.len() >= MAX_LABELS {
            return false;
        }
        self.entries.push((key, value));
        true
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no label.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The labels, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A hook that adds labels to the record of a sampled request.
///
/// Implemented for `()` (no labels), for closures
/// `Fn(&http::Request<B>, &mut Labels)`, for [`HeaderLabel`] and for pairs
/// of hooks. It runs only for sampled requests, before the inner service
/// is called.
///
/// ```
/// use dynostats::{Labels, MeasureLayer};
///
/// let layer = MeasureLayer::new(1).labels(|req: &http::Request<String>, labels: &mut Labels| {
///     let tier = if req.headers().contains_key("x-premium") { "premium" } else { "free" };
///     labels.insert("tier", tier);
/// });
/// # let _ = layer;
/// ```
pub trait LabelRequest<B> {
    /// Adds labels for `request`.
    fn label(&self, request: &Request<B>, labels: &mut Labels);
}

impl<B> LabelRequest<B> for () {
    #[inline]
    fn label(&self, _: &Request<B>, _: &mut Labels) {}
}

impl<B, F> LabelRequest<B> for F
where
    F: Fn(&Request<B>, &mut Labels),
{
    fn label(&self, request: &Request<B>, labels: &mut Labels) {
        self(request, labels)
    }
}

impl<B, X, Y> LabelRequest<B> for (X, Y)
where
    X: LabelRequest<B>,
    Y: LabelRequest<B>,
{
    fn label(&self, request: &Request<B>, labels: &mut Labels) {
        self.0.label(request, labels);
        self.1.label(request, labels);
    }
}

/// Labels a request with the value of one header, when that value is in an
/// allow-list; any other value is recorded as [`OTHER`], and no label is
/// added when the header is absent. The label key is the header name.
///
/// ```
/// use dynostats::{HeaderLabel, LabelRequest, Labels};
///
/// let flag = HeaderLabel::new(http::HeaderName::from_static("x-feature"), ["new-search", "old-search"]);
/// let req = http::Request::builder().header("x-feature", "new-search").body(()).unwrap();
/// let mut labels = Labels::default();
/// flag.label(&req, &mut labels);
/// assert_eq!(labels.iter().collect::<Vec<_>>(), [("x-feature", "new-search")]);
///
/// let req = http::Request::builder().header("x-feature", "secret-token").body(()).unwrap();
/// let mut labels = Labels::default();
/// flag.label(&req, &mut labels);
/// assert_eq!(labels.iter().collect::<Vec<_>>(), [("x-feature", "<other>")]);
/// ```
#[derive(Clone, Debug)]
pub struct HeaderLabel {
    header: HeaderName,
    allowed: std::sync::Arc<[String]>,
}

impl HeaderLabel {
    /// Labels with `header`'s value when it is one of `allowed`.
    pub fn new<I, S>(header: HeaderName, allowed: I) -> HeaderLabel
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HeaderLabel {
            header,
            allowed: allowed.into_iter().map(Into::into).collect(),
        }
    }
}

impl<B> LabelRequest<B> for HeaderLabel {
    fn label(&self, request: &Request<B>, labels: &mut Labels) {
        let Some(value) = request.headers().get(&self.header) else {
            return;
        };
        let value = value
            .to_str()
            .ok()
            .and_then(|v| self.allowed.iter().find(|a| a.as_str() == v))
            .map_or(OTHER, String::as_str);
        labels.insert(self.header.as_str(), value);
    }
}

/// The method as recorded: the standard ones by name, anything else as
/// [`OTHER`] (an extension method is whatever the client sent).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        _ => OTHER,
    }
}

/// The endpoint of a request: the route template axum matched, or
/// [`UNMATCHED`].
fn endpoint<B>(request: &Request<B>) -> Cow<'static, str> {
    #[cfg(feature = "axum")]
    if let Some(path) = request.extensions().get::<axum::extract::MatchedPath>() {
        return Cow::Owned(path.as_str().to_owned());
    }
    let _ = request;
    Cow::Borrowed(UNMATCHED)
}

/// What a sampled request carries from `call` to the end of its body.
/// Dropping it delivers the record, so success, errors, cancellation and
/// panics all go through one path.
#[derive(Debug)]
pub(crate) struct RequestState {
    pub(crate) acct: PollAccounting,
    name: Cow<'static, str>,
    method: &'static str,
    labels: Labels,
    weight: u64,
    status: Option<u16>,
    error: Option<&'static str>,
    completed: bool,
    /// A body dropped unread is not a cancellation (HEAD, 1xx, 204, 304).
    body_optional: bool,
}

impl RequestState {
    fn new<B>(request: &Request<B>, weight: u64, labeler: &impl LabelRequest<B>) -> RequestState {
        let mut labels = Labels::default();
        labeler.label(request, &mut labels);
        RequestState {
            acct: PollAccounting::default(),
            name: endpoint(request),
            method: method_name(request.method()),
            labels,
            weight,
            status: None,
            error: None,
            completed: false,
            body_optional: request.method() == Method::HEAD,
        }
    }

    /// The inner service answered with `status`.
    fn responded(&mut self, status: http::StatusCode) {
        self.status = Some(status.as_u16());
        if status.is_informational()
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED
        {
            self.body_optional = true;
        }
    }

    /// The request finished, with `error` when it failed.
    fn finished(&mut self, error: Option<&'static str>) {
        self.completed = true;
        self.error = error;
    }
}

impl Drop for RequestState {
    fn drop(&mut self) {
        let panicked = self.acct.close_interrupted();
        let mut record = Record::new(RecordKind::Request, &self.name);
        self.acct.fill(&mut record);
        record.weight = self.weight;
        record.method = Some(self.method.to_string());
        record.status = self.status;
        for (k, v) in self.labels.iter() {
            record.set_label(k, v);
        }
        if panicked {
            record.cancelled = true;
            record.error = Some("panic".to_string());
        } else {
            let body_skipped = self.status.is_some() && self.body_optional;
            record.cancelled = !self.completed && !body_skipped;
            record.error = self.error.map(str::to_string);
        }
        crate::emit(record);
    }
}

// The tests name endpoints by their axum route templates.
#[cfg(all(test, feature = "axum"))]
mod tests;
