//! The rules of outgoing messages, free of storage and transport: which
//! templates exist and what they need, what an idempotency key is (a
//! recipient is the mesh's one [`Email`]), the states a message goes through
//! and when a failed delivery is tried again.

pub mod message;
pub mod template;

pub use message::{IdempotencyKey, Message, MessageState};
pub use platform::{backoff::Backoff, email::Email};
pub use template::{Template, Variable, VariableKind};
