//! Late acknowledgements: a receiver that answered a delivery 202 (it
//! takes the event in, and confirms once it has acted on it) acknowledges
//! it with `POST /v1/webhooks/{delivery_id}/ack`, with the token that asked
//! for the callback. Only the delivery awaiting acknowledgement can be
//! acknowledged, once: the same acknowledgement again (a replay) is
//! refused as `ack_replayed`, one for an earlier attempt's delivery (given
//! up waiting for, and sent again) as `ack_stale`.

use hlsmux_protocol::JobId;
use hlsmux_submitter::broker::Broker;
use hyper::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Record, Webhooks, write};
use crate::api_error::ApiError;
use crate::tokens::Caller;

impl Webhooks {
    /// Acknowledges `delivery`, which `caller`'s callback is awaiting.
    pub async fn acknowledge(
        &self,
        broker: &Broker,
        caller: &Caller,
        delivery: Uuid,
    ) -> Result<Value, ApiError> {
        let job = self.awaiting_job(caller, delivery)?;
        let record = Record::Acknowledged {
            job_id: job,
            delivery_id: delivery,
            at: OffsetDateTime::now_utc(),
        };
        write(broker, &record).await?;
        self.apply(record);
        Ok(json!({ "job_id": job, "delivery_id": delivery, "state": "delivered" }))
    }

    /// The job whose callback awaits `delivery`, or why it cannot be
    /// acknowledged.
    fn awaiting_job(&self, caller: &Caller, delivery: Uuid) -> Result<JobId, ApiError> {
        let callbacks = self.callbacks.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = delivery.to_string();
        let found = callbacks.iter().find(|(_, callback)| {
            callback
                .attempts
                .iter()
                .any(|attempt| attempt["delivery_id"] == wanted.as_str())
        });
        let Some((job, callback)) = found else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_delivery",
                format!("no webhook delivery {delivery} was sent"),
            ));
        };
        if callback.token != caller.name {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "delivery {delivery} belongs to another token's callback; acknowledge with \
                     the token that asked for it"
                ),
            ));
        }
        if callback.awaiting == Some(delivery) {
            return Ok(*job);
        }
        let acknowledged = callback.attempts.iter().any(|attempt| {
            attempt["delivery_id"] == wanted.as_str() && attempt["acknowledged"] == true
        });
        Err(if acknowledged {
            ApiError::new(
                StatusCode::CONFLICT,
                "ack_replayed",
                format!("delivery {delivery} was acknowledged already"),
            )
        } else {
            ApiError::new(
                StatusCode::CONFLICT,
                "ack_stale",
                format!(
                    "delivery {delivery} is not awaiting acknowledgement (the callback is {}): \
                     acknowledge the latest delivery",
                    callback.state
                ),
            )
        })
    }
}
