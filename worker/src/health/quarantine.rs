//! Self-quarantine: a worker whose last jobs all failed for its own reasons
//! (ffmpeg crashing, stalls, storage) stops taking jobs, so that one sick
//! machine cannot take and fail the queue while healthy peers starve. It
//! takes jobs again after a cool-down and a passing self-test, or when an
//! operator restarts it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hlsmux_protocol::RequeueReason;

/// What one settled delivery says about the worker's own health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The worker did its part: the job is done, or failed for its own
    /// fault (bad input), which the worker handled as it should.
    WorkerWell,
    /// The job was given back for a reason that points at this worker.
    WorkerFault {
        reason: RequeueReason,
        detail: String,
    },
    /// Says nothing either way (shutdown, broker trouble, a bad message).
    Neutral,
}

/// Counts consecutive worker faults and holds the quarantine.
pub struct Quarantine {
    /// Faults in a row that quarantine the worker; 0 never does.
    after: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The faults since the worker last did well, oldest first.
    faults: Vec<String>,
    /// Since when, and why, the worker is quarantined.
    quarantined: Option<(Instant, String)>,
}

impl Quarantine {
    pub fn new(after: u32, cooldown: Duration) -> Self {
        Self {
            after,
            cooldown,
            state: Mutex::default(),
        }
    }

    /// Takes in one delivery's evidence. Returns the reasons when this
    /// evidence puts the worker into quarantine.
    pub fn record(&self, evidence: &Evidence) -> Option<String> {
        let mut state = self.lock();
        match evidence {
            Evidence::WorkerWell => state.faults.clear(),
            Evidence::Neutral => {}
            Evidence::WorkerFault { reason, detail } => {
                state.faults.push(format!("{reason}: {detail}"));
                let limit = usize::try_from(self.after).unwrap_or(usize::MAX);
                if self.after > 0 && state.faults.len() >= limit && state.quarantined.is_none() {
                    let reasons = format!(
                        "the last {} jobs failed for this worker's own reasons: {}",
                        state.faults.len(),
                        state.faults.join("; ")
                    );
                    state.quarantined = Some((Instant::now(), reasons.clone()));
                    return Some(reasons);
                }
            }
        }
        None
    }

    /// Why the worker is quarantined, if it is.
    pub fn reasons(&self) -> Option<String> {
        self.lock()
            .quarantined
            .as_ref()
            .map(|(_, reasons)| reasons.clone())
    }

    /// Whether the cool-down is over and a self-test should decide.
    pub fn self_test_due(&self) -> bool {
        self.lock()
            .quarantined
            .as_ref()
            .is_some_and(|(since, _)| since.elapsed() >= self.cooldown)
    }

    /// Ends the quarantine after a passing self-test.
    pub fn lift(&self) {
        let mut state = self.lock();
        state.quarantined = None;
        state.faults.clear();
    }

    /// Starts another cool-down after a failing self-test.
    pub fn extend(&self, why: &str) {
        let mut state = self.lock();
        if let Some((since, reasons)) = state.quarantined.as_mut() {
            *since = Instant::now();
            *reasons = format!("self-test failed: {why}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash() -> Evidence {
        Evidence::WorkerFault {
            reason: RequeueReason::EncoderCrashed,
            detail: "ffmpeg was killed by SIGSEGV".into(),
        }
    }

    #[test]
    fn quarantines_after_the_configured_faults_in_a_row() {
        let quarantine = Quarantine::new(3, Duration::from_secs(600));
        assert_eq!(quarantine.record(&crash()), None);
        assert_eq!(quarantine.record(&Evidence::Neutral), None);
        assert_eq!(quarantine.record(&crash()), None);
        let reasons = quarantine.record(&crash()).expect("quarantined");
        assert!(reasons.contains("last 3 jobs"), "{reasons}");
        assert!(reasons.contains("SIGSEGV"), "{reasons}");
        assert!(quarantine.reasons().is_some());
        assert!(!quarantine.self_test_due());
    }

    #[test]
    fn a_job_done_well_resets_the_count() {
        let quarantine = Quarantine::new(2, Duration::from_secs(600));
        quarantine.record(&crash());
        quarantine.record(&Evidence::WorkerWell);
        assert_eq!(quarantine.record(&crash()), None);
        assert!(quarantine.reasons().is_none());
    }

    #[test]
    fn the_self_test_is_due_after_the_cool_down_and_decides() {
        let quarantine = Quarantine::new(1, Duration::ZERO);
        quarantine.record(&crash()).expect("quarantined");
        assert!(quarantine.self_test_due());
        quarantine.extend("trial encode crashed");
        assert!(
            quarantine
                .reasons()
                .is_some_and(|r| r.contains("trial encode"))
        );
        quarantine.lift();
        assert!(quarantine.reasons().is_none());
        assert_eq!(quarantine.record(&Evidence::Neutral), None);
    }

    #[test]
    fn zero_turns_quarantine_off() {
        let quarantine = Quarantine::new(0, Duration::ZERO);
        for _ in 0..10 {
            assert_eq!(quarantine.record(&crash()), None);
        }
    }
}
