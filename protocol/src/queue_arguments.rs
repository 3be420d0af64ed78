//! The `x-` arguments a queue is declared with, as plain data: the broker
//! crate turns them into an AMQP field table, `hlsmux-deploy` into the
//! JSON of a definitions file, so both always say the same.

use serde::Serialize;

/// One argument's value. RabbitMQ's queue arguments are text or integers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ArgumentValue {
    Text(String),
    Integer(i64),
}

/// A queue's arguments, in the order they were added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueArguments(Vec<(&'static str, ArgumentValue)>);

impl QueueArguments {
    /// A replicated quorum queue.
    pub fn quorum() -> Self {
        Self::default().text("x-queue-type", "quorum")
    }

    /// A RabbitMQ stream.
    pub fn stream() -> Self {
        Self::default().text("x-queue-type", "stream")
    }

    /// A stream kept `max_age`, in small segments: retention drops whole
    /// segments, so a small one lets old messages go.
    pub fn small_stream(max_age: &str) -> Self {
        Self::stream().text("x-max-age", max_age).integer(
            "x-stream-max-segment-size-bytes",
            crate::topology::SMALL_STREAM_SEGMENT_BYTES,
        )
    }

    pub fn text(mut self, key: &'static str, value: &str) -> Self {
        self.0.push((key, ArgumentValue::Text(value.to_owned())));
        self
    }

    pub fn integer(mut self, key: &'static str, value: i64) -> Self {
        self.0.push((key, ArgumentValue::Integer(value)));
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ArgumentValue)> {
        self.0.iter().map(|(key, value)| (*key, value))
    }

    pub fn get(&self, key: &str) -> Option<&ArgumentValue> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl Serialize for QueueArguments {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialise_as_a_definitions_file_writes_them() {
        let arguments = QueueArguments::quorum().integer("x-delivery-limit", 5);
        assert_eq!(
            serde_json::to_string(&arguments).expect("serialises"),
            r#"{"x-queue-type":"quorum","x-delivery-limit":5}"#
        );
    }
}
