//! The recovery directory: the one format `recover` writes and `apply` reads.
//!
//! ```text
//! DIR/plan.json            what was compared and what the scripts do (plan)
//! DIR/keys/<n>.jsonl       one record per differing key of table n, in key order (keys)
//! DIR/restore.sql          the restore batch, psql-runnable, one transaction (script)
//! DIR/undo.sql             its exact reverse (script)
//! DIR/rows/*.parquet       with --format parquet: the restore rows as Parquet
//! ```
//! [`plan`] holds the table restores, totals and fix-ups ([`fixups`]) and the digest sums apply
//! re-verifies against; [`keys`] writes and reads the key records; [`script`] writes the SQL
//! scripts and splits them back into steps; [`order`] puts tables in foreign-key order. Nothing
//! here connects to a database: recover fills the directory, apply checks it against a target.

pub mod fixups;
pub mod keys;
pub mod order;
pub mod plan;
pub mod script;
