//! The rules of outgoing messages, free of storage and transport: which
//! templates exist and what they need, what a recipient and an idempotency
//! key are, the states a message goes through and when a failed delivery is
//! tried again.

pub mod backoff;
pub mod message;
pub mod recipient;
pub mod template;

pub use backoff::Backoff;
pub use message::{IdempotencyKey, Message, MessageState};
pub use recipient::Recipient;
pub use template::{Template, Variable, VariableKind};
