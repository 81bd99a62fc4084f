//! The rules of accounts, free of storage and transport.

pub mod account;
pub mod password;

pub use account::{Account, AccountEvent, DeactivationReason, EventKind};
pub use password::{HashingError, Password, PasswordHasher};
pub use platform::email::Email;
