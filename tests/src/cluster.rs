//! The three-node RabbitMQ cluster on loopback that `scripts/cluster`
//! runs, for the tests of a node's loss.

use std::path::PathBuf;
use std::process::Command;

use crate::broker::BrokerNode;

/// The three nodes of `scripts/cluster`, numbered 1 to 3.
pub struct Cluster;

impl Cluster {
    /// Starts the cluster (or finds it running) with all three nodes up.
    pub fn up() -> Self {
        run(&["up"]);
        Cluster
    }

    /// Every node's AMQP URL, comma-separated, as workers and the CLI take it.
    pub fn urls(&self) -> String {
        run(&["urls"]).trim().to_owned()
    }

    pub fn node(&self, number: u8) -> BrokerNode {
        BrokerNode {
            url: format!(
                "amqp://guest:guest@127.0.0.1:{}/%2f",
                5680 + u16::from(number)
            ),
            name: Some(Self::erlang_name(number)),
        }
    }

    pub fn erlang_name(number: u8) -> String {
        format!("hlsmux-c{number}@localhost")
    }

    /// SIGKILL: a power cut.
    pub fn kill(&self, number: u8) {
        run(&["kill", &number.to_string()]);
    }

    /// A clean stop, as in a rolling restart.
    pub fn stop(&self, number: u8) {
        run(&["stop", &number.to_string()]);
    }

    /// Starts a node again; it rejoins the cluster.
    pub fn start(&self, number: u8) {
        run(&["start", &number.to_string()]);
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster")
}

fn run(args: &[&str]) -> String {
    let output = Command::new(script())
        .args(args)
        .output()
        .expect("scripts/cluster runs");
    assert!(
        output.status.success(),
        "scripts/cluster {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts every node again when dropped, even if the test failed, so the
/// next test finds the whole cluster.
pub struct RestartOnDrop<'a>(pub &'a Cluster, pub u8);

impl Drop for RestartOnDrop<'_> {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["start", &self.1.to_string()])
            .output();
    }
}
