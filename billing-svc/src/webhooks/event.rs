//! What billing reads of a Stripe event; the rest is kept as sent.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// The parts of a Stripe event billing reads.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: Value,
}

impl Event {
    /// The event in `payload`, and the payload as sent (kept for replay).
    pub(super) fn parse(payload: &[u8]) -> Result<(Self, Value), Error> {
        let raw: Value =
            serde_json::from_slice(payload).map_err(|_| Error::invalid("payload", "not a Stripe event"))?;
        let event: Event =
            serde_json::from_value(raw.clone()).map_err(|_| Error::invalid("payload", "not a Stripe event"))?;
        Ok((event, raw))
    }
}

pub(super) fn string_at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(object, |value, key| value.get(key))?.as_str()
}

/// The subscription an invoice belongs to, in old and new API shapes.
pub(super) fn invoice_subscription(invoice: &Value) -> Option<&str> {
    string_at(invoice, &["subscription"])
        .or_else(|| string_at(invoice, &["parent", "subscription_details", "subscription"]))
}
