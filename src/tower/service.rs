use std::marker::PhantomData;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::ResponseFuture;
use super::body::{ResponseBody, Wrapped};
use super::label::LabelRequest;
use super::request::RequestState;
use super::trace::TraceRequest;
use crate::sample::Sampler;

/// The service made by [`MeasureLayer`](super::MeasureLayer): decides
/// sampling per request and measures the sampled ones per poll.
#[derive(Debug)]
pub struct MeasureService<S, L = (), W = Wrapped, T = ()> {
    inner: S,
    sampler: &'static Sampler,
    labeler: L,
    tracer: T,
    wrap: PhantomData<fn() -> W>,
}

impl<S: Clone, L: Clone, W, T: Clone> Clone for MeasureService<S, L, W, T> {
    fn clone(&self) -> Self {
        MeasureService {
            inner: self.inner.clone(),
            sampler: self.sampler,
            labeler: self.labeler.clone(),
            tracer: self.tracer.clone(),
            wrap: PhantomData,
        }
    }
}

impl<S, L, W, T> MeasureService<S, L, W, T> {
    pub(crate) fn new(
        inner: S,
        sampler: &'static Sampler,
        labeler: L,
        tracer: T,
    ) -> MeasureService<S, L, W, T> {
        MeasureService {
            inner,
            sampler,
            labeler,
            tracer,
            wrap: PhantomData,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, L, W, T, ReqBody, ResBody> Service<Request<ReqBody>> for MeasureService<S, L, W, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    L: LabelRequest<ReqBody>,
    T: TraceRequest<ReqBody>,
    ResBody: http_body::Body,
    W: ResponseBody<ResBody>,
{
    type Response = Response<W::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, W>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Unsampled (most requests): one sampling decision and the inner
    /// `call`, inlined; a sampled request takes the out-of-line path.
    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> ResponseFuture<S::Future, W> {
        // Nothing is measured while no pipeline can take the record.
        let weight = self
            .sampler
            .sample()
            .filter(|_| crate::instrument::accounting::records_wanted());
        match weight {
            None => ResponseFuture::new(self.inner.call(request), None),
            Some(weight) => self.call_sampled(request, weight),
        }
    }
}

impl<S, L, W, T> MeasureService<S, L, W, T> {
    /// A sampled request: its state (labels and trace context read here,
    /// on the sampled path only), and the inner `call` as its first
    /// measured segment.
    #[cold]
    #[inline(never)]
    fn call_sampled<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        weight: u64,
    ) -> ResponseFuture<S::Future, W>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        L: LabelRequest<ReqBody>,
        T: TraceRequest<ReqBody>,
    {
        let mut state = Box::new(RequestState::new(
            &request,
            weight,
            &self.labeler,
            &self.tracer,
        ));
        // The inner `call` may do work of its own: it is the first segment.
        // Should it panic, dropping `state` while unwinding records it.
        let inner = &mut self.inner;
        let future = state.acct.measure(false, || inner.call(request));
        ResponseFuture::new(future, Some(state))
    }
}
