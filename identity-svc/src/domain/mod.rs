//! The rules of accounts, free of storage and transport.

pub mod account;
pub mod lookup;
pub mod password;

pub use account::{Account, AccountEvent, DeactivationReason, EventKind};
pub use lookup::{EmailSearch, PageToken, ReadKind};
pub use password::{HashingError, Password, PasswordHasher};
pub use platform::email::Email;
