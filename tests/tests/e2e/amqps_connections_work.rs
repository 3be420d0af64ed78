//! `amqps://` works for the worker and the CLI: the broker gets a TLS
//! listener (with a certificate from a CA made for this test), and both
//! programs trust that CA through `SSL_CERT_FILE`, as a site with its own
//! CA would configure them.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, WorkerOptions};

fn run(program: &str, args: &[&str], dir: &Path) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A TLS listener on the shared broker for one test, stopped when dropped.
struct TlsListener {
    port: u16,
}

impl TlsListener {
    fn start(certs: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let file = |name: &str| certs.join(name).display().to_string();
        run(
            "rabbitmqctl",
            &[
                "eval",
                &format!(
                    r#"rabbit_networking:start_ssl_listener({port}, [{{certfile,"{}"}},{{keyfile,"{}"}}], 1, 1)."#,
                    file("server.pem"),
                    file("server.key")
                ),
            ],
            certs,
        );
        Self { port }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args([
                "eval",
                &format!("rabbit_networking:stop_tcp_listener({}).", self.port),
            ])
            .output();
    }
}

/// A CA and a server certificate for `localhost`, readable by the broker
/// (which may run as its own user).
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("cert dir");
    let subject_ca = "/CN=hlsmux test CA";
    run(
        "openssl",
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", subject_ca,
        ],
        dir,
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("ext");
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext",
        ],
        dir,
    );
    for entry in std::fs::read_dir(dir).expect("certs").flatten() {
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[tokio::test]
async fn worker_and_cli_work_over_amqps() {
    let test = TestEnv::new("amqps").await;
    let certs = tempfile::Builder::new()
        .prefix("hlsmux-tls-")
        .tempdir()
        .expect("cert dir");
    std::fs::set_permissions(certs.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    make_certificates(certs.path());
    let listener = TlsListener::start(certs.path());
    let url = format!("amqps://guest:guest@localhost:{}/%2f", listener.port);
    let ca = certs.path().join("ca.pem").display().to_string();

    let _worker = test
        .worker_with(
            1,
            WorkerOptions {
                env: vec![
                    ("HLSMUX_AMQP_URL".into(), url.clone()),
                    ("SSL_CERT_FILE".into(), ca.clone()),
                ],
                ..WorkerOptions::default()
            },
        )
        .await;
    let clip = Clip::default()
        .write(&test.media_root().join("tls.mp4"))
        .await;
    let clip = clip.display().to_string();
    let run = test
        .cli_with_env(
            &[
                "submit",
                &clip,
                "--muxer",
                "1",
                "--wait",
                "--amqp-url",
                &url,
            ],
            &[("SSL_CERT_FILE", &ca)],
        )
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("master.m3u8"), "{run:#?}");

    // Without the CA, the certificate is refused: TLS is really checked.
    let untrusted = test
        .cli(&["submit", &clip, "--muxer", "1", "--amqp-url", &url])
        .await;
    assert_eq!(untrusted.code, Some(3), "{untrusted:#?}");
}
