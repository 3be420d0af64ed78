//! The jobs someone cancelled (`hlsmux cancel`), as read from the pool's
//! cancellations stream, and the job in hand's stop signal when it is one
//! of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hlsmux_protocol::{CancelRequest, JobId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Known {
    /// Who cancelled each job. Every worker reads the whole stream, which
    /// keeps a week of cancellations: a few IDs, not worth evicting.
    cancelled: HashMap<JobId, String>,
    /// The work in hand, each with the token that stops it: a job, and
    /// while a coordinator waits for its chunks, a chunk it encodes.
    in_hand: Vec<(u64, JobId, CancellationToken)>,
    /// The next in-hand entry's number.
    next_entry: u64,
}

/// Shared by the stream reader and the job runner.
#[derive(Clone)]
pub struct Cancellations {
    known: Arc<Mutex<Known>>,
    /// Whether the stream has been read to its end once (it has no end
    /// marker: the reader says so when it goes quiet).
    caught_up: Arc<watch::Sender<bool>>,
}

impl Default for Cancellations {
    fn default() -> Self {
        Self {
            known: Arc::default(),
            caught_up: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl Cancellations {
    /// Says that every cancellation sent before the worker started is known.
    pub fn mark_caught_up(&self) {
        self.caught_up.send_replace(true);
    }

    /// Waits, at most `limit`, until the stream has been read to its end
    /// once, so that a job cancelled while queued is not started by a
    /// worker that has just come up. Past the limit the job starts; its
    /// cancellation, when read, still stops it.
    pub async fn caught_up(&self, limit: Duration) {
        let mut caught_up = self.caught_up.subscribe();
        let _ = tokio::time::timeout(limit, caught_up.wait_for(|done| *done)).await;
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a cancellation; stops the job in hand if it is the one.
    pub fn record(&self, request: CancelRequest) {
        let mut known = self.known();
        for (_, job, token) in &known.in_hand {
            if *job == request.job_id {
                token.cancel();
            }
        }
        known.cancelled.insert(request.job_id, request.by);
    }

    /// Who cancelled `job`, if anyone did.
    pub fn cancelled_by(&self, job: JobId) -> Option<String> {
        self.known().cancelled.get(&job).cloned()
    }

    /// The token the job in hand runs under: cancelled when `interrupt`
    /// is (the worker is stopping) or when a cancellation of `job` comes.
    /// The job stops being watched when the guard is dropped.
    pub fn watch(&self, job: JobId, interrupt: &CancellationToken) -> InHand {
        let token = interrupt.child_token();
        let mut known = self.known();
        if known.cancelled.contains_key(&job) {
            token.cancel();
        }
        let entry = known.next_entry;
        known.next_entry += 1;
        known.in_hand.push((entry, job, token.clone()));
        InHand {
            cancellations: self.clone(),
            token,
            entry,
        }
    }
}

/// The job in hand's stop signal, while it runs.
pub struct InHand {
    cancellations: Cancellations,
    token: CancellationToken,
    entry: u64,
}

impl InHand {
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        let entry = self.entry;
        self.cancellations
            .known()
            .in_hand
            .retain(|(held, _, _)| *held != entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancel(job: JobId) -> CancelRequest {
        CancelRequest::new(job, "alice@laptop".into())
    }

    #[test]
    fn a_cancellation_stops_only_the_job_it_names() {
        let cancellations = Cancellations::default();
        let interrupt = CancellationToken::new();
        let (job, other) = (JobId::generate(), JobId::generate());
        let in_hand = cancellations.watch(job, &interrupt);
        cancellations.record(cancel(other));
        assert!(!in_hand.token().is_cancelled());
        cancellations.record(cancel(job));
        assert!(in_hand.token().is_cancelled());
        assert!(!interrupt.is_cancelled(), "the worker itself goes on");
        assert_eq!(
            cancellations.cancelled_by(job).as_deref(),
            Some("alice@laptop")
        );
    }

    #[test]
    fn a_job_cancelled_before_it_is_taken_starts_cancelled() {
        let cancellations = Cancellations::default();
        let job = JobId::generate();
        cancellations.record(cancel(job));
        let in_hand = cancellations.watch(job, &CancellationToken::new());
        assert!(in_hand.token().is_cancelled());
    }

    #[test]
    fn stopping_the_worker_stops_the_job_in_hand() {
        let cancellations = Cancellations::default();
        let interrupt = CancellationToken::new();
        let in_hand = cancellations.watch(JobId::generate(), &interrupt);
        interrupt.cancel();
        assert!(in_hand.token().is_cancelled());
    }

    #[tokio::test]
    async fn a_job_waits_for_the_stream_to_be_read_and_no_longer() {
        let cancellations = Cancellations::default();
        let limit = Duration::from_millis(50);
        let started = std::time::Instant::now();
        cancellations.caught_up(limit).await;
        assert!(
            started.elapsed() >= limit,
            "waits while the stream is unread"
        );
        cancellations.mark_caught_up();
        let started = std::time::Instant::now();
        cancellations.caught_up(Duration::from_secs(60)).await;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "then not at all"
        );
    }

    #[test]
    fn a_finished_job_is_no_longer_watched() {
        let cancellations = Cancellations::default();
        let job = JobId::generate();
        let token = {
            let in_hand = cancellations.watch(job, &CancellationToken::new());
            in_hand.token().clone()
        };
        cancellations.record(cancel(job));
        assert!(!token.is_cancelled());
    }
}
