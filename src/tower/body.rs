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
