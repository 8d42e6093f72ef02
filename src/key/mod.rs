//! Keys: their order-preserving encoding ([`encode`]), their text for SQL and JSON ([`render`]),
//! and the half-open ranges a table is cut into ([`range`]).

pub mod encode;
pub mod range;
pub mod render;
