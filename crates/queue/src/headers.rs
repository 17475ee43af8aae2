//! The `x-herald-*` message headers (contract v1) and helpers to read them from deliveries.

use std::collections::BTreeMap;

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Set by the producer on every job: the body's schema version (long, currently 1).
pub const SCHEMA: &str = "x-herald-schema";
/// On retry copies: how many attempts have failed so far (long, >= 1).
pub const ATTEMPT: &str = "x-herald-attempt";
/// On retry copies: why the last attempt failed (string, at most [`MAX_ERROR_CHARS`] chars).
pub const LAST_ERROR: &str = "x-herald-last-error";
/// On retry and dead copies: the routing key the job was first published with (string).
/// Retried messages come back with routing key `herald.email`, so read it with
/// [`original_routing_key`].
pub const ROUTING_KEY: &str = "x-herald-routing-key";
/// On dead letters: the machine-readable reason, e.g. `invalid_job` (string).
pub const REASON: &str = "x-herald-reason";
/// On dead letters: a sentence for the operator (string, at most [`MAX_ERROR_CHARS`] chars).
pub const ERROR: &str = "x-herald-error";
/// On dead letters: how many attempts were made (long).
pub const ATTEMPTS: &str = "x-herald-attempts";
/// On dead letters: when the message was dead-lettered, in unix seconds (long long).
pub const DEAD_AT: &str = "x-herald-dead-at";

/// The longest error text a header carries; longer texts are cut and end with `…`.
pub const MAX_ERROR_CHARS: usize = 500;

/// The number of failed attempts recorded on a delivery: the `x-herald-attempt` header, or 0
/// when it is absent, negative or not a number.
pub fn failed_attempts(props: &BasicProperties) -> u32 {
    let Some(value) = header(props, ATTEMPT) else {
        return 0;
    };
    let n: Option<i128> = match value {
        AMQPValue::ShortShortInt(n) => Some((*n).into()),
        AMQPValue::ShortShortUInt(n) => Some((*n).into()),
        AMQPValue::ShortInt(n) => Some((*n).into()),
        AMQPValue::ShortUInt(n) => Some((*n).into()),
        AMQPValue::LongInt(n) => Some((*n).into()),
        AMQPValue::LongUInt(n) => Some((*n).into()),
        AMQPValue::LongLongInt(n) => Some((*n).into()),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// The routing key the job was published with: the `x-herald-routing-key` header when the
/// delivery is a retry, else the delivery's own routing key.
pub fn original_routing_key(delivery: &Delivery) -> String {
    header_string(&delivery.properties, ROUTING_KEY)
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| delivery.routing_key.to_string())
}

/// A header as text: strings as they are (lossy UTF-8), numbers, booleans and timestamps
/// formatted; `None` when absent or a table, array, float or byte array.
pub fn header_string(props: &BasicProperties, name: &str) -> Option<String> {
    match header(props, name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        AMQPValue::ShortShortInt(n) => Some(n.to_string()),
        AMQPValue::ShortShortUInt(n) => Some(n.to_string()),
        AMQPValue::ShortInt(n) => Some(n.to_string()),
        AMQPValue::ShortUInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        AMQPValue::LongUInt(n) => Some(n.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::Timestamp(n) => Some(n.to_string()),
        _ => None,
    }
}

fn header<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(name)
}

/// Cuts `text` to [`MAX_ERROR_CHARS`] characters, ending with `…` when something was cut.
pub(crate) fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_ERROR_CHARS - 1).collect();
    cut.push('…');
    cut
}

pub(crate) fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// The headers of `props` (empty when none), without the broker's per-queue redelivery counter,
/// which must not travel into a copy.
pub(crate) fn copied_headers(props: &BasicProperties) -> FieldTable {
    let kept: BTreeMap<ShortString, AMQPValue> = props
        .headers()
        .iter()
        .flat_map(|headers| headers.inner())
        .filter(|(name, _)| name.as_str() != "x-delivery-count")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    FieldTable::from(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: AMQPValue) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(name.into(), value);
        BasicProperties::default().with_headers(headers)
    }

    #[test]
    fn failed_attempts_reads_any_integer_and_defaults_to_zero() {
        assert_eq!(failed_attempts(&BasicProperties::default()), 0);
        assert_eq!(failed_attempts(&with(ATTEMPT, AMQPValue::LongInt(3))), 3);
        assert_eq!(
            failed_attempts(&with(ATTEMPT, AMQPValue::LongLongInt(4))),
            4
        );
        assert_eq!(
            failed_attempts(&with(ATTEMPT, AMQPValue::ShortShortUInt(5))),
            5
        );
        assert_eq!(failed_attempts(&with(ATTEMPT, long_string(" 6 "))), 6);
        assert_eq!(failed_attempts(&with(ATTEMPT, AMQPValue::LongInt(-1))), 0);
        assert_eq!(failed_attempts(&with(ATTEMPT, long_string("many"))), 0);
        assert_eq!(failed_attempts(&with(ATTEMPT, AMQPValue::Boolean(true))), 0);
        assert_eq!(
            failed_attempts(&with(ATTEMPT, AMQPValue::LongLongInt(1 << 40))),
            0
        );
    }

    #[test]
    fn header_string_formats_strings_and_numbers() {
        assert_eq!(
            header_string(&with(REASON, long_string("x")), REASON).as_deref(),
            Some("x")
        );
        assert_eq!(
            header_string(&with(ATTEMPTS, AMQPValue::LongInt(2)), ATTEMPTS).as_deref(),
            Some("2")
        );
        assert_eq!(header_string(&BasicProperties::default(), REASON), None);
    }

    #[test]
    fn original_routing_key_prefers_the_header() {
        let mut delivery = Delivery::mock(
            1,
            "herald.requeue".into(),
            "herald.email".into(),
            false,
            vec![],
        );
        assert_eq!(original_routing_key(&delivery), "herald.email");
        delivery.properties = with(ROUTING_KEY, long_string("email.welcome"));
        assert_eq!(original_routing_key(&delivery), "email.welcome");
    }

    #[test]
    fn truncate_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(
            truncate(&"a".repeat(MAX_ERROR_CHARS)).len(),
            MAX_ERROR_CHARS
        );
    }

    #[test]
    fn copies_drop_the_broker_redelivery_counter() {
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongInt(2));
        headers.insert(SCHEMA.into(), AMQPValue::LongInt(1));
        let copied = copied_headers(&BasicProperties::default().with_headers(headers));
        assert!(!copied.contains_key("x-delivery-count"));
        assert!(copied.contains_key(SCHEMA));
    }
}
