//! One deadline for reading each request's body, on every route: the listener
//! wraps every request body in a `DeadlineBody` that fails with
//! `BodyDeadlineElapsed` once the deadline passes, so a client dribbling a body
//! cannot hold a connection, a handler and a half-filled buffer open. A route that
//! legitimately takes longer (an admin uploading a component) raises its own
//! request's deadline through the `BodyDeadline` it finds in the request's
//! extensions, before it reads.
//!
//! Why not tower-http's `RequestBodyTimeoutLayer`: its timeout restarts with every
//! frame, so one byte every few seconds keeps a body open forever. This deadline
//! counts from the request's arrival and never restarts.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn StdError + Send + Sync>;

/// When a request's body must have arrived by; shared between the request's
/// `DeadlineBody` and the handler, which may allow more time before reading.
#[derive(Debug, Clone)]
pub struct BodyDeadline {
    arrived: Instant,
    allowed: Arc<Mutex<Duration>>,
}

impl BodyDeadline {
    /// A deadline `allowed` after now (the request's arrival).
    pub fn new(allowed: Duration) -> Self {
        BodyDeadline {
            arrived: Instant::now(),
            allowed: Arc::new(Mutex::new(allowed)),
        }
    }

    /// Lets the body take `allowed` in all, counted from the request's arrival.
    pub fn allow(&self, allowed: Duration) {
        *self.allowed.lock().unwrap_or_else(|e| e.into_inner()) = allowed;
    }

    fn allowed(&self) -> Duration {
        *self.allowed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The error a `DeadlineBody` fails with; find it in a body error's chain with
/// `elapsed_in`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyDeadlineElapsed(pub Duration);

/// The `BodyDeadlineElapsed` somewhere in `error`'s source chain, if any: axum and
/// its extractors wrap body errors in their own types, a layer or three deep.
pub fn elapsed_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a BodyDeadlineElapsed> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(elapsed) = error.downcast_ref::<BodyDeadlineElapsed>() {
            return Some(elapsed);
        }
        next = error.source();
    }
    None
}

/// A request body that fails with `BodyDeadlineElapsed` once its deadline passes.
pub struct DeadlineBody<B> {
    body: B,
    deadline: BodyDeadline,
    /// Created at the first poll, so a body nobody reads costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    pub fn new(body: B, deadline: BodyDeadline) -> Self {
        DeadlineBody {
            body,
            deadline,
            sleep: None,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let allowed = this.deadline.allowed();
        let deadline = this.deadline.arrived + allowed;
        // What has arrived is taken even at the deadline; only waiting is cut off.
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // The handler may have allowed more time since the timer was set.
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyDeadlineElapsed(allowed))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    /// A body that sends `first` and then nothing more, ever.
    fn stalled(first: &'static str) -> AxumBody {
        let frames =
            futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(Bytes::from(first)))])
                .chain(futures_util::stream::pending());
        AxumBody::new(StreamBody::new(frames))
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_the_deadline_with_an_error_found_through_axum() {
        let allowed = Duration::from_millis(100);
        let started = Instant::now();
        let body = AxumBody::new(DeadlineBody::new(
            stalled("0123"),
            BodyDeadline::new(allowed),
        ));
        let error = body.collect().await.unwrap_err();
        assert!(started.elapsed() >= allowed);
        let elapsed = elapsed_in(&error).expect("the deadline error in the chain");
        assert_eq!(elapsed.0, allowed);
        assert!(elapsed_in(&std::io::Error::other("else")).is_none());
    }

    #[tokio::test]
    async fn a_handler_may_allow_more_time_before_or_while_reading() {
        let started = Instant::now();
        let deadline = BodyDeadline::new(Duration::from_millis(50));
        let mut body = DeadlineBody::new(stalled("0123"), deadline.clone());
        assert!(body.frame().await.unwrap().is_ok());
        let more = Duration::from_millis(300);
        deadline.allow(more);
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(started.elapsed() >= more, "{:?}", started.elapsed());
        assert_eq!(elapsed_in(&*error).unwrap().0, more);
    }

    #[tokio::test]
    async fn a_complete_body_is_read_whole() {
        let deadline = BodyDeadline::new(Duration::from_secs(10));
        let body = DeadlineBody::new(AxumBody::from("whole"), deadline);
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"whole");
    }
}
