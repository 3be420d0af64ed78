//! A minimal HTTP/1.1 GET over loopback, enough to read a worker's
//! /metrics, /healthz and /readyz, and to query Prometheus.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The status code and body of `GET path`.
pub async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    try_get(address, path)
        .await
        .unwrap_or_else(|error| panic!("GET http://{address}{path}: {error}"))
}

/// As [`get`], with connection errors returned (for servers still starting).
pub async fn try_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let (status, body) = status_and_body(&response);
    let status = status.unwrap_or_else(|| panic!("not an HTTP response: {body}"));
    Ok((status, body))
}

/// The status code and body of `method path` with `headers` and `body`.
pub async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream.write_all(body).await.expect("send body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let (status, body) = status_and_body(&response);
    (status.unwrap_or(0), body)
}

/// A raw HTTP/1.1 response's status code (if it is one) and body.
fn status_and_body(response: &[u8]) -> (Option<u16>, String) {
    let response = String::from_utf8_lossy(response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok());
    (status, body.to_owned())
}

/// Percent-encodes a query parameter value (everything but unreserved bytes).
pub fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A request body sent in pieces, as a client streaming a file (or a slow
/// one trickling it) would.
pub struct Streamed<'a> {
    pub headers: &'a [(&'a str, &'a str)],
    /// Sent as `Content-Length`; without it the body is chunked.
    pub content_length: Option<u64>,
    pub pieces: Vec<Vec<u8>>,
    /// Between pieces.
    pub pause: std::time::Duration,
}

/// The status code and body of `method path` with a body sent piece by
/// piece. The response is read while sending, so a server that answers
/// and closes early (a refusal) is heard, not lost to a reset.
pub async fn streamed_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Streamed<'_>,
) -> (u16, String) {
    let stream = TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    let (mut reader, mut writer) = stream.into_split();
    let reading = tokio::spawn(async move {
        let mut response = Vec::new();
        let _ = reader.read_to_end(&mut response).await;
        response
    });
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    match body.content_length {
        Some(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    for (name, value) in body.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let chunked = body.content_length.is_none();
    let sending = async {
        writer.write_all(head.as_bytes()).await?;
        for piece in &body.pieces {
            if reading.is_finished() {
                return Ok(());
            }
            if chunked {
                writer
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                writer.write_all(piece).await?;
                writer.write_all(b"\r\n").await?;
            } else {
                writer.write_all(piece).await?;
            }
            tokio::time::sleep(body.pause).await;
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    };
    // A refused upload ends with the server closing: a failed write is
    // expected then, and the response says why.
    let _ = sending.await;
    // A server that waits for the rest of a body never sent would hang
    // the test: give up after the test's patience, as no response.
    let response = match tokio::time::timeout(crate::PATIENCE, reading).await {
        Ok(read) => read.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let (status, text) = status_and_body(&response);
    (status.unwrap_or(0), text)
}
