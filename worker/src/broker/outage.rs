//! Best-effort publishes (progress events) during a broker outage: one log
//! line when they start failing and one when they go through again, not
//! one a second for as long as the outage lasts.

use std::time::{Duration, Instant};

/// Whether best-effort publishes are failing, and since when.
#[derive(Debug, Default)]
pub struct Outage {
    since: Option<(Instant, u64)>,
}

impl Outage {
    /// A publish failed: true for the first failure of an outage (the one
    /// to log).
    pub fn failed(&mut self) -> bool {
        match &mut self.since {
            Some((_, failures)) => {
                *failures += 1;
                false
            }
            None => {
                self.since = Some((Instant::now(), 1));
                true
            }
        }
    }

    /// A publish went through: how long the outage lasted and how many
    /// publishes it cost, if there was one.
    pub fn succeeded(&mut self) -> Option<(Duration, u64)> {
        self.since
            .take()
            .map(|(since, failures)| (since.elapsed(), failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_reported_once_when_it_starts_and_once_when_it_ends() {
        let mut outage = Outage::default();
        assert_eq!(outage.succeeded(), None, "no outage, nothing to say");
        assert!(outage.failed(), "the first failure is said");
        assert!(!outage.failed() && !outage.failed(), "the rest are not");
        let (_, failures) = outage.succeeded().expect("the end is said");
        assert_eq!(failures, 3);
        assert_eq!(outage.succeeded(), None);
        assert!(outage.failed(), "a new outage is said again");
    }
}
