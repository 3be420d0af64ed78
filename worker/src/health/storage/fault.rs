//! Storage faults met during a job: the errors, the worker's own and
//! ffmpeg's, that say the volume is at fault and not the job. A job that
//! meets one goes back to its queue (`storage_full` or `storage_unhealthy`)
//! instead of failing: a full NFS share must not drain every queued job
//! into the dead-letter queue as the inputs' fault.

use std::fmt;

use hlsmux_protocol::RequeueReason;
use nix::errno::Errno;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// ENOSPC, EDQUOT.
    Full,
    /// EROFS: a volume remounted read-only (ext4 does so on errors).
    ReadOnly,
    /// EIO, ESTALE (an NFS export replaced under its clients).
    Failing,
}

/// ffmpeg reports write errors with `strerror`'s words (`av_strerror`):
/// these are glibc's for the errnos above.
const FFMPEG_WORDS: [(&str, StorageFault); 5] = [
    ("No space left on device", StorageFault::Full),
    ("Disk quota exceeded", StorageFault::Full),
    ("Read-only file system", StorageFault::ReadOnly),
    ("Stale file handle", StorageFault::Failing),
    ("Input/output error", StorageFault::Failing),
];

impl StorageFault {
    pub fn of_io(error: &std::io::Error) -> Option<Self> {
        match Errno::from_raw(error.raw_os_error()?) {
            Errno::ENOSPC | Errno::EDQUOT => Some(StorageFault::Full),
            Errno::EROFS => Some(StorageFault::ReadOnly),
            Errno::EIO | Errno::ESTALE => Some(StorageFault::Failing),
            _ => None,
        }
    }

    /// The fault a line of ffmpeg's error output reports, and its words.
    pub fn in_ffmpeg_line(line: &str) -> Option<(Self, &'static str)> {
        FFMPEG_WORDS
            .iter()
            .find(|(words, _)| line.contains(words))
            .map(|(words, fault)| (*fault, *words))
    }

    pub fn requeue_reason(self) -> RequeueReason {
        match self {
            StorageFault::Full => RequeueReason::StorageFull,
            StorageFault::ReadOnly | StorageFault::Failing => RequeueReason::StorageUnhealthy,
        }
    }
}

impl fmt::Display for StorageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            // Only output is written: a job's writes go to the output
            // root (and ffmpeg's log to the work dir, which is not fatal).
            StorageFault::Full => "output volume full",
            StorageFault::ReadOnly => "volume read-only",
            StorageFault::Failing => "storage failing",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_and_ffmpeg_words_name_the_fault() {
        let io = |errno: Errno| std::io::Error::from_raw_os_error(errno as i32);
        assert_eq!(
            StorageFault::of_io(&io(Errno::ENOSPC)),
            Some(StorageFault::Full)
        );
        assert_eq!(
            StorageFault::of_io(&io(Errno::EROFS)),
            Some(StorageFault::ReadOnly)
        );
        assert_eq!(
            StorageFault::of_io(&io(Errno::ESTALE)),
            Some(StorageFault::Failing)
        );
        assert_eq!(StorageFault::of_io(&io(Errno::ENOENT)), None);
        // The words are the C library's own (`strerror`, as ffmpeg prints
        // them, and as Rust's own I/O errors do) for those errnos.
        for (words, fault) in FFMPEG_WORDS {
            let errno = match words {
                "No space left on device" => Errno::ENOSPC,
                "Disk quota exceeded" => Errno::EDQUOT,
                "Read-only file system" => Errno::EROFS,
                "Stale file handle" => Errno::ESTALE,
                _ => Errno::EIO,
            };
            let said = io(errno).to_string();
            assert!(said.starts_with(words), "{said} / {words}");
            assert_eq!(StorageFault::of_io(&io(errno)), Some(fault));
        }
        let line =
            "[hls @ 0x55d] Failed to open file 'a/segment_00003.ts': No space left on device";
        assert_eq!(
            StorageFault::in_ffmpeg_line(line),
            Some((StorageFault::Full, "No space left on device"))
        );
        assert_eq!(StorageFault::in_ffmpeg_line("Invalid data found"), None);
    }
}
