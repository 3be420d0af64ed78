//! The tidy request: move a finished job's original input out of the media
//! root into `originals/`, once its delay has passed. The delay is the
//! message's time-to-live in a per-muxer wait queue, which dead-letters it
//! into that muxer's tidy queue: it survives worker restarts with no store
//! of its own.

use serde::{Deserialize, Serialize};

use crate::{JobId, RelativePath, SCHEMA_VERSION};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TidyRequest {
    pub schema: u32,
    pub job_id: JobId,
    /// The original input, relative to the media root.
    pub input: RelativePath,
    /// The job's output, relative to the output root: the input is only
    /// moved if this output is complete and made by this job.
    pub output: RelativePath,
}

impl TidyRequest {
    pub fn new(job_id: JobId, input: RelativePath, output: RelativePath) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            job_id,
            input,
            output,
        }
    }
}
