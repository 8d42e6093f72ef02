//! Restore rows as Parquet: the same rows the SQL scripts of `recovery::script` carry, with an
//! Arrow schema derived from the PostgreSQL types (and the baseline files' row encoding).

pub mod parquet;
