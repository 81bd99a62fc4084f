//! Storage of accounts and their events. Functions take a connection or a
//! transaction; the caller decides what commits together.

pub mod admin_reads;
pub mod events;
pub mod outbox;
pub mod retention;
pub mod users;
