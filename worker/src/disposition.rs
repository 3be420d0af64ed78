//! The one place that decides what happens to a delivered job message:
//! acknowledge it, dead-letter it, or give it back to the queue.

use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};

use crate::pipeline::{JobError, Retry};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The job is finished (done, or cancelled, and its event confirmed).
    Ack,
    /// The job failed for good (its `failed` event confirmed): reject it
    /// to the dead-letter queue, where it can be inspected or retried.
    DeadLetter,
    /// The job could not be finished here and now: back to its queue.
    Requeue,
}

impl Disposition {
    pub fn for_error(error: &JobError) -> Self {
        match (error, error.retry()) {
            // Whoever cancelled it does not want it retried from the
            // dead-letter queue.
            (JobError::Cancelled { .. }, _) => Disposition::Ack,
            (_, Retry::Permanent) => Disposition::DeadLetter,
            (_, Retry::Transient) => Disposition::Requeue,
        }
    }

    /// Tells the broker. An error here means the channel is gone; the broker
    /// then requeues the job by itself, so the caller only logs it.
    pub async fn apply(self, acker: &Acker) -> lapin::Result<()> {
        match self {
            Disposition::Ack => acker.ack(BasicAckOptions::default()).await,
            Disposition::DeadLetter => acker.reject(BasicRejectOptions { requeue: false }).await,
            Disposition::Requeue => {
                acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
            }
        }
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn bad_jobs_are_dead_lettered_worker_trouble_is_requeued_and_cancelled_jobs_are_gone() {
        assert_eq!(
            Disposition::for_error(&JobError::InputMissing(PathBuf::from("a"))),
            Disposition::DeadLetter
        );
        assert_eq!(
            Disposition::for_error(&JobError::Interrupted),
            Disposition::Requeue
        );
        assert_eq!(
            Disposition::for_error(&JobError::Cancelled { by: "a@b".into() }),
            Disposition::Ack
        );
        assert_eq!(
            Disposition::for_error(&JobError::MediaRootUnavailable {
                path: PathBuf::from("/media"),
                detail: "gone".into()
            }),
            Disposition::Requeue
        );
    }
}
