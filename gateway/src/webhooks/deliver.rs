//! One signed POST of a callback, and what came of it. A 2xx answer
//! acknowledges, except 202, which says the receiver will acknowledge the
//! delivery itself later. A redirect is not followed (it would carry a
//! signed body somewhere the token's hosts do not name): a failed attempt.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::sign;

pub struct Answer {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub acknowledged: bool,
    pub awaiting_ack: bool,
}

/// The HTTP client for callbacks: rustls with the ring provider (the one
/// lapin already brings), the system's roots, no redirects.
pub fn client() -> reqwest::Client {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hlsmux-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    delivery_id: Uuid,
    body: &Value,
    timeout: Duration,
) -> Answer {
    let bytes = body.to_string().into_bytes();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sent = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(sign::HEADER, sign::signature(secret, now, &bytes))
        .header("Hlsmux-Delivery", delivery_id.to_string())
        .body(bytes)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let later = status == reqwest::StatusCode::ACCEPTED;
            Answer {
                status: Some(status.as_u16()),
                error: (!status.is_success()).then(|| format!("the receiver answered {status}")),
                acknowledged: status.is_success() && !later,
                awaiting_ack: later,
            }
        }
        Err(error) => Answer {
            status: None,
            error: Some(describe(&error)),
            acknowledged: false,
            awaiting_ack: false,
        },
    }
}

/// A failed request in words, with its cause (reqwest's own message is
/// only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
