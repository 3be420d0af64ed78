//! Remote control of a muxer's workers: `hlsmux drain N` / `resume N`.
//!
//! The latest command for a muxer is the only message in that muxer's
//! control queue (a classic queue of length 1 that drops the older head),
//! so it is a durable setting: a worker that starts later, or reconnects,
//! reads it. Workers peek at it (get, then requeue) and never consume it.

use serde::{Deserialize, Serialize};

use crate::{MuxerId, SCHEMA_VERSION};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlCommand {
    pub schema: u32,
    pub muxer_id: MuxerId,
    /// True: finish the job in hand, then take no more. False: serve.
    pub drain: bool,
    /// Who asked (user and host), for the worker's log.
    pub by: String,
}

impl ControlCommand {
    pub fn new(muxer_id: MuxerId, drain: bool, by: String) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            muxer_id,
            drain,
            by,
        }
    }
}
