//! `GET /v1/jobs/{id}/events`: a job's status events as Server-Sent
//! Events, from the pool's event history (a RabbitMQ stream) and then
//! live, ending after the job's `done` or `failed`. Each event's `id` is
//! its offset in the stream, so a client that lost its connection sends
//! `Last-Event-ID` and resumes just after it, missing nothing and seeing
//! nothing twice. A comment every 15 s keeps proxies from closing a quiet
//! stream; a client that goes away ends the read.

use std::convert::Infallible;
use std::time::Duration;

use futures_util::StreamExt;
use hlsmux_amqp::{HistoryStart, stream, stream_offset};
use hlsmux_protocol::{JobId, StatusEvent};
use hlsmux_submitter::broker::Broker;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode};
use lapin::options::BasicAckOptions;
use tokio::sync::mpsc;
use tracing::debug;

use crate::api_error::ApiError;
use crate::body::Body;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Opens the history from the start (or just after `last_event_id`) and
/// streams `job`'s events.
pub async fn follow(
    broker: &Broker,
    job: JobId,
    last_event_id: Option<u64>,
    open_streams: &prometheus::IntGauge,
) -> Result<Response<Body>, ApiError> {
    let from = last_event_id.map_or(HistoryStart::First, HistoryStart::After);
    let channel = broker.channel().await?;
    let consumer = stream::open(
        &channel,
        &broker.topology().event_history_stream(),
        from,
        "hlsmux-gateway-events",
    )
    .await
    .map_err(hlsmux_submitter::error::CliError::from)?;
    let (frames, receiver) = mpsc::channel::<Bytes>(16);
    let open_streams = open_streams.clone();
    open_streams.inc();
    tokio::spawn(async move {
        forward(consumer, job, &frames).await;
        let _ = channel.close(200, "events sent".into()).await;
        open_streams.dec();
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let bytes = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), receiver))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    Ok(response)
}

/// Sends each of `job`'s events as a frame until its end, the client
/// leaving, or the broker failing.
async fn forward(mut consumer: lapin::Consumer, job: JobId, frames: &mpsc::Sender<Bytes>) {
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        let delivery = tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => delivery,
                _ => return,
            },
            _ = keep_alive.tick() => {
                if frames.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
                continue;
            }
            () = frames.closed() => {
                debug!(%job, "the client left");
                return;
            }
        };
        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        let Ok(event) = serde_json::from_slice::<StatusEvent>(&delivery.data) else {
            continue;
        };
        if event.job_id != job || event.state.is_refused_duplicate() {
            continue;
        }
        let offset = stream_offset(&delivery.properties).unwrap_or_default();
        let frame = format!(
            "id: {offset}\nevent: {}\ndata: {}\n\n",
            event.state.event_state(),
            serde_json::to_string(&event).unwrap_or_default()
        );
        if frames.send(Bytes::from(frame)).await.is_err() {
            return;
        }
        if event.state.is_final() {
            return;
        }
    }
}
