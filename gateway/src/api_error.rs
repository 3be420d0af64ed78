//! Every refusal as JSON with a stable code, the same words the CLI uses:
//! `{"error": {"code": "input_outside_root", "message": "..."}}`.

use hlsmux_submitter::error::CliError;
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::body::{Body, json_response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, for programs: `unauthorized`, `forbidden`, `bad_request`,
    /// `input_outside_root`, `input_missing`, `not_found`, ...
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The `media` or `output` root cannot be used (unmounted, gone).
    pub fn root_unavailable(
        which: &'static str,
        root: &std::path::Path,
        error: &std::io::Error,
    ) -> Self {
        let code = if which == "media" {
            "media_root_unavailable"
        } else {
            "output_root_unavailable"
        };
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            format!("the {which} root {} is not usable: {error}", root.display()),
        )
    }

    pub fn response(&self) -> Response<Body> {
        json_response(
            self.status,
            &json!({ "error": { "code": self.code, "message": self.message } }),
        )
    }
}

/// A CLI error as the API says it: the same message, a code and status
/// for programs.
impl From<CliError> for ApiError {
    fn from(error: CliError) -> Self {
        let (status, code) = match &error {
            CliError::InputMissing(_) => (StatusCode::BAD_REQUEST, "input_missing"),
            CliError::InputUnusable { .. } => (StatusCode::BAD_REQUEST, "input_unusable"),
            CliError::BadName { .. } => (StatusCode::BAD_REQUEST, "bad_name"),
            CliError::Unroutable(_) | CliError::UnknownMuxer(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unknown_muxer")
            }
            CliError::NoMuxerAvailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "no_muxer_available")
            }
            CliError::AlreadyEnded { .. } => (StatusCode::CONFLICT, "already_ended"),
            CliError::UnknownJob(_) => (StatusCode::NOT_FOUND, "not_found"),
            CliError::BrokerUnreachable { .. } | CliError::Broker(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable")
            }
            CliError::MediaRootMissing { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "media_root_unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, error.to_string())
    }
}
