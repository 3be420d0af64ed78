//! The webhook log: the records of callbacks asked for, attempted,
//! acknowledged later and given up, in the pool's webhook log stream (see the module above).

use hlsmux_amqp::stream::Stamped;
use hlsmux_protocol::JobId;
use hlsmux_submitter::broker::Broker;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api_error::ApiError;

/// One record of the webhook log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A job was submitted with a callback, by the token `token`.
    Subscribed {
        job_id: JobId,
        url: String,
        token: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// One attempt to deliver it.
    Attempted {
        job_id: JobId,
        attempt: u32,
        delivery_id: Uuid,
        /// The receiver's HTTP status, if it answered.
        status: Option<u16>,
        error: Option<String>,
        acknowledged: bool,
        /// The receiver answered 202: it will acknowledge this delivery
        /// itself, later, at `POST /v1/webhooks/{delivery_id}/ack`.
        #[serde(default)]
        awaiting_ack: bool,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The receiver acknowledged a delivery it had answered 202.
    Acknowledged {
        job_id: JobId,
        delivery_id: Uuid,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// No attempt was acknowledged (or the token is gone): no more.
    GaveUp {
        job_id: JobId,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl Stamped for Record {
    fn stamped_at(&self) -> OffsetDateTime {
        match self {
            Record::Subscribed { at, .. }
            | Record::Attempted { at, .. }
            | Record::Acknowledged { at, .. }
            | Record::GaveUp { at, .. } => *at,
        }
    }
}

/// Appends `record` to the webhook log, confirmed.
pub async fn write(broker: &Broker, record: &Record) -> Result<(), ApiError> {
    let publisher = broker.publisher().await?;
    let written = broker
        .publish_command(
            &publisher,
            &broker.topology().webhook_records_exchange(),
            "",
            &Uuid::new_v4().to_string(),
            record,
        )
        .await;
    let _ = publisher.close(200, "recorded".into()).await;
    Ok(written?)
}
