//! The side task that tells the pool what this worker is doing.

use super::Worker;
use crate::broker::{BrokerError, BrokerSession};
use crate::hardware::soc::SocSensor;
use hlsmux_protocol::Heartbeat;

impl Worker {
    /// Publishes a heartbeat every interval, and at once when the worker's
    /// state changes (so `hlsmux workers` shows a drain or a full volume
    /// as it happens), until the session fails.
    pub(super) async fn send_heartbeats(&self, session: &BrokerSession) -> BrokerError {
        let mut state = self.state.subscribe();
        loop {
            let heartbeat = self.heartbeat().await;
            if let Err(error) = session.events().publish_heartbeat(&heartbeat).await {
                return BrokerError::Publish(error);
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.broker.heartbeat_interval) => {}
                Ok(()) = state.changed() => {}
            }
        }
    }

    pub(super) async fn heartbeat(&self) -> Heartbeat {
        let soc = SocSensor::new(&self.settings.soc).read().await;
        let job = self.state.job();
        let chunk = self.state.chunk();
        Heartbeat {
            schema: hlsmux_protocol::SCHEMA_VERSION,
            muxer_id: self.settings.broker.muxer_id,
            worker: self.name.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            state: self.state.get(),
            job: job.map(|(job, _)| job).or(chunk.map(|(job, _)| job)),
            chunk: chunk.map(|(_, index)| index),
            percent: job.map(|(_, percent)| percent),
            encoder: self.encoder.clone(),
            temperature_celsius: soc.temperature_celsius,
            throttled: soc
                .throttled_flags()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            interval_seconds: self.settings.broker.heartbeat_interval.as_secs(),
            at: time::OffsetDateTime::now_utc(),
        }
    }
}
