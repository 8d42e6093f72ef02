//! Checksum baselines: a portable, self-checking record of a database's rows, taken from one
//! snapshot and compared later against a database or another baseline.
//!
//! A baseline is what the checksum side of a verify produces for one source, kept on disk: per
//! table the schema, the content-defined leaves of `tree::leaves` (key span, count, additive
//! fingerprint) and, with `--rows`, the `(key, row digest)` of every row. Because leaves start at
//! keys chosen by their hash, a baseline lines up with the same table after any inserts and
//! deletes, and a comparison touches only the spans that changed. Nothing is installed on the
//! source: it is read like any verify source, in one exported snapshot (a hot standby works).
//!
//! # Layout (format `pgsalvage.baseline/2`)
//! ```text
//! DIR/manifest.json                      the manifest below
//! DIR/leaves/NNNN_<table>.parquet        per table: one row per leaf, in key order
//!     anchor_order_key binary (null for the head leaf), anchor_key utf8 (JSON array of the exact
//!     key values), anchor_key_fields binary (the key's binary COPY fields, each with an i32
//!     length), rows uint64, sum fixed_size_binary(32) (the leaf's 256-bit sum, little-endian)
//! DIR/rows/NNNN_<table>/PPPPP.parquet    with --rows: per key range, one row per table row
//!     order_key binary, key utf8 (JSON array), digest fixed_size_binary(32) (blake3 of the
//!     padded canonical row, `hash::digest::row_digest`)
//! ```
//! The manifest (JSON) holds the tool and format version, the source's server version, WAL
//! position and snapshot time, per table its shape, the digested columns, the key, a schema
//! fingerprint, the row count, the root (blake3 of count and sum), the leaf size, and the row
//! parts with their key ranges; then the size and blake3 of every data file, and a checksum of
//! the manifest itself. A baseline is written into a hidden staging directory and renamed into
//! place once complete, so a crash never leaves a directory that looks like a baseline. Loading
//! checks the format version, the manifest checksum and every file's size and digest before
//! anything is compared: a flipped byte, a truncated or missing file, or a newer format is
//! refused with a message naming it.

pub mod capture;
pub mod compare;
pub mod epochs;
pub mod files;
pub mod manifest;
pub mod sharded;
pub mod take;

pub use manifest::{Manifest, TableEntry};
