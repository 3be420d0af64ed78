//! The outcomes (`done`, `failed`) this worker published lately, kept so
//! they can be looked for in the event history again a little later. A
//! RabbitMQ 3.10 stream can lose a message it confirmed, and that was
//! visible, when its leader moves in a rolling restart
//! (rabbitmq-server#9457): the read-back right after publishing cannot see
//! a loss that comes after it. The ledger outlives broker sessions.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hlsmux_protocol::StatusEvent;

/// An outcome is looked for again once it is this old...
pub const AUDIT_AFTER: Duration = Duration::from_secs(10);
/// ...and every this often...
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(20);
/// ...until it is this old: long past any leader change its publish
/// could have met.
pub const AUDIT_WINDOW: Duration = Duration::from_secs(300);

/// Recently published outcomes, oldest first.
#[derive(Debug, Default)]
pub struct OutcomeLedger {
    entries: Mutex<Vec<(StatusEvent, Instant)>>,
}

impl OutcomeLedger {
    /// Notes an outcome the history held right after it was published.
    pub fn record(&self, event: StatusEvent) {
        self.record_at(event, Instant::now());
    }

    fn record_at(&self, event: StatusEvent, at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push((event, at));
    }

    /// The outcomes due a look at `now`; those past the window are dropped.
    pub fn due(&self, now: Instant) -> Vec<StatusEvent> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(_, at)| now.duration_since(*at) < AUDIT_WINDOW);
        entries
            .iter()
            .filter(|(_, at)| now.duration_since(*at) >= AUDIT_AFTER)
            .map(|(event, _)| event.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `seen` in the history is `published`: the same job, state,
/// worker and time.
pub fn same_event(seen: &StatusEvent, published: &StatusEvent) -> bool {
    seen.job_id == published.job_id
        && seen.at == published.at
        && seen.worker == published.worker
        && seen.state.event_state() == published.state.event_state()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hlsmux_protocol::{JobId, JobState, MuxerId};

    fn outcome() -> StatusEvent {
        StatusEvent::new(
            JobId::generate(),
            MuxerId::new(1).expect("valid"),
            "pi-1",
            JobState::Failed {
                reason: hlsmux_protocol::FailureReason::EncodeFailed,
                message: "x".into(),
            },
        )
    }

    #[test]
    fn outcomes_are_due_after_a_while_and_forgotten_after_the_window() {
        let ledger = OutcomeLedger::default();
        let start = Instant::now();
        let (old, fresh) = (outcome(), outcome());
        ledger.record_at(old.clone(), start);
        ledger.record_at(fresh.clone(), start + Duration::from_secs(60));
        let due = ledger.due(start + Duration::from_secs(65));
        assert_eq!(due.len(), 1, "the fresh one is not due yet");
        assert_eq!(due[0].job_id, old.job_id);
        let later = ledger.due(start + AUDIT_WINDOW + Duration::from_secs(1));
        assert_eq!(later.len(), 1, "the old one is past the window");
        assert_eq!(later[0].job_id, fresh.job_id);
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn an_event_is_the_same_only_with_the_same_job_time_worker_and_state() {
        let event = outcome();
        assert!(same_event(&event.clone(), &event));
        let other_job = StatusEvent {
            job_id: JobId::generate(),
            ..event.clone()
        };
        assert!(!same_event(&other_job, &event));
        let other_worker = StatusEvent {
            worker: "pi-2".into(),
            ..event.clone()
        };
        assert!(!same_event(&other_worker, &event));
    }
}
