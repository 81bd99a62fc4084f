//! The rules of license keys, free of storage and transport: the key format,
//! a key's status at a given moment, and which action each status allows.

pub mod license;

pub use license::{
    Access, Action, Customer, DisabledReason, KeyStatus, KeyType, License, REACTIVATED_TRIAL_DAYS, ReadKind,
};
pub use platform::email::Email;
pub use platform::license_key::LicenseKey;
