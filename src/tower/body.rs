use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::request::RequestState;

pin_project! {
    /// The response body of [`MeasureService`](crate::MeasureService): the
    /// inner body, measured per poll until its end when the request is
    /// sampled; the request's record is emitted when the body ends, fails
    /// or is dropped.
    pub struct MeasuredBody<B> {
        #[pin]
        inner: B,
        state: Option<Box<RequestState>>,
    }
}

impl<B> std::fmt::Debug for MeasuredBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeasuredBody")
            .field("measuring", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> MeasuredBody<B> {
    pub(crate) fn new(inner: B, state: Option<Box<RequestState>>) -> MeasuredBody<B> {
        MeasuredBody { inner, state }
    }

    /// Whether the body is being measured (its request is sampled and the
    /// body has not ended).
    pub fn is_measuring(&self) -> bool {
        self.state.is_some()
    }

    /// The inner body. Meant for a body that is not being measured: the
    /// record of a body still being measured is emitted now, as if the body
    /// had been dropped.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

mod sealed {
    pub trait Sealed {}
}

/// How [`MeasureService`](super::MeasureService) hands back the response
/// body: [`Wrapped`] (the default) or [`AxumBody`] (see
/// [`MeasureLayer::axum_body`](super::MeasureLayer::axum_body)). Sealed.
pub trait ResponseBody<B>: sealed::Sealed {
    /// The response body type.
    type Body;

    /// The response body for `body`.
    fn wrap(body: MeasuredBody<B>) -> Self::Body;
}

/// Response bodies are [`MeasuredBody`], sampled or not: works with any
/// body type.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wrapped;

impl sealed::Sealed for Wrapped {}

impl<B> ResponseBody<B> for Wrapped {
    type Body = MeasuredBody<B>;

    #[inline]
    fn wrap(body: MeasuredBody<B>) -> MeasuredBody<B> {
        body
    }
}

/// Response bodies are axum's `Body`: the inner body itself when the
/// request is not being measured (axum's `Body::new` of an axum `Body` is
/// that body, nothing allocated), a `MeasuredBody` inside one when it is.
/// Under `Router::layer`, axum would otherwise box every `MeasuredBody`
/// into a `Body` again, sampled or not.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct AxumBody;

#[cfg(feature = "axum")]
impl sealed::Sealed for AxumBody {}

#[cfg(feature = "axum")]
impl<B> ResponseBody<B> for AxumBody
where
    B: Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Body = axum::body::Body;

    #[inline]
    fn wrap(body: MeasuredBody<B>) -> axum::body::Body {
        if body.is_measuring() {
            axum::body::Body::new(body)
        } else {
            axum::body::Body::new(body.into_inner())
        }
    }
}

impl<B: Body> Body for MeasuredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let Some(state) = this.state.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        let mut inner = this.inner;
        // Out of line, so that the unsampled path above stays small.
        let result = measured_poll_frame(state, inner.as_mut(), cx);
        let end = match &result {
            Poll::Pending => None,
            Poll::Ready(None) => Some(None),
            Poll::Ready(Some(Err(_))) => Some(Some("body_error")),
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream().then_some(None),
        };
        if let Some(error) = end {
            state.finished(error);
            // Dropping the state delivers the record.
            *this.state = None;
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What `poll_frame` returns.
type PolledFrame<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

/// One measured poll of the body of a sampled request.
#[inline(never)]
fn measured_poll_frame<B: Body>(
    state: &mut RequestState,
    inner: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> PolledFrame<B> {
    state.acct.measure(true, || inner.poll_frame(cx))
}
