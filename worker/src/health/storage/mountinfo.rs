//! Reads `/proc/self/mountinfo` (see proc(5)) to tell whether a path is a
//! mount point.

use std::path::{Path, PathBuf};

/// The mount points listed in a mountinfo text.
pub fn mount_points(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

/// Whether `path` is one of the mount points in `text`.
pub fn is_mount_point(text: &str, path: &Path) -> bool {
    mount_points(text).iter().any(|point| point == path)
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' && index + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[index + 1..index + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(octal, 8) {
                out.push(value);
                index += 4;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime shared:1 - nfs 192.168.1.2:/srv/nfs/HLSPi2 rw,vers=3,addr=192.168.1.2
25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
41 22 0:36 / /srv/hlsmux/media rw,relatime shared:20 - nfs 192.168.1.2:/volume1/media rw,vers=3,hard,proto=tcp
42 22 0:37 / /srv/hlsmux/output\\040files rw,relatime shared:21 - nfs 192.168.1.2:/volume1/output rw,vers=3
";

    #[test]
    fn finds_nfs_mount_points_including_escaped_names() {
        assert!(is_mount_point(MOUNTINFO, Path::new("/srv/hlsmux/media")));
        assert!(is_mount_point(
            MOUNTINFO,
            Path::new("/srv/hlsmux/output files")
        ));
        assert!(!is_mount_point(MOUNTINFO, Path::new("/srv/hlsmux")));
        assert!(!is_mount_point(
            MOUNTINFO,
            Path::new("/srv/hlsmux/media/incoming")
        ));
        assert_eq!(mount_points(MOUNTINFO).len(), 4);
    }

    #[test]
    fn this_machines_own_mountinfo_parses() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if !text.is_empty() {
            assert!(
                is_mount_point(&text, Path::new("/")) || is_mount_point(&text, Path::new("/proc"))
            );
        }
    }
}
