//! Comparing one table across sources: first its shape ([`schema`]), then its rows ([`merge`]).

pub mod merge;
pub mod schema;
