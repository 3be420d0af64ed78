//! Canaries: files outside the roots that a hostile message names. A FIFO
//! canary shows whether anything opened it, since an open for reading
//! blocks until a writer comes (and an open for writing only succeeds
//! while a reader holds it).

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

/// Makes a FIFO canary at `path`.
pub fn fifo(path: &Path) {
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).expect("canary FIFO");
}

/// Whether any process holds the FIFO open for reading right now.
pub fn fifo_has_reader(fifo: &Path) -> bool {
    match open(fifo, OFlag::O_WRONLY | OFlag::O_NONBLOCK, Mode::empty()) {
        Ok(_) => true,
        Err(Errno::ENXIO) => false,
        Err(error) => panic!("canary: {error}"),
    }
}
