use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::MeasuredBody;
use super::request::RequestState;

pin_project! {
    /// The response future of [`MeasureService`](crate::MeasureService):
    /// measures each poll of the inner future when the request is sampled,
    /// then hands the measurement to the response body.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<Box<RequestState>>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("sampled", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, state: Option<Box<RequestState>>) -> ResponseFuture<F> {
        ResponseFuture { inner, state }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<MeasuredBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(state) = this.state.as_mut() else {
            return match this.inner.poll(cx) {
                Poll::Ready(Ok(response)) => {
                    Poll::Ready(Ok(response.map(|b| MeasuredBody::new(b, None))))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        };
        let inner = this.inner;
        // Out of line, so that the unsampled path above stays small.
        match measured_poll(state, inner, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                state.finished(Some("service_error"));
                // Dropping the state delivers the record.
                *this.state = None;
                Poll::Ready(Err(e))
            }
            Poll::Ready(Ok(response)) => {
                state.responded(response.status());
                let mut state = this.state.take();
                if response.body().is_end_stream() {
                    if let Some(s) = state.as_mut() {
                        s.finished(None);
                    }
                    state = None;
                }
                Poll::Ready(Ok(response.map(|b| MeasuredBody::new(b, state))))
            }
        }
    }
}

/// One measured poll of the inner future of a sampled request.
#[inline(never)]
fn measured_poll<F: Future>(
    state: &mut RequestState,
    inner: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    state.acct.measure(true, || inner.poll(cx))
}
