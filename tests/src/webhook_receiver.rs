//! A webhook receiver on loopback, as a CMS would run one: it keeps every
//! request it gets (headers and body) and answers each with the next
//! status of a script, then with a standing answer that a test can change.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub json: serde_json::Value,
}

#[derive(Default)]
struct Script {
    next: VecDeque<u16>,
    standing: u16,
    received: Vec<Received>,
}

pub struct WebhookReceiver {
    pub address: SocketAddr,
    script: Arc<Mutex<Script>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Answers with `first` in order, then with `standing` for ever.
    pub async fn start(first: &[u16], standing: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let script = Arc::new(Mutex::new(Script {
            next: first.iter().copied().collect(),
            standing,
            received: Vec::new(),
        }));
        let serving = Arc::clone(&script);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let script = Arc::clone(&script);
                        async move {
                            let headers = request
                                .headers()
                                .iter()
                                .map(|(name, value)| {
                                    (
                                        name.as_str().to_owned(),
                                        value.to_str().unwrap_or_default().to_owned(),
                                    )
                                })
                                .collect();
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let json =
                                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                            let status = {
                                let mut script = script.lock().expect("script");
                                script.received.push(Received {
                                    headers,
                                    body,
                                    json,
                                });
                                let standing = script.standing;
                                script.next.pop_front().unwrap_or(standing)
                            };
                            let mut response = Response::new(Full::new(Bytes::from_static(b"")));
                            *response.status_mut() =
                                StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            script,
            server,
        }
    }

    /// From now on, answers every request with `status`.
    pub fn answer(&self, status: u16) {
        let mut script = self.script.lock().expect("script");
        script.next.clear();
        script.standing = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().expect("script").received.clone()
    }

    /// Waits until at least `count` requests have come; all of them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver got {} requests of {count} within {timeout:?}: {received:#?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
