//! A real `hlsmux-gateway` process in a test's world, with a token file
//! written for it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{TestEnv, binaries, http};

pub struct TestGateway {
    child: Child,
    pub address: SocketAddr,
}

impl TestGateway {
    /// Starts a gateway knowing `tokens` (the token, and its rights as
    /// the token file spells them), and waits until it answers.
    pub async fn spawn(test: &TestEnv, tokens: &[(&str, &[&str])]) -> Self {
        Self::spawn_with(test, tokens, &[]).await
    }

    /// As [`spawn`](Self::spawn), with more command-line arguments.
    pub async fn spawn_with(
        test: &TestEnv,
        tokens: &[(&str, &[&str])],
        arguments: &[&str],
    ) -> Self {
        let mut file = String::new();
        for (index, (token, rights)) in tokens.iter().enumerate() {
            file.push_str(&token_entry(&format!("token-{index}"), token, rights));
        }
        Self::spawn_with_token_file(test, &file, arguments).await
    }

    /// A gateway reading `token_file` (as written, e.g. with webhook
    /// secrets), with more command-line arguments. A second gateway of the
    /// same test (after a restart) takes the first's place.
    pub async fn spawn_with_token_file(
        test: &TestEnv,
        token_file: &str,
        arguments: &[&str],
    ) -> Self {
        let tokens_path = test.path().join("gateway-tokens.toml");
        std::fs::write(&tokens_path, token_file).expect("token file");
        Self::spawn_process(test, &tokens_path, arguments, &[]).await
    }

    /// A gateway as `hlsmux-deploy` renders it: its token file, and its
    /// broker user and namespace from `environment` (the test's media and
    /// output roots, and any free port, instead of the site's).
    pub async fn spawn_rendered(
        test: &TestEnv,
        tokens_path: &std::path::Path,
        environment: &[(&str, &str)],
    ) -> Self {
        Self::spawn_process(test, tokens_path, &[], environment).await
    }

    async fn spawn_process(
        test: &TestEnv,
        tokens_path: &std::path::Path,
        arguments: &[&str],
        environment: &[(&str, &str)],
    ) -> Self {
        let address_file = test.path().join("gateway-address");
        let _ = std::fs::remove_file(&address_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(test.path().join("gateway.log"))
            .expect("log");
        let child = Command::new(binaries::gateway())
            .args(["--listen", "127.0.0.1:0", "--tokens"])
            .arg(tokens_path)
            .arg("--address-file")
            .arg(&address_file)
            .args(arguments)
            .envs(test.hlsmux_env())
            .envs(environment.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the gateway starts");
        let deadline = std::time::Instant::now() + crate::PATIENCE;
        let address = loop {
            if let Some(address) = std::fs::read_to_string(&address_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                break address;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway never listened; it said: {}",
                std::fs::read_to_string(test.path().join("gateway.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Ready: it reached the broker and read the event history once.
        loop {
            if let Ok((200, _)) = http::try_get(address, "/readyz").await {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway never got ready; it said: {}",
                std::fs::read_to_string(test.path().join("gateway.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, address }
    }

    /// The gateway's largest resident set so far, in MiB (`VmHWM`).
    pub fn peak_rss_mib(&self) -> f64 {
        let pid = self.child.id().expect("running");
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))
                    .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    /// Submits `submission` with `token`, insists it is accepted, and
    /// returns the job's ID.
    pub async fn submit(&self, token: &str, submission: &serde_json::Value) -> String {
        let (status, accepted) = self.call("POST", "/v1/jobs", token, Some(submission)).await;
        assert_eq!(status, 202, "{accepted}");
        accepted["job_id"].as_str().expect("a job ID").to_owned()
    }

    /// Polls `GET /v1/jobs/{job}` with `token` until `reached` holds for
    /// its body (within the test's patience); that body.
    pub async fn job_until(
        &self,
        token: &str,
        job: &str,
        what: &str,
        reached: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + crate::PATIENCE;
        loop {
            let (status, body) = self
                .call("GET", &format!("/v1/jobs/{job}"), token, None)
                .await;
            if status == 200 && reached(&body) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {job} never {what}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `method path` with `token` as its bearer (none when empty) and a
    /// JSON `body`; the status and the body parsed as JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![("Content-Type", "application/json")];
        if !token.is_empty() {
            headers.push(("Authorization", bearer.as_str()));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, text) = http::request(self.address, method, path, &headers, &bytes).await;
        let json = serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}

/// One `[[token]]` of a token file: `token` stored as its digest.
pub fn token_entry(name: &str, token: &str, rights: &[&str]) -> String {
    let rights: Vec<String> = rights.iter().map(|r| format!("{r:?}")).collect();
    format!(
        "[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\nrights = [{}]\n",
        hlsmux_gateway::tokens::digest(token),
        rights.join(", ")
    )
}
