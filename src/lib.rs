//! pgsalvage: an exact data-integrity diff and recovery engine for PostgreSQL.
//!
//! The crate reads like the data flow of a comparison. No two of these folders import each other,
//! directly or through others (`tests/it/layers.rs` fails on such a cycle):
//!
//! ```text
//!  settings ─► source ─► plan ─► key ranges ─► rows ─► value + hash ─► tree ─► compare ─► classify ─► report
//!  (what to    (connect,  (reconcile (sampled,    (binary  (canonical     (additive (N-way      (lost,      (human,
//!   compare)    snapshot,  shapes,    half-open)   COPY,    typed bytes,   leaves,   merge by    damaged,    JSON, CSV)
//!               catalog)   key)                    batches) blake3)        roots)    key)        new, …)
//!
//!  conductors:  pipeline (verify) ─► baseline (take, compare)      recover ─► recovery dir ─► apply
//!               shard (plan → hold → shards → merge)
//!               verify (live sources or baselines)                  check, incident (status)
//! ```
//!
//! Vocabulary every stage shares:
//! - [`error`]: errors with table/source/range context; [`shape`]: what a table is; [`role`]:
//!   base, replica, target; [`settings`]: the resolved description of each command's run;
//!   [`progress`]: the observer trait the binary draws bars with; [`log`]: `-v`, and the phases
//!   the reports time.
//! - [`value`]: PostgreSQL's binary values, read; [`sql`]: SQL text from identifiers;
//!   [`staging`]: files written beside and renamed into place; [`pool`]: the one tokio → rayon
//!   (and blocking-I/O) crossing, used by the conductors only.
//!
//! The stages, in flow order:
//! - [`source`]: connections (libpq-style strings, TLS), exported snapshots, catalogs, key samples.
//! - [`plan`]: one table across sources: key, compared columns, schema differences; its ranges.
//! - [`key`]: order-preserving key encoding, value rendering, half-open range planning.
//! - [`rows`]: binary COPY frames into byte-bounded batches.
//! - [`hash`]: the canonical typed row encoding and its blake3 digests.
//! - [`tree`]: the additive checksum tree, and the content-defined leaves baselines store.
//! - [`compare`]: the N-way merge by key, tallies, and what restoring a differing key takes.
//! - [`classify`]: keys → findings (two-way, and three-way with the backup as base).
//! - [`report`]: the JSON report (documented schema), the listing, the human summary.
//! - [`sink`]: restore rows as Parquet.
//!
//! The conductors, which wire the stages with bounded channels and own the sockets:
//! - [`pipeline`]: a verify of live sources, range by range; [`verify`]: live or baseline sides.
//! - [`baseline`]: checksum baselines on disk, taken ([`baseline::take`]) and compared.
//! - [`check`]: integrity rules on the target (NOT VALID constraints, orphans, sequences, drift).
//! - [`recover`]: a comparison → a recovery directory ([`recovery`]: plan.json, keys, scripts),
//!   with fix-ups for check's findings; [`apply`]: that directory, guarded, onto the target.
//! - [`shard`]: one comparison over many processes: `plan --shards N` (the plan file is
//!   [`plan::shards`]), `snapshot hold`, the shards (a verify or recover on the plan's ranges),
//!   and `merge` into the report and recovery one run would give.
//! - [`incident`]: `status`, the read-only incident view (migration tables, locks, replication).
//! - [`cli`]: clap flags → settings, progress bars, exit codes; [`cluster`]: throwaway local
//!   clusters for the demo and the tests.
//!
//! The pure stages (value, key, rows, hash, tree, plan, compare, classify) do no I/O and are
//! tested without a server.

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
pub mod interrupt;
pub mod key;
pub mod log;
pub mod pipeline;
pub mod plan;
pub mod pool;
pub mod progress;
pub mod recover;
pub mod recovery;
pub mod report;
pub mod role;
pub mod rows;
pub mod seal;
pub mod settings;
pub mod shape;
pub mod shard;
pub mod sink;
pub mod source;
pub mod sql;
pub mod staging;
pub mod tree;
pub mod value;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
pub use verify::verify;
