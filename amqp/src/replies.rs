//! What RabbitMQ's refusals mean, read from lapin's errors by their code.

use lapin::ErrorKind;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};

/// Whether RabbitMQ answered 404: no such queue or exchange.
pub fn is_not_found(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::NOTFOUND)
}

/// Whether RabbitMQ answered 406: a declaration differs from what exists.
pub fn is_precondition_failed(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::PRECONDITIONFAILED)
}

/// Whether RabbitMQ answered 403: this user may not do that.
pub fn is_access_refused(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::ACCESSREFUSED)
}

fn is_soft_error(error: &lapin::Error, soft: AMQPSoftError) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp)
        if *amqp.kind() == AMQPErrorKind::Soft(soft))
}
