//! Why a job did not finish: the job's own error, or an event that could
//! not be published.

use hlsmux_amqp::PublishError;

use crate::pipeline::JobError;

/// Why a job did not finish.
#[derive(Debug)]
pub enum Failure {
    Job(JobError),
    /// An event could not be published: the broker connection is in doubt,
    /// so the job goes back to the queue rather than being acked unreported.
    Broker(PublishError),
}

/// Every job error becomes a failure here, once: an I/O error the volume
/// caused (no room, read-only, I/O error, stale handle) is the volume's
/// fault, not the job's.
impl From<JobError> for Failure {
    fn from(error: JobError) -> Self {
        Failure::Job(error.blame_storage())
    }
}

impl From<PublishError> for Failure {
    fn from(error: PublishError) -> Self {
        Failure::Broker(error)
    }
}
