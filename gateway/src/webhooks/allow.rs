//! Who may be called back where: an `http(s)` URL without credentials, to
//! a host the token's `callback_hosts` names, by a token with a webhook
//! secret to sign with. The gateway cannot be made to POST anywhere else
//! on its network for a caller.

use hyper::StatusCode;

use crate::api_error::ApiError;
use crate::tokens::Caller;

/// Checks that `caller` may have its callbacks sent to `url`; returns
/// the URL as it will be called.
pub fn check_callback(caller: &Caller, url: &str) -> Result<String, ApiError> {
    let refused = |why: String| ApiError::bad_request("bad_callback_url", why);
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| refused(format!("callback_url {url:?}: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refused(format!(
            "callback_url {url:?}: use http:// or https://"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refused(format!(
            "callback_url {url:?}: no credentials in the URL (the signature authenticates)"
        )));
    }
    if caller.webhook_secret.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "callback_not_allowed",
            format!(
                "token {:?} has no webhook_secret in the token file, so its callbacks \
                 could not be signed",
                caller.name
            ),
        ));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let with_port = parsed
        .port_or_known_default()
        .map(|port| format!("{host}:{port}"))
        .unwrap_or_else(|| host.clone());
    if !caller
        .callback_hosts
        .iter()
        .any(|allowed| *allowed == host || *allowed == with_port)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "callback_not_allowed",
            format!(
                "token {:?} may not send callbacks to {with_port}: add it to the token's \
                 callback_hosts",
                caller.name
            ),
        ));
    }
    Ok(parsed.to_string())
}
