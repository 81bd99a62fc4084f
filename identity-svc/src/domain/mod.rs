//! The rules of accounts, free of storage and transport.

pub mod account;
pub mod email;
pub mod password;

pub use account::{Account, AccountEvent, DeactivationReason, EventKind};
pub use email::Email;
pub use password::{Password, PasswordHasher};
