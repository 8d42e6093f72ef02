//! pgsalvage: an exact data-integrity diff and recovery engine for PostgreSQL.
//!
//! The crate reads like the data flow of a comparison:
//!
//! ```text
//!  settings ─► source ─► key ranges ─► row stream ─► canonical rows + blake3 ─► checksum tree ─► compare ─► classify ─► report
//!  (what to    (connect,  (one plan for  (binary COPY,  (rayon; typed bytes,     (bucketed       (merge by   (missing,     (human,
//!   compare)    snapshot,  all sources,   ORDER BY key,  explicit NULLs)          leaves, root)    key)        extra,        JSON, CSV)
//!               catalog)   half-open)     bounded)                                                            divergent)
//! ```
//!
//! - [`settings`]: the resolved description of a run; [`shape`]: what a table is.
//! - [`source`]: connections (libpq-style strings, TLS), exported snapshots, catalogs, key samples.
//! - [`key`]: order-preserving key encoding, value rendering, half-open range planning.
//! - [`rows`]: binary COPY frames into byte-bounded batches.
//! - [`hash`]: the canonical typed row encoding and its blake3 digests, on rayon.
//! - [`tree`]: the additive checksum tree, and the content-defined leaves baselines store.
//! - [`baseline`]: checksum baselines on disk (manifest + Parquet), taken and compared.
//! - [`compare`]: schema reconciliation and the N-way merge by key.
//! - [`classify`]: keys → findings.
//! - [`pipeline`]: the conductor wiring the stages with bounded channels and per-source workers.
//! - [`report`]: the JSON report (documented schema) and the human summary.
//! - [`progress`]: the observer trait the binary draws bars with.
//! - [`incident`]: `status`, the read-only incident view (migration tables, locks, replication).
//! - [`check`]: integrity rules on the target (NOT VALID constraints, orphans, sequences, drift)
//!   and the fix-ups `recover` writes for them.
//! - [`cluster`]: throwaway local PostgreSQL clusters for the demo and the tests.
//!
//! The pure stages (key, rows, hash, tree, compare, classify) do no I/O and are tested without a
//! server; `pipeline` and `source` are where the sockets are.

pub mod apply;
pub mod baseline;
pub mod check;
pub mod classify;
pub mod cli;
pub mod cluster;
pub mod compare;
pub mod error;
pub mod hash;
pub mod incident;
pub mod key;
pub mod pipeline;
pub mod progress;
pub mod recover;
pub mod report;
pub mod rows;
pub mod settings;
pub mod shape;
pub mod sink;
pub mod source;
pub mod tree;

pub use error::{Error, ErrorKind, Result};
