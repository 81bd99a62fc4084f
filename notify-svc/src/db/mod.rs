//! Storage of messages. Functions take a connection or a transaction; the
//! caller decides what commits together.

pub mod messages;
