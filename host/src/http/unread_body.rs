//! Saying `Connection: close` when a request's body was left unread.
//!
//! A route may answer before it reads the request's body: a refusal (401, 403,
//! 421), a body over the limit (413). On HTTP/1 the unread rest of that body is
//! in the way of the next request, so hyper closes the connection after the
//! answer, but without saying so in it. A client that pools connections (reqwest,
//! most providers' HTTP libraries) may then send its next request on that socket
//! and see it fail (an incomplete message) instead of opening a new one. The
//! listener wraps each HTTP/1 request body that has something to read in a
//! `WatchedBody`, and adds `Connection: close` to the answer when the route did
//! not read it to its end, so the client drops the connection itself.
//!
//! Why not read the rest before answering: it may be megabytes (an upload the
//! admin refused), and reading it would take exactly the time and bandwidth the
//! refusal saves.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{header, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};

/// Whether a request's body was read to its end; shared between the body, which
/// the route consumes, and the listener, which sees the route's answer.
#[derive(Clone, Default)]
pub struct ReadToEnd(Arc<AtomicBool>);

impl ReadToEnd {
    /// `body`, noting here when it has been read to its end.
    pub fn watch<B>(&self, body: B) -> WatchedBody<B> {
        WatchedBody {
            body,
            read_to_end: self.clone(),
        }
    }

    /// Adds `Connection: close` to `response` unless the body was read to its end.
    pub fn close_unless_read<T>(&self, response: &mut Response<T>) {
        if !self.0.load(Ordering::Acquire) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }

    fn reached(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A request body that tells its `ReadToEnd` once it has been read to its end.
pub struct WatchedBody<B> {
    body: B,
    read_to_end: ReadToEnd,
}

impl<B> Body for WatchedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        // The last frame of a body of known length ends it too: a reader that
        // stops there (it knows the length) has still read everything.
        if matches!(polled, Poll::Ready(None)) || this.body.is_end_stream() {
            this.read_to_end.reached();
        }
        polled
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
    use axum::body::{Body as AxumBody, Bytes};
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    fn answer(read_to_end: &ReadToEnd) -> Option<HeaderValue> {
        let mut response = Response::new(());
        read_to_end.close_unless_read(&mut response);
        response.headers().get(header::CONNECTION).cloned()
    }

    /// A body in two frames, of unknown length (chunked).
    fn chunked() -> AxumBody {
        let frames = futures_util::stream::iter(["one", "two"])
            .map(|part| Ok::<_, std::io::Error>(Frame::data(Bytes::from(part))));
        AxumBody::new(StreamBody::new(frames))
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_keeps_the_connection() {
        let read_to_end = ReadToEnd::default();
        let body = read_to_end.watch(chunked());
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"onetwo");
        assert_eq!(answer(&read_to_end), None);
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_read_with_its_last_frame() {
        let read_to_end = ReadToEnd::default();
        let mut body = read_to_end.watch(AxumBody::from("whole"));
        assert!(body.frame().await.unwrap().is_ok());
        assert_eq!(answer(&read_to_end), None);
    }

    #[tokio::test]
    async fn a_body_left_unread_or_half_read_closes_the_connection() {
        let unread = ReadToEnd::default();
        drop(unread.watch(chunked()));
        assert_eq!(answer(&unread), Some(HeaderValue::from_static("close")));

        let half_read = ReadToEnd::default();
        let mut body = half_read.watch(chunked());
        assert!(body.frame().await.unwrap().is_ok());
        drop(body);
        assert_eq!(answer(&half_read), Some(HeaderValue::from_static("close")));
    }
}
