//! Queries, one small function each, taking the caller's connection or
//! transaction so the caller owns the commit.

pub mod admin_reads;
pub mod history;
pub mod keys;
