//! Whether the kernel's out-of-memory killer stopped ffmpeg: a SIGKILL
//! alone does not say. cgroup v2 counts the kills among a group's
//! processes in `memory.events` (`oom_kill N`); the worker reads its own
//! group's file (or the one `memory_events` names) before and after an
//! encode that died by a signal.

use std::path::{Path, PathBuf};

/// Where the cgroup v2 hierarchy is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The `memory.events` of this process's own cgroup, if it is on cgroup v2.
pub fn own_memory_events() -> Option<PathBuf> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // cgroup v2: the one line `0::/system.slice/hlsmux-worker.service`.
    let group = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?;
    let file = Path::new(CGROUP_ROOT)
        .join(group.trim_start_matches('/'))
        .join("memory.events");
    file.exists().then_some(file)
}

/// The `oom_kill` count in a `memory.events` file.
pub fn oom_kills(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|count| count.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_count_is_read_from_the_kernels_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("memory.events");
        std::fs::write(
            &file,
            "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n",
        )
        .expect("write");
        assert_eq!(oom_kills(&file), Some(2));
        assert_eq!(oom_kills(&dir.path().join("none")), None);
    }
}
