//! A side feature of a broker session (tidying, dead-letter notices, drain
//! commands, cancellations): its queue or stream being unavailable degrades
//! that feature, said once in the log and in `hlsmux_broker_feature_up`,
//! and never stops the consumer of jobs. Only a lost connection ends the
//! session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::broker::{BrokerError, BrokerSession};

/// The side features of a session.
#[derive(Clone, Copy, Debug)]
pub(super) enum Side {
    Tidy,
    DeadLetterNotices,
    Control,
    Cancellations,
}

impl Side {
    /// The feature's name in logs and in `hlsmux_broker_feature_up`.
    fn name(self) -> &'static str {
        match self {
            Side::Tidy => "tidy",
            Side::DeadLetterNotices => "dead_letter_notices",
            Side::Control => "control",
            Side::Cancellations => "cancellations",
        }
    }
}

/// How long a degraded side feature waits before trying again.
const RETRY: Duration = Duration::from_secs(10);

pub(super) struct SideFeature {
    pub(super) name: &'static str,
    degraded: AtomicBool,
}

impl SideFeature {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            degraded: AtomicBool::new(false),
        }
    }
}

impl Worker {
    /// Runs the side task of `side` again, on a fresh channel, whenever it
    /// fails while the connection holds; returns when the connection does
    /// not.
    pub(super) async fn keep_side_feature(
        &self,
        side: Side,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> BrokerError {
        let name = side.name();
        let feature = SideFeature::new(name);
        loop {
            let error = match side {
                Side::Tidy => self.tidy_originals(session, &feature, shutdown).await,
                Side::DeadLetterNotices => self.report_dead_letters(session, &feature).await,
                Side::Control => self.follow_control(session, &feature).await,
                Side::Cancellations => self.follow_cancellations(session, &feature).await,
            };
            if !session.is_connected() {
                return error;
            }
            self.metrics.broker_feature(name, false);
            if !feature.degraded.swap(true, Ordering::Relaxed) {
                warn!(feature = name, %error, retry_every = ?RETRY, "a side feature's queue is unavailable; jobs go on without it");
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Called by a side task once its consumer is set up.
    pub(super) fn side_feature_ready(&self, feature: &SideFeature) {
        self.metrics.broker_feature(feature.name, true);
        if feature.degraded.swap(false, Ordering::Relaxed) {
            info!(feature = feature.name, "a side feature serves again");
        }
    }
}
