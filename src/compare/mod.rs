//! Comparing one table across sources: first its shape ([`schema`]), then its rows ([`merge`]),
//! and for recover runs what restoring each differing key takes ([`restore`]).

pub mod merge;
pub mod restore;
pub mod schema;
