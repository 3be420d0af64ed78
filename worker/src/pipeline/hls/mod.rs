//! HLS: the output's layout, and what is done to a staged output once
//! ffmpeg has written its segments, in order: master (describe what was
//! encoded), timing (read back whole by ffprobe), encrypt (when asked),
//! verify, rebase (with a base URL).
//! Playlist reading, rate
//! measurement and the key are their own modules beneath them, so the
//! stages import downward only.

pub mod encrypt;
pub mod key;
pub mod layout;
pub mod master;
pub mod playlist;
pub mod rates;
pub mod rebase;
mod rules;
pub mod timing;
pub mod verify;
