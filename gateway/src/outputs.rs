//! `GET /v1/outputs/{path}`: the published HLS files under the output
//! root, for the web page's player (and any client with a read token).
//! Only HLS's own file types, only published outputs (no hidden name on
//! the way: staging and the pool's bookkeeping are hidden), never a path
//! that leaves the root, links resolved. Files are streamed, so memory
//! stays bounded whatever their size.

use std::convert::Infallible;
use std::path::Path;

use futures_util::StreamExt;
use hlsmux_protocol::RelativePath;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use crate::api_error::ApiError;
use crate::body::Body;

/// The file types an HLS output is made of, and how they are served.
fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match extension.as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "aac" => "audio/aac",
        "vtt" => "text/vtt",
        "key" => "application/octet-stream",
        _ => return None,
    })
}

/// Serves `encoded` (the URL's path after `/v1/outputs/`, still
/// percent-encoded) from `output_root`.
pub async fn serve(output_root: Option<&Path>, encoded: &str) -> Result<Response<Body>, ApiError> {
    let root = output_root.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "output_root_unavailable",
            "this gateway has no output root: set HLSMUX_OUTPUT_ROOT",
        )
    })?;
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("output_outside_root", "the path is not UTF-8"))?;
    let relative = RelativePath::parse(&decoded)
        .map_err(|error| ApiError::bad_request("output_outside_root", error.to_string()))?;
    let not_served = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no published HLS file {relative} under the output root"),
        )
    };
    let kind = content_type(relative.as_str()).ok_or_else(not_served)?;
    if relative
        .as_str()
        .split('/')
        .any(|part| part.starts_with('.'))
    {
        return Err(not_served());
    }
    let root = tokio::fs::canonicalize(root)
        .await
        .map_err(|error| ApiError::root_unavailable("output", root, &error))?;
    let resolved = tokio::fs::canonicalize(relative.under(&root))
        .await
        .map_err(|_| not_served())?;
    if !resolved.starts_with(&root) {
        return Err(ApiError::bad_request(
            "output_outside_root",
            format!("{relative} resolves outside the output root"),
        ));
    }
    let file = tokio::fs::File::open(&resolved)
        .await
        .map_err(|_| not_served())?;
    let meta = file.metadata().await.map_err(|_| not_served())?;
    if !meta.is_file() {
        return Err(not_served());
    }
    // A read error midway ends the body early; the client sees a short
    // file, as after a dropped connection.
    let frames = tokio_util::io::ReaderStream::new(file)
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .filter_map(|chunk| std::future::ready(chunk.ok()))
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(meta.len()));
    // Playlists of a published output do not change, but a re-published
    // output replaces them: check each time.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
