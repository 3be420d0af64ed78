//! The one place that decides what happens to a delivered message, on any
//! of the worker's queues: acknowledge it, dead-letter it, or give it back.
//!
//! Callers say what happened (an [`Ending`]); the table in
//! [`Ending::disposition`] says what the broker is told. A message whose
//! outcome had to be reported is settled only once the report is
//! confirmed ([`report_then_settle`]): an unreported ending goes back to
//! its queue, so that the next delivery reports it.

use hlsmux_protocol::{JobId, JobState};
use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use tracing::warn;

use crate::broker::Publisher;
use crate::health::quarantine::Evidence;
use crate::pipeline::{JobError, Retry};

/// What the broker is told about a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Finished with: the broker forgets it.
    Ack,
    /// Failed for good: rejected to the dead-letter queue, where it can be
    /// inspected or retried.
    DeadLetter,
    /// Not finished here and now: back to its queue.
    Requeue,
}

/// How a delivery ended, in the words of the queue it came from.
#[derive(Debug)]
pub enum Ending<'a> {
    /// Job: the output is published and its `done` confirmed, now or by an
    /// earlier delivery.
    JobDone,
    /// Job: it ended with this error, and the event saying so (`failed`,
    /// or `requeued` for the worker's own trouble) went out.
    JobFailed(&'a JobError),
    /// Job: the message is not a job (its `failed` event went out where
    /// it had a job ID to report against).
    NotAJob,
    /// Job: the worker was out of service as it arrived (gate closed, or
    /// the consumer was being cancelled): it is another worker's to take.
    NotInService,
    /// Job or notice: an event the outcome depends on could not be
    /// published, so the delivery must come again to report it.
    Unreported,
    /// Tidy: the original was moved, was already gone, or stays because
    /// its output is not complete.
    TidyFinished,
    /// Tidy: moving the original failed for a reason that may pass.
    TidyBlocked,
    /// Tidy: the request does not parse.
    TidyUnreadable,
    /// Tidy: the move cannot succeed, now or later (the tree is in the
    /// way, or it failed every attempt).
    TidyImpossible,
    /// Dead-letter notice: reported, or not one the worker reports.
    NoticeHandled,
}

impl Ending<'_> {
    /// The table.
    pub fn disposition(&self) -> Disposition {
        match self {
            Ending::JobDone | Ending::TidyFinished | Ending::NoticeHandled => Disposition::Ack,
            // Whoever cancelled it does not want it retried from the
            // dead-letter queue.
            Ending::JobFailed(JobError::Cancelled { .. }) => Disposition::Ack,
            Ending::JobFailed(error) => match error.retry() {
                Retry::Permanent => Disposition::DeadLetter,
                Retry::Transient => Disposition::Requeue,
            },
            Ending::NotAJob | Ending::TidyUnreadable | Ending::TidyImpossible => {
                Disposition::DeadLetter
            }
            Ending::NotInService | Ending::Unreported | Ending::TidyBlocked => Disposition::Requeue,
        }
    }
}

impl Disposition {
    /// Tells the broker. An error here means the channel is gone; the broker
    /// then requeues the message by itself, so the caller only logs it.
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

/// How a delivery is to be settled, and what it says about the worker.
#[derive(Debug)]
pub struct Settled {
    pub disposition: Disposition,
    pub evidence: Evidence,
}

impl Settled {
    pub fn new(disposition: Disposition, evidence: Evidence) -> Self {
        Self {
            disposition,
            evidence,
        }
    }
}

/// Whether a report went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    Yes,
    /// The broker did not confirm it; the delivery goes back to report it.
    No,
}

/// Publishes `state` for `job_id`, then settles as `ending` says; when the
/// event is not confirmed, settles as [`Ending::Unreported`] instead.
pub async fn report_then_settle(
    events: &Publisher,
    job_id: JobId,
    state: JobState,
    ending: Ending<'_>,
) -> (Disposition, Reported) {
    match events.publish(job_id, state).await {
        Ok(()) => (ending.disposition(), Reported::Yes),
        Err(error) => {
            warn!(%job_id, %error, "could not report the outcome; the message goes back to its queue");
            (Ending::Unreported.disposition(), Reported::No)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn failed(error: JobError) -> Disposition {
        Ending::JobFailed(&error).disposition()
    }

    #[test]
    fn a_done_job_is_acked() {
        assert_eq!(Ending::JobDone.disposition(), Disposition::Ack);
    }

    #[test]
    fn a_cancelled_job_is_acked_not_dead_lettered() {
        let cancelled = JobError::Cancelled { by: "a@b".into() };
        assert_eq!(failed(cancelled), Disposition::Ack);
    }

    #[test]
    fn a_job_at_fault_is_dead_lettered() {
        assert_eq!(
            failed(JobError::InputMissing(PathBuf::from("a"))),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn a_job_the_worker_could_not_do_is_requeued() {
        assert_eq!(failed(JobError::Interrupted), Disposition::Requeue);
        assert_eq!(
            failed(JobError::NoRandomness(getrandom::Error::UNSUPPORTED)),
            Disposition::Requeue,
            "running out of entropy is the machine's trouble, not the input's"
        );
        assert_eq!(
            failed(JobError::MediaRootUnavailable {
                path: PathBuf::from("/media"),
                source: std::io::ErrorKind::NotFound.into(),
            }),
            Disposition::Requeue
        );
    }

    #[test]
    fn a_message_that_is_not_a_job_is_dead_lettered() {
        assert_eq!(Ending::NotAJob.disposition(), Disposition::DeadLetter);
    }

    #[test]
    fn a_job_that_arrives_while_out_of_service_is_requeued() {
        assert_eq!(Ending::NotInService.disposition(), Disposition::Requeue);
    }

    #[test]
    fn an_unreported_ending_is_requeued_to_report_it() {
        assert_eq!(Ending::Unreported.disposition(), Disposition::Requeue);
    }

    #[test]
    fn a_finished_tidy_is_acked() {
        assert_eq!(Ending::TidyFinished.disposition(), Disposition::Ack);
    }

    #[test]
    fn a_blocked_tidy_is_requeued() {
        assert_eq!(Ending::TidyBlocked.disposition(), Disposition::Requeue);
    }

    #[test]
    fn an_unreadable_tidy_is_dead_lettered() {
        assert_eq!(
            Ending::TidyUnreadable.disposition(),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn an_impossible_tidy_is_dead_lettered_not_retried() {
        assert_eq!(
            Ending::TidyImpossible.disposition(),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn a_handled_notice_is_acked() {
        assert_eq!(Ending::NoticeHandled.disposition(), Disposition::Ack);
    }
}
