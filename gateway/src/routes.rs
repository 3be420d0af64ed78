//! The routes: `/healthz` and `/readyz` open to all, everything under
//! `/v1` behind a bearer token with the right it needs.

use hlsmux_protocol::JobId;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::Gateway;
use crate::api_error::ApiError;
use crate::body::{Body, json_response};
use crate::jobs;
use crate::query::Query;
use crate::tokens::{Caller, Right};

/// The API's OpenAPI document, served at `/openapi.json` and checked
/// against these routes by the tests.
const OPENAPI: &str = include_str!("../openapi.json");

/// The route a path is counted under (IDs replaced).
fn template(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["openapi.json"] => "/openapi.json",
        ["v1", "jobs"] => "/v1/jobs",
        ["v1", "jobs", _] => "/v1/jobs/{id}",
        ["v1", "jobs", _, "events"] => "/v1/jobs/{id}/events",
        ["v1", "workers"] => "/v1/workers",
        ["v1", "outputs", ..] => "/v1/outputs/{path}",
        ["v1", "webhooks", _, "ack"] => "/v1/webhooks/{delivery_id}/ack",
        [""] | ["index.html"] | ["ui", ..] => "/ui",
        _ => "other",
    }
}

/// The largest request body: a submission is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

impl Gateway {
    pub(crate) async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let method = request.method().to_string();
        let route = template(request.uri().path());
        let response = match self.route(request).await {
            Ok(response) => response,
            Err(error) => error.response(),
        };
        self.metrics
            .answered(&method, route, response.status().as_u16());
        response
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        if method == Method::GET
            && let Some(page) = crate::ui::asset(&path)
        {
            return Ok(page);
        }
        match (&method, path.as_str()) {
            (&Method::GET, "/healthz") => {
                return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})));
            }
            (&Method::GET, "/readyz") => return Ok(self.readiness().await),
            (&Method::GET, "/metrics") => {
                let mut response = Response::new(crate::body::full(self.metrics.render()));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                );
                return Ok(response);
            }
            (&Method::GET, "/openapi.json") => {
                let document: serde_json::Value =
                    serde_json::from_str(OPENAPI).unwrap_or(serde_json::Value::Null);
                return Ok(json_response(StatusCode::OK, &document));
            }
            _ => {}
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let caller = self.caller(&request)?;
        match (&method, segments.as_slice()) {
            (&Method::POST, ["v1", "jobs"]) if is_upload(&request)? => {
                need(&caller, Right::Submit)?;
                let accepted = jobs::submit_upload(self, &caller, request).await?;
                Ok(json_response(StatusCode::ACCEPTED, &accepted))
            }
            (&Method::POST, ["v1", "jobs"]) => {
                need(&caller, Right::Submit)?;
                let body = read_body(request).await?;
                let submission = serde_json::from_slice(&body).map_err(|error| {
                    ApiError::bad_request(
                        "bad_body",
                        format!("the body is not a submission: {error}"),
                    )
                })?;
                let accepted = jobs::submit(self, &caller, submission).await?;
                Ok(json_response(StatusCode::ACCEPTED, &accepted))
            }
            (&Method::GET, ["v1", "jobs"]) => {
                need(&caller, Right::Read)?;
                let query = Query::parse(request.uri().query())?;
                let listed = jobs::jobs(&self.index, &query).await?;
                Ok(json_response(StatusCode::OK, &listed))
            }
            (&Method::GET, ["v1", "jobs", id]) => {
                need(&caller, Right::Read)?;
                Ok(json_response(
                    StatusCode::OK,
                    &jobs::job(self, job_id(id)?).await?,
                ))
            }
            (&Method::GET, ["v1", "jobs", id, "events"]) => {
                need(&caller, Right::Read)?;
                let job = job_id(id)?;
                let last = last_event_id(&request)?;
                crate::events::follow(&self.broker, job, last, &self.metrics.event_streams).await
            }
            (&Method::DELETE, ["v1", "jobs", id]) => {
                need(&caller, Right::Cancel)?;
                let by = format!("gateway token {}", caller.name);
                let cancelled = jobs::cancel(&self.broker, &self.index, job_id(id)?, &by).await?;
                Ok(json_response(StatusCode::ACCEPTED, &cancelled))
            }
            (&Method::POST, ["v1", "webhooks", delivery, "ack"]) => {
                let delivery = delivery.parse().map_err(|_| {
                    ApiError::bad_request(
                        "unknown_delivery",
                        format!("{delivery:?} is not a delivery ID"),
                    )
                })?;
                let acknowledged = self
                    .webhooks
                    .acknowledge(&self.broker, &caller, delivery)
                    .await?;
                Ok(json_response(StatusCode::OK, &acknowledged))
            }
            (&Method::GET, ["v1", "outputs", ..]) => {
                need(&caller, Right::Read)?;
                let rest = path.strip_prefix("/v1/outputs/").unwrap_or_default();
                crate::outputs::serve(self.output_root.as_deref(), rest).await
            }
            (&Method::GET, ["v1", "workers"]) => {
                need(&caller, Right::Read)?;
                Ok(json_response(
                    StatusCode::OK,
                    &jobs::workers(&self.broker).await?,
                ))
            }
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_route",
                format!("no {method} {path}: see /v1/jobs and /v1/workers"),
            )),
        }
    }

    /// The caller the request's bearer token stands for.
    fn caller(&self, request: &Request<Incoming>) -> Result<Caller, ApiError> {
        let header = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send a token: Authorization: Bearer TOKEN",
                )
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the Authorization header must be `Bearer TOKEN`",
                )
            })?;
        self.tokens.caller(token.trim()).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_token",
                "this token is not known",
            )
        })
    }

    async fn readiness(&self) -> Response<Body> {
        if !self.index.is_caught_up() {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                "still reading the event history",
            )
            .response();
        }
        match self.broker.channel().await {
            Ok(channel) => {
                let _ = channel.close(200, "ready check".into()).await;
                json_response(StatusCode::OK, &json!({"status": "ready"}))
            }
            Err(error) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                error.to_string(),
            )
            .response(),
        }
    }
}

fn need(caller: &Caller, right: Right) -> Result<(), ApiError> {
    if caller.may(right) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {:?} lacks the right `{}` this needs",
                caller.name,
                right.as_str()
            ),
        ))
    }
}

/// The `Last-Event-ID` a reconnecting event stream sends: the offset of
/// the last event it saw.
fn last_event_id(request: &Request<Incoming>) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_last_event_id",
                "Last-Event-ID must be the id of an event this stream sent",
            )
        })
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("bad_job_id", format!("{text:?} is not a job ID")))
}

/// Reads a body of at most `MAX_BODY_BYTES`.
async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a request body may be at most {MAX_BODY_BYTES} bytes"),
            )
        })
}

/// Whether a `POST /v1/jobs` carries a file (any `video/*` or
/// `application/octet-stream`) rather than a JSON submission.
fn is_upload(request: &Request<Incoming>) -> Result<bool, ApiError> {
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "application/json" => Ok(false),
        "application/octet-stream" => Ok(true),
        video if video.starts_with("video/") => Ok(true),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {other:?}: send application/json (a path under the media root) \
                 or the file itself as application/octet-stream or video/*"
            ),
        )),
    }
}
