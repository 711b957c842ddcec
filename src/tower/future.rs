use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::MeasuredBody;
use super::body::{ResponseBody, Wrapped};
use super::request::RequestState;

pin_project! {
    /// The response future of [`MeasureService`](crate::MeasureService):
    /// measures each poll of the inner future when the request is sampled,
    /// then hands the measurement to the response body.
    pub struct ResponseFuture<F, W = Wrapped> {
        #[pin]
        inner: F,
        state: Option<Box<RequestState>>,
        wrap: PhantomData<fn() -> W>,
    }
}

impl<F, W> std::fmt::Debug for ResponseFuture<F, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("sampled", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, W> ResponseFuture<F, W> {
    pub(crate) fn new(inner: F, state: Option<Box<RequestState>>) -> ResponseFuture<F, W> {
        ResponseFuture {
            inner,
            state,
            wrap: PhantomData,
        }
    }
}

impl<F, B, E, W> Future for ResponseFuture<F, W>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    W: ResponseBody<B>,
{
    type Output = Result<Response<W::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(state) = this.state.as_mut() else {
            return match this.inner.poll(cx) {
                Poll::Ready(Ok(response)) => {
                    Poll::Ready(Ok(response.map(|b| W::wrap(MeasuredBody::new(b, None)))))
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
                Poll::Ready(Ok(response.map(|b| W::wrap(MeasuredBody::new(b, state)))))
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
