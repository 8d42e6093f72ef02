//! Where restore rows go: psql-runnable SQL scripts ([`sql`]); Parquet files follow.

pub mod sql;
