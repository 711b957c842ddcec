//! What a sampled request carries from `call` to the end of its body, and
//! how it becomes a record.

use std::borrow::Cow;

use http::{Method, Request};

use super::label::LabelRequest;
use super::trace::TraceRequest;
use super::{OTHER, UNMATCHED};
use crate::instrument::accounting::PollAccounting;
use crate::record::{Labels, Name, RecordKind, TraceContext};

/// The method as recorded: the standard ones by name, anything else as
/// [`OTHER`] (an extension method is whatever the client sent).
pub(super) fn method_name(method: &Method) -> &'static str {
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
pub(super) fn endpoint<B>(request: &Request<B>) -> Name {
    #[cfg(feature = "axum")]
    if let Some(path) = request.extensions().get::<axum::extract::MatchedPath>() {
        return Name::new(path.as_str());
    }
    let _ = request;
    Name::from_static(UNMATCHED)
}

/// The label a request's record gets, alone, when the label hook panicked.
pub(crate) const LABEL_HOOK: &str = "dynostats.label_hook";
/// Its value.
pub(crate) const LABEL_HOOK_PANIC: &str = "panic";

/// What a sampled request carries from `call` to the end of its body.
/// Dropping it delivers the record, so success, errors, cancellation and
/// panics all go through one path.
#[derive(Debug)]
pub(crate) struct RequestState {
    pub(crate) acct: PollAccounting,
    name: Name,
    method: &'static str,
    labels: Labels,
    trace: Option<TraceContext>,
    weight: u64,
    status: Option<u16>,
    error: Option<&'static str>,
    completed: bool,
    /// A body dropped unread is not a cancellation (HEAD, 1xx, 204, 304).
    body_optional: bool,
}

impl RequestState {
    pub(super) fn new<B>(
        request: &Request<B>,
        weight: u64,
        labeler: &impl LabelRequest<B>,
        tracer: &impl TraceRequest<B>,
    ) -> RequestState {
        crate::profile::prepare();
        let mut labels = Labels::default();
        let mut trace = None;
        let mut labeled = false;
        // A panicking hook must not take the request down nor leave it
        // unrecorded: after the label hook's panic the record gets only
        // the marker label, after the trace hook's no trace context. One
        // `catch_unwind` for both hooks (each costs a few instructions).
        let hooked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            labeler.label(request, &mut labels);
            labeled = true;
            trace = tracer.trace_context(request);
        }));
        if hooked.is_err() && !labeled {
            labels = Labels::default();
            labels.insert(LABEL_HOOK, LABEL_HOOK_PANIC);
        }
        RequestState {
            acct: PollAccounting::default(),
            name: endpoint(request),
            method: method_name(request.method()),
            labels,
            trace,
            weight,
            status: None,
            error: None,
            completed: false,
            body_optional: request.method() == Method::HEAD,
        }
    }

    /// The inner service answered with `status`.
    pub(super) fn responded(&mut self, status: http::StatusCode) {
        self.status = Some(status.as_u16());
        if status.is_informational()
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED
        {
            self.body_optional = true;
        }
    }

    /// The request finished, with `error` when it failed.
    pub(super) fn finished(&mut self, error: Option<&'static str>) {
        self.completed = true;
        self.error = error;
    }
}

impl Drop for RequestState {
    #[inline]
    fn drop(&mut self) {
        self.deliver();
    }
}

impl RequestState {
    /// Delivers the request's record (from `Drop`). Out of line and cold,
    /// so that the drop glue of an unsampled request's `None` stays one
    /// branch wherever it is inlined.
    #[cold]
    #[inline(never)]
    fn deliver(&mut self) {
        let body_skipped = self.status.is_some() && self.body_optional;
        let (weight, method, status, trace) = (self.weight, self.method, self.status, self.trace);
        let labels = std::mem::take(&mut self.labels);
        self.acct.finish(
            RecordKind::Request,
            &self.name,
            self.completed || body_skipped,
            self.error,
            |record| {
                record.weight = weight;
                record.method = Some(Cow::Borrowed(method));
                record.status = status;
                record.labels = labels;
                record.set_trace_context(trace);
            },
        );
    }
}
