//! Carries a trace across RabbitMQ: the W3C trace context of the current
//! span goes into a message's AMQP headers, and comes out on the other side
//! as the parent of the consumer's spans.

use std::collections::HashMap;

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context of `span` as AMQP headers (empty when not tracing).
pub fn inject_trace_context(span: &tracing::Span) -> FieldTable {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    let mut headers = FieldTable::default();
    for (key, value) in carrier {
        headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
    headers
}

/// The trace context carried by a message's headers, if any.
pub fn extract_trace_context(headers: Option<&FieldTable>) -> Context {
    let carrier = HeaderCarrier(
        headers
            .map(|table| {
                table
                    .into_iter()
                    .filter_map(|(key, value)| match value {
                        AMQPValue::LongString(text) => Some((
                            key.to_string(),
                            String::from_utf8_lossy(text.as_bytes()).into_owned(),
                        )),
                        AMQPValue::ShortString(text) => Some((key.to_string(), text.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    );
    TraceContextPropagator::new().extract(&carrier)
}

struct HeaderCarrier(HashMap<String, String>);

impl Extractor for HeaderCarrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn a_traceparent_header_becomes_the_parent_context() {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )),
        );
        let context = extract_trace_context(Some(&headers));
        let span = context.span();
        let span_context = span.span_context();
        assert!(span_context.is_valid() && span_context.is_remote());
        assert_eq!(
            span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn no_headers_means_no_parent() {
        let context = extract_trace_context(None);
        assert!(!context.span().span_context().is_valid());
        assert!(
            inject_trace_context(&tracing::Span::none())
                .inner()
                .is_empty()
        );
    }
}
