//! The programs under test, built once per test binary by cargo (which
//! rebuilds them when their code changed, so a test never runs a stale one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn worker() -> PathBuf {
    target_dir().join("hlsmux-worker")
}

pub fn cli() -> PathBuf {
    target_dir().join("hlsmux")
}

pub fn gateway() -> PathBuf {
    target_dir().join("hlsmux-gateway")
}

pub fn deploy() -> PathBuf {
    target_dir().join("hlsmux-deploy")
}

/// Builds the binaries (once) and returns the directory holding them: the
/// profile directory this test binary was built into.
fn target_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let mut command = Command::new(env!("CARGO"));
        command.args(["build", "--quiet", "--manifest-path", manifest]);
        command.args(["-p", "hlsmux-worker", "-p", "hlsmux-submitter"]);
        command.args(["-p", "hlsmux-deploy", "-p", "hlsmux-gateway", "--bins"]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        // cargo test hands the test process variables describing *this*
        // package and a library path; passed on, they would make the inner
        // build see a changed environment and rebuild dependencies (ring)
        // that the outer build then rebuilds back.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || key == "LD_LIBRARY_PATH"
                || key == "RUST_RECURSION_COUNT"
            {
                command.env_remove(key.as_ref());
            }
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building the hlsmux binaries failed");
        // A test lives in target/<profile>/deps, the benchmark binary in
        // target/<profile>: either way, the binaries are in target/<profile>.
        let running = std::env::current_exe().expect("own binary path");
        let dir = running.parent().expect("binary in a directory");
        if dir.ends_with("deps") {
            dir.parent().expect("target/<profile>").to_owned()
        } else {
            dir.to_owned()
        }
    })
}
