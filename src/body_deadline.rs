//! A deadline for request bodies. actix bounds the time to receive a request's
//! head (`client_request_timeout`) but not its body: a client sending one byte
//! every few seconds could hold a connection, a worker's attention and anything
//! the request had already taken for as long as it liked. This middleware wraps
//! the payload of every request that announces a body in a stream that fails
//! with `TimedOut` once `http.body_timeout_ms` has passed since the request
//! arrived; the JSON extractor turns that into `408 request_timeout`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;

/// The node's body deadline, registered as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

/// True for the error a body stream yields when its deadline passed.
pub fn is_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// The answer to a request whose body timed out.
pub fn timeout_error(req: &actix_web::HttpRequest) -> crate::error::ApiError {
    let limit = req.app_data::<BodyTimeout>();
    crate::error::ApiError::RequestTimeout(limit.map_or(0, |t| t.0.as_millis() as u64))
}

/// Whether a request with these headers carries a body (a declared length above
/// zero, or chunks): a GET without either has none, and pays for no timer.
pub fn announces_body(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0")
}

pub async fn enforce(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(BodyTimeout(limit)) = req.app_data::<BodyTimeout>().copied()
        && announces_body(req.headers())
    {
        let inner = req.take_payload();
        let bounded = Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            expired: false,
        };
        req.set_payload(Payload::from(
            Box::pin(bounded) as Pin<Box<dyn Stream<Item = _>>>
        ));
    }
    next.call(req).await
}

struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired = true;
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
