//! Labels from requests: the [`LabelRequest`] hook and [`HeaderLabel`].

use http::{HeaderName, Request};

use super::OTHER;
use crate::record::Labels;

/// A hook that adds labels to the record of a sampled request.
///
/// Implemented for `()` (no labels), for closures
/// `Fn(&http::Request<B>, &mut Labels)`, for [`HeaderLabel`] and for pairs
/// of hooks. It runs only for sampled requests, before the inner service
/// is called.
///
/// A hook that panics does not fail the request: the panic is caught, and
/// the request's record carries the one label `dynostats.label_hook:
/// panic` instead of the hook's labels, so the failure is counted in the
/// records (the panic message still goes to the panic hook, as usual).
///
/// ```
/// use dynostats::{record::Labels, tower::MeasureLayer};
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
/// use dynostats::{tower::HeaderLabel, tower::LabelRequest, record::Labels};
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
