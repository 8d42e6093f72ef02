//! Where restore rows go: psql-runnable SQL scripts ([`sql`]) and Parquet files ([`parquet`]),
//! the same rows in two encodings.

pub mod parquet;
pub mod sql;
