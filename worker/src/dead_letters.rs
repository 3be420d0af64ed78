//! Reports jobs that the broker dead-lettered by itself. A job whose every
//! delivery ended with its worker crashing or giving it back reaches the
//! muxer queue's delivery limit and is dead-lettered with no worker left to
//! say so; whichever worker reads its notice publishes the `failed` event.
//! Jobs a worker rejected were reported by that worker already, and a job
//! whose `done` is in the event history is never reported failed, whatever
//! a notice claims.

use hlsmux_amqp::{died_of_delivery_limit, salvage_job_id};
use hlsmux_protocol::{DELIVERY_LIMIT, FailureReason, JobRequest, JobState};
use lapin::message::Delivery;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::broker::Publisher;
use crate::job::outcome::{Disposition, Ending, Reported, report_then_settle};
use crate::metrics::{Outcome, WorkerMetrics};

/// Handles one dead-letter notice and says how to settle it.
pub async fn report(
    delivery: &Delivery,
    events: &Publisher,
    metrics: &WorkerMetrics,
) -> Disposition {
    if !died_of_delivery_limit(&delivery.properties) {
        return Ending::NoticeHandled.disposition();
    }
    let Some(job_id) = salvage_job_id(&delivery.properties, &delivery.data) else {
        warn!(
            "a message with no job ID reached the delivery limit; it stays in the dead-letter queue"
        );
        return Ending::NoticeHandled.disposition();
    };
    // A notice is a claim: anyone who can publish into the notices queue
    // can write one. A job whose `done` is in the history stays done.
    let submitted_at = JobRequest::from_json(&delivery.data)
        .map_or(OffsetDateTime::UNIX_EPOCH, |request| request.submitted_at);
    if events.done_already_published(job_id, submitted_at).await {
        warn!(%job_id, "ignoring a delivery-limit notice for a job that finished done");
        return Ending::NoticeHandled.disposition();
    }
    let failed = JobState::Failed {
        reason: FailureReason::RetriesExhausted,
        message: format!(
            "the job was delivered {DELIVERY_LIMIT} times and each attempt ended with its worker crashing or giving it back; \
             see `hlsmux dlq list`, and `hlsmux dlq retry {job_id}` once the cause is fixed"
        ),
    };
    let (disposition, reported) =
        report_then_settle(events, job_id, failed, Ending::NoticeHandled).await;
    if reported == Reported::Yes {
        info!(%job_id, "reported a job that reached its delivery limit");
        metrics.job_finished(Outcome::Failed(FailureReason::RetriesExhausted));
    }
    disposition
}
