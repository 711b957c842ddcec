use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::label::LabelRequest;
use super::request::RequestState;
use super::{MeasuredBody, ResponseFuture};
use crate::sample::Sampler;

/// The service made by [`MeasureLayer`](super::MeasureLayer): decides
/// sampling per request and measures the sampled ones per poll.
#[derive(Clone, Debug)]
pub struct MeasureService<S, L = ()> {
    inner: S,
    sampler: Arc<Sampler>,
    labeler: L,
}

impl<S, L> MeasureService<S, L> {
    pub(crate) fn new(inner: S, sampler: Arc<Sampler>, labeler: L) -> MeasureService<S, L> {
        MeasureService {
            inner,
            sampler,
            labeler,
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

impl<S, L, ReqBody, ResBody> Service<Request<ReqBody>> for MeasureService<S, L>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    L: LabelRequest<ReqBody>,
    ResBody: http_body::Body,
{
    type Response = Response<MeasuredBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Unsampled (most requests): one sampling decision and the inner
    /// `call`, inlined; a sampled request takes the out-of-line path.
    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> ResponseFuture<S::Future> {
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

impl<S, L> MeasureService<S, L> {
    /// A sampled request: its state, and the inner `call` as its first
    /// measured segment.
    #[cold]
    #[inline(never)]
    fn call_sampled<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        weight: u64,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        L: LabelRequest<ReqBody>,
    {
        let mut state = Box::new(RequestState::new(&request, weight, &self.labeler));
        // The inner `call` may do work of its own: it is the first segment.
        // Should it panic, dropping `state` while unwinding records it.
        let inner = &mut self.inner;
        let future = state.acct.measure(false, || inner.call(request));
        ResponseFuture::new(future, Some(state))
    }
}
