//! The resolved, validated description of one run of each command; no clap types.
//!
//! `cli` turns command-line flags into these structs (resolving connection strings, parsing table
//! names), and the conductors take them as given, so the library can be driven by tests and other
//! programs without a command line. One struct per command, all here: [`VerifySettings`] (verify,
//! and the comparison inside recover), [`BaselineSettings`], [`RecoverSettings`],
//! [`ApplySettings`], [`CheckSettings`], [`StatusSettings`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::shape::TableName;
use crate::source::{ConnInfo, Role};

/// Which tables to compare.
#[derive(Clone, Debug, Default)]
pub struct TableFilter {
    /// Exactly these tables; each must exist on some source.
    pub tables: Option<Vec<TableName>>,
    /// Only tables of these schemas.
    pub schemas: Option<Vec<String>>,
}

impl TableFilter {
    pub fn accepts(&self, name: &TableName) -> bool {
        let table_ok = self.tables.as_ref().is_none_or(|t| t.contains(name));
        let schema_ok = self
            .schemas
            .as_ref()
            .is_none_or(|s| s.contains(&name.schema));
        table_ok && schema_ok
    }

    /// The filter as the flags that made it, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.tables {
            let names: Vec<String> = t.iter().map(ToString::to_string).collect();
            parts.push(format!("--tables {}", names.join(",")));
        }
        if let Some(s) = &self.schemas {
            parts.push(format!("--schema {}", s.join(",")));
        }
        match parts.is_empty() {
            true => "the whole database".into(),
            false => parts.join(" "),
        }
    }

    /// The error of a run that found no table to work on: never a clean result (issue 18).
    pub fn matched_nothing(&self, sides: &str) -> crate::error::Error {
        crate::error::Error::usage(format!(
            "no table to compare: {} matched no table on {sides}",
            self.describe()
        ))
        .with_hint("a run over zero tables is never reported clean; check the filter, and the database name in the URL (without one, libpq uses the user name)")
    }
}

pub use crate::source::throttle::LiveLimits;

/// One `verify` run.
#[derive(Clone, Debug)]
pub struct VerifySettings {
    /// The sources: base first, target last, the replica between them in a three-way run.
    pub sources: Vec<(Role, ConnInfo)>,
    pub filter: TableFilter,
    /// `--key` overrides: key columns per table.
    pub keys: HashMap<TableName, Vec<String>>,
    /// Worker sessions per source.
    pub jobs: usize,
    /// Bytes of COPY data per batch handed to the hashing pool.
    pub batch_bytes: usize,
    /// Findings kept for the JSON report; counts stay exact beyond it.
    pub max_findings: usize,
    /// `--show-values N`: the first N divergent rows of each table carry their values.
    pub show_values: usize,
    pub findings_csv: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Set for recover runs: what to restore, and where the per-key records go.
    pub restore: Option<RestoreSpec>,
    /// Sides given as baseline directories instead of databases (`--base DIR`, `--target DIR`).
    pub baselines: Vec<(Role, PathBuf)>,
    pub live: LiveLimits,
    /// `--checkpoint`: where finished ranges are recorded and resumed from (verify only).
    pub checkpoint: Option<PathBuf>,
}

/// One `baseline` run: a source read into a baseline directory.
#[derive(Clone, Debug)]
pub struct BaselineSettings {
    pub source: ConnInfo,
    pub out: PathBuf,
    /// `--rows`: also store every row's key and digest.
    pub rows: bool,
    /// `--force`: replace an existing baseline at `out`.
    pub force: bool,
    pub filter: TableFilter,
    pub keys: HashMap<TableName, Vec<String>>,
    pub jobs: usize,
    pub batch_bytes: usize,
    pub live: LiveLimits,
    /// `--max-snapshot-age`: move to a new snapshot once the current one is this old.
    pub max_snapshot_age: Option<Duration>,
}

/// What a recover run restores.
#[derive(Clone, Debug, Default)]
pub struct RestoreSpec {
    /// `--columns`: on divergent rows of these tables, restore only these columns.
    pub columns: HashMap<TableName, Vec<String>>,
    /// Keep extra rows (listed, not deleted): recover's default with two sources, unless
    /// `--delete-extra`.
    pub no_delete: bool,
    /// `--new-on-target delete`: three-way rows only the target holds are deleted.
    pub delete_new_on_target: bool,
    /// `--changed-after`: per table, a predicate on the target's rows marking legitimate writes
    /// after the replica; those rows are kept, never overwritten.
    pub changed_after: HashMap<TableName, String>,
    /// `--on-conflict`: what to do with three-way conflicts.
    pub on_conflict: crate::classify::ConflictPolicy,
    /// Directory receiving `keys/<table index>.jsonl`, one record per differing key.
    pub keys_dir: PathBuf,
    /// `--orphans`: rows referencing parents no source has.
    pub orphans: OrphanPolicy,
}

/// What recover does with orphans nothing restores (rows whose parent no source has).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// Listed, with both choices written commented out.
    #[default]
    Keep,
    /// Deleted (undo puts them back as they were).
    Delete,
    /// Their reference set NULL where its columns allow it (undo sets it back).
    SetNull,
}

impl VerifySettings {
    /// Defaults for the given sources (used by tests and the demo).
    pub fn new(sources: Vec<(Role, ConnInfo)>) -> Self {
        VerifySettings {
            sources,
            filter: TableFilter::default(),
            keys: HashMap::new(),
            jobs: 4,
            batch_bytes: 1024 * 1024,
            max_findings: 10_000,
            show_values: 0,
            findings_csv: None,
            json: None,
            restore: None,
            baselines: Vec::new(),
            live: LiveLimits::default(),
            checkpoint: None,
        }
    }
}

/// One `recover` run.
#[derive(Clone, Debug)]
pub struct RecoverSettings {
    /// The comparison; its `restore` spec says what to restore.
    pub verify: VerifySettings,
    pub out: PathBuf,
    pub parquet: bool,
    /// Replace an existing `--out` directory.
    pub force: bool,
}

/// One `apply` run.
#[derive(Clone, Debug)]
pub struct ApplySettings {
    pub dir: PathBuf,
    pub target: ConnInfo,
    pub dry_run: bool,
    pub skip_changed: bool,
    /// `--lock-wait`: how long apply tries for its tables' locks before it gives up, changing
    /// nothing.
    pub lock_wait: Duration,
}

/// One `check` run.
#[derive(Clone, Debug)]
pub struct CheckSettings {
    pub target: ConnInfo,
    pub base: Option<ConnInfo>,
    pub filter: TableFilter,
    /// Keys listed per finding (counts stay exact).
    pub max_keys: usize,
    pub json: Option<PathBuf>,
}

/// What to look at and what counts as notable.
#[derive(Clone, Debug)]
pub struct StatusSettings {
    pub target: ConnInfo,
    pub thresholds: Thresholds,
    /// How long a read may wait for a lock before the section is given up.
    pub lock_timeout: Duration,
}

impl StatusSettings {
    pub fn new(target: ConnInfo) -> Self {
        StatusSettings {
            target,
            thresholds: Thresholds::default(),
            lock_timeout: Duration::from_secs(2),
        }
    }
}

/// What counts as long or lagging.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// A transaction open longer than this is listed and notable.
    pub long_after_secs: u64,
    /// Replication lag (or a standby's replay age while behind) beyond this is notable.
    pub lag_after_secs: u64,
    /// Replication lag, or WAL kept by an inactive slot, beyond this many bytes is notable.
    pub lag_bytes: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            long_after_secs: 300,
            lag_after_secs: 60,
            lag_bytes: 16 * 1024 * 1024,
        }
    }
}
