//! The verify report: what was compared, what differs, what could not be verified.
//!
//! [`build`] turns the run's tallies into a [`VerifyReport`], the one structure behind the human
//! summary ([`human`]), the `--json` file and the exit status. It also cross-checks each fully
//! compared table: no row differences must mean equal checksum roots, and differences unequal
//! ones; a disagreement is an internal error, never a silent "identical".
//!
//! # JSON schema `pgsalvage.verify/2`
//! ```text
//! {
//!   "format": "pgsalvage.verify/2",
//!   "verdict": "identical" | "differences" | "incomplete",
//!   "exit_code": 0 | 1 | 2,
//!   "sources": { "<role>": { "connection": "user@host:port/db", "server_version": "15.18",
//!                "wal_lsn": "0/1A2B3C4", "in_recovery": false, "taken_at": "…Z", "snapshot_id": "…" } },
//!   "tables": [ {
//!       "table": "public.orders",
//!       "status": "identical" | "differences" | "error",
//!       "rows": { "<role>": 123 },              // rows read per source
//!       "missing": 0, "extra": 0, "divergent": 0,   // exact, never capped
//!       "classes": { "lost": 3, "changed_since_backup": 10, … },   // non-zero classes
//!                                               // (three-way classes: see classify.rs)
//!       "divergent_columns": [ { "column": "status", "rows": 3 } ],
//!       "schema_differences": [ { "kind": "column_absent" | "column_extra" | "type_changed"
//!             | "type_incomparable" | "table_absent" | "key_changed",
//!             "source": "<role>", "column": "x", "expected": "…", "found": "…" } ],
//!       "key": ["id"], "columns_compared": ["id", "status", …],
//!       "keyless": false,                       // true: rows compared as a multiset
//!       "key_note": "key (a, b) from unique index t_a_b_key: …",   // only when the key is a
//!                                               // unique index's, or one was given up (why)
//!       "roots": { "<role>": "<64 hex digits>" },  // checksum tree roots
//!       "ranges": { "planned": 8, "verified": 8 },
//!       "elapsed_ms": 812, "rows_per_sec": 250000,
//!       "errors": [ "…" ],
//!       "spans": { "count": 2, "exact_keys": false,   // only when a side is a baseline
//!                  "listed": [ { "from": [1000] | null, "to": [2000] | null,
//!                                "rows": { "<role>": 12 } } ], "truncated": false },
//!       "damage_map": { "buckets": [0, 0, 3, …],   // only for tables with differences: the
//!                       "rows": 100000,           // differing keys (legitimate three-way
//!                       "unmapped_ranges": 0 }    // changes left out) by position in the
//!                                                 // table's key order, 64 equal parts of "rows"
//!       "narrow": true                            // only when read narrow first (--narrow):
//!                                                 // "roots" are then those of the row hashes
//!   } ],
//!   "totals": { "tables": 5, "tables_differing": 1, "tables_failed": 0,
//!               "missing": 10, "extra": 0, "divergent": 3, "schema_differences": 1,
//!               "changed_spans": 0 },
//!   "findings": [ { "table": "public.orders", "key": [42], "kind": "missing" | "extra" | "divergent"
//!                   | a three-way class,
//!                   "columns": ["status"] } ],
//!   "findings_truncated": false,                // true when --max-findings cut the list
//!   "errors": [ { "table": "public.t" | null, "message": "…", "hint": "…" | null } ],
//!   "elapsed_ms": 1234,
//!   "tool": { … }, "command_line": [ … ], "timings": { … }   // see provenance.rs
//!   "fixups": { "summary": [ … ], "steps": [ … ], … }   // recover's report only: its fix-ups,
//!                                               // as plan.json's `fixups` (cli/recover.rs)
//! }
//! ```
//! Version 2 added `damage_map` and the provenance fields (`tool`, `command_line`, `timings`);
//! everything of version 1 reads as it did.
//! `<role>` is `base`, `replica` or `target`. Keys are JSON arrays of exact values: integers and
//! numerics as JSON numbers written digit for digit (never through a float), everything else as
//! strings in PostgreSQL's text form (UTC, ISO dates).
//!
//! When a side is a baseline directory (`baseline`), its source entry's `connection` reads
//! `baseline <dir> of <connection>`, and each table carries `spans`: the key spans whose rows
//! differ. Without stored rows (`baseline` without `--rows`) the rows of those spans cannot be
//! named, so `missing`/`extra`/`divergent` stay 0 and `exact_keys` is false; with them, the
//! differing keys are listed as usual, but divergent rows carry no column names (a baseline keeps
//! one digest per row). A table whose compared columns changed since the baseline is reported
//! by its `schema_differences` and its rows are not compared. Its `roots` are then the baseline
//! format's table roots (blake3 of the row count and the 256-bit sum of the row digests), the same
//! value a baseline's manifest records, so a root can be checked against any baseline.

pub mod html;
pub mod human;
pub mod listing;
pub mod provenance;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::classify::Class;
use crate::compare::strip::{table_map, DamageMap};
use crate::compare::tally::TableTally;
use crate::error::Error;
use crate::plan::SchemaDiff;
use crate::plan::{TablePlan, TableRun};
use crate::report::listing::Listed;
use crate::shape::TableName;
use crate::source::{Role, SnapshotInfo};
use crate::tree::hex;

pub const FORMAT: &str = "pgsalvage.verify/2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Identical,
    Differences,
    Incomplete,
}

impl Verdict {
    /// 0 identical, 1 differences, 2 anything unverified.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Identical => 0,
            Verdict::Differences => 1,
            Verdict::Incomplete => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    Identical,
    Differences,
    Error,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub format: &'static str,
    pub verdict: Verdict,
    pub exit_code: i32,
    pub sources: BTreeMap<Role, SnapshotInfo>,
    pub tables: Vec<TableReport>,
    pub totals: Totals,
    pub findings: Vec<FindingOut>,
    pub findings_truncated: bool,
    pub errors: Vec<ErrorOut>,
    pub elapsed_ms: u64,
    /// A run resumed from a `--checkpoint`: the earlier runs' snapshots and how many ranges
    /// they read. Those ranges were compared at other times than `sources`' snapshots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<Resumed>,
    /// What the run left out or narrowed (exclusions, `--where`, excluded and mapped columns,
    /// tables outside a baseline's scope); omitted when it compared whole tables.
    #[serde(skip_serializing_if = "crate::settings::Scope::is_empty")]
    pub scope: crate::settings::Scope,
}

#[derive(Debug, Serialize)]
pub struct Resumed {
    pub ranges: usize,
    pub earlier_runs: Vec<BTreeMap<Role, SnapshotInfo>>,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub table: String,
    pub status: TableStatus,
    pub rows: BTreeMap<Role, u64>,
    pub missing: u64,
    pub extra: u64,
    pub divergent: u64,
    /// Every non-zero class count (two-way: missing/extra/divergent; three-way: lost, damaged, …).
    pub classes: BTreeMap<&'static str, u64>,
    pub divergent_columns: Vec<ColumnCount>,
    pub schema_differences: Vec<SchemaDiff>,
    pub key: Vec<String>,
    /// No key: rows compared as a multiset (each copy counted; a finding's key is the row).
    pub keyless: bool,
    /// Where the key comes from when that is not plain (a unique index's), or why the table is
    /// keyless although it has a unique index (see `plan::key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_note: Option<String>,
    pub columns_compared: Vec<String>,
    pub roots: BTreeMap<Role, String>,
    pub ranges: RangeCounts,
    pub elapsed_ms: u64,
    pub rows_per_sec: u64,
    pub errors: Vec<String>,
    /// Comparisons with a baseline: the key spans whose rows differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans: Option<SpansOut>,
    /// Tables with differences: where in the key space they lie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage_map: Option<DamageMap>,
    /// Read narrow first (`--narrow`): its `roots` are those of the keys and row hashes, not
    /// comparable with a full read's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub narrow: bool,
}

/// Buckets of a table's [`DamageMap`].
pub const DAMAGE_BUCKETS: usize = 64;

/// The key spans where a baseline and the other side differ.
#[derive(Debug, Serialize)]
pub struct SpansOut {
    /// Differing spans, exact.
    pub count: u64,
    /// Whether the differing rows were named exactly (both sides hold row digests); otherwise
    /// `missing`/`extra`/`divergent` are 0 and only the spans say where to look.
    pub exact_keys: bool,
    /// The first spans, in key order (capped by --max-findings).
    pub listed: Vec<SpanOut>,
    pub truncated: bool,
}

/// `[from, to)`; a `null` end is open. Keys as in findings.
#[derive(Debug, Serialize)]
pub struct SpanOut {
    pub from: Option<Box<RawValue>>,
    pub to: Option<Box<RawValue>>,
    pub rows: BTreeMap<Role, u64>,
}

#[derive(Debug, Serialize)]
pub struct ColumnCount {
    pub column: String,
    pub rows: u64,
}

#[derive(Debug, Serialize)]
pub struct RangeCounts {
    pub planned: usize,
    pub verified: usize,
    /// Of the verified ranges, those read by an earlier run of a `--checkpoint` (at the
    /// snapshots listed under the report's `resumed`).
    #[serde(skip_serializing_if = "is_zero")]
    pub resumed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub tables: usize,
    pub tables_differing: usize,
    pub tables_failed: usize,
    pub missing: u64,
    pub extra: u64,
    pub divergent: u64,
    pub schema_differences: usize,
    /// Differing key spans over all tables (comparisons with a baseline).
    pub changed_spans: u64,
    /// Every non-zero class count over all tables.
    pub classes: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct FindingOut {
    pub table: String,
    pub key: Box<RawValue>,
    pub kind: &'static str,
    pub columns: Vec<String>,
    /// `--show-values N` (the first N divergent rows of each table): per differing column, each
    /// source's value as PostgreSQL prints it, `null` for NULL, elided past 80 characters; a
    /// source without the row is left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, BTreeMap<Role, Option<String>>>>,
}

#[derive(Debug, Serialize)]
pub struct ErrorOut {
    pub table: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

/// Everything [`build`] needs from the run.
pub struct Parts<'a> {
    pub roles: &'a [Role],
    pub snapshots: Vec<SnapshotInfo>,
    pub tables: &'a [TableRun],
    pub tallies: Vec<TableTally>,
    pub refused: Vec<(TableName, Error)>,
    pub listed: Listed,
    pub started: Instant,
}

pub fn build(parts: Parts<'_>) -> VerifyReport {
    let roles = parts.roles;
    let mut tables: Vec<TableReport> = parts
        .tables
        .iter()
        .zip(parts.tallies)
        .map(|(run, tally)| table_report(roles, run, tally))
        .collect();
    let errors: Vec<ErrorOut> = parts
        .refused
        .iter()
        .map(|(name, e)| ErrorOut {
            table: Some(name.to_string()),
            message: e.to_string(),
            hint: e.hint().map(str::to_string),
        })
        .collect();
    tables.extend(
        parts
            .refused
            .iter()
            .map(|(name, e)| refused_report(name, e)),
    );
    let sources = roles.iter().copied().zip(parts.snapshots).collect();
    let findings = findings_out(&parts.listed, roles);
    assemble(
        sources,
        tables,
        errors,
        findings,
        parts.listed.truncated,
        parts.started,
    )
}

/// The report of finished tables: sorted, totals, errors gathered, the verdict.
pub fn assemble(
    sources: BTreeMap<Role, SnapshotInfo>,
    mut tables: Vec<TableReport>,
    mut errors: Vec<ErrorOut>,
    findings: Vec<FindingOut>,
    findings_truncated: bool,
    started: Instant,
) -> VerifyReport {
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    for t in &tables {
        errors.extend(t.errors.iter().map(|m| ErrorOut {
            table: Some(t.table.clone()),
            message: m.clone(),
            hint: None,
        }));
    }
    errors.dedup_by(|a, b| a.table == b.table && a.message == b.message);
    let totals = totals(&tables);
    let verdict = verdict(&totals, &errors);
    VerifyReport {
        format: FORMAT,
        verdict,
        exit_code: verdict.exit_code(),
        sources,
        findings,
        findings_truncated,
        tables,
        totals,
        errors,
        elapsed_ms: started.elapsed().as_millis() as u64,
        resumed: None,
        scope: crate::settings::Scope::default(),
    }
}

fn table_report(roles: &[Role], run: &TableRun, mut tally: TableTally) -> TableReport {
    check_roots(&mut tally);
    let plan = &run.plan;
    let status = table_status(&tally, plan);
    note_unverified(&mut tally);
    let elapsed = tally.elapsed();
    let rows_read: u64 = tally.rows.iter().sum();
    let divergent_columns = divergent_columns(plan, &tally);
    let damage_map =
        (tally.classes.actionable() > 0).then(|| table_map(&tally.strips, DAMAGE_BUCKETS));
    TableReport {
        table: plan.name.to_string(),
        status,
        rows: per_role(roles, tally.rows.iter().copied()),
        // Three-way: the rows the target lacks, has in surplus or holds otherwise than the
        // replica, among the keys that call for an action (legitimate changes are not counted).
        missing: tally.classes.get(Class::Missing) + tally.needs[0],
        extra: tally.classes.get(Class::Extra) + tally.needs[1],
        divergent: tally.classes.get(Class::Divergent) + tally.needs[2],
        classes: tally
            .classes
            .nonzero()
            .map(|(c, n)| (c.as_str(), n))
            .collect(),
        divergent_columns,
        schema_differences: plan.schema_diffs.clone(),
        key: plan.key_columns.iter().map(|c| c.name.clone()).collect(),
        keyless: plan.keyless(),
        key_note: plan.key_origin.note(plan.key()),
        columns_compared: plan.columns.clone(),
        roots: per_role(roles, tally.trees.iter().map(|t| hex(&t.root()))),
        ranges: RangeCounts {
            planned: tally.ranges_total,
            verified: tally.ranges_verified,
            resumed: tally.ranges_resumed,
        },
        elapsed_ms: elapsed.as_millis() as u64,
        rows_per_sec: (rows_read as f64 / elapsed.as_secs_f64().max(1e-3)) as u64,
        errors: tally.errors,
        spans: None,
        damage_map,
        narrow: run.narrow.is_some(),
    }
}

/// An error unless every range was verified without error; otherwise whether anything differs.
fn table_status(tally: &TableTally, plan: &TablePlan) -> TableStatus {
    let differs = tally.classes.actionable() > 0 || !plan.schema_diffs.is_empty();
    match (tally.complete(), differs) {
        (false, _) => TableStatus::Error,
        (true, true) => TableStatus::Differences,
        (true, false) => TableStatus::Identical,
    }
}

/// Ranges neither verified nor failed are an error of their own: the table was not all compared.
fn note_unverified(tally: &mut TableTally) {
    if tally.ranges_verified + tally.errors.len() < tally.ranges_total {
        let left = tally.ranges_total - tally.ranges_verified - tally.errors.len();
        tally.errors.push(format!(
            "{left} of {} ranges were not verified",
            tally.ranges_total
        ));
    }
}

/// The compared columns that differ in some row, with how many rows.
fn divergent_columns(plan: &TablePlan, tally: &TableTally) -> Vec<ColumnCount> {
    plan.columns
        .iter()
        .zip(&tally.columns)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| ColumnCount {
            column: c.clone(),
            rows: *n,
        })
        .collect()
}

/// `values` keyed by the roles they belong to, in order.
fn per_role<T>(roles: &[Role], values: impl Iterator<Item = T>) -> BTreeMap<Role, T> {
    roles.iter().copied().zip(values).collect()
}

/// The merge and the trees are two views of the same rows: if they disagree, something is broken
/// and the table must not be reported as compared.
fn check_roots(tally: &mut TableTally) {
    if !tally.complete() {
        return;
    }
    let equal = tally.trees.windows(2).all(|w| w[0].root() == w[1].root());
    let no_diffs = tally.classes.total() == 0;
    if equal != no_diffs {
        tally.errors.push(format!(
            "internal check failed: the merge found {} differences but the checksum roots are {}",
            tally.classes.total(),
            if equal { "equal" } else { "different" }
        ));
    }
}

/// A table that could not be compared, with why.
pub fn refused_report(name: &TableName, err: &Error) -> TableReport {
    TableReport {
        errors: vec![err.to_string()],
        ..blank_report(name, TableStatus::Error)
    }
}

/// A table's report with nothing counted yet, for builders that fill it in.
pub fn blank_report(name: &TableName, status: TableStatus) -> TableReport {
    TableReport {
        table: name.to_string(),
        status,
        rows: BTreeMap::new(),
        missing: 0,
        extra: 0,
        divergent: 0,
        classes: BTreeMap::new(),
        divergent_columns: Vec::new(),
        schema_differences: Vec::new(),
        key: Vec::new(),
        keyless: false,
        key_note: None,
        columns_compared: Vec::new(),
        roots: BTreeMap::new(),
        ranges: RangeCounts {
            planned: 0,
            verified: 0,
            resumed: 0,
        },
        elapsed_ms: 0,
        rows_per_sec: 0,
        errors: Vec::new(),
        spans: None,
        damage_map: None,
        narrow: false,
    }
}

fn totals(tables: &[TableReport]) -> Totals {
    let mut t = Totals {
        tables: tables.len(),
        ..Totals::default()
    };
    for table in tables {
        t.tables_differing += (table.status == TableStatus::Differences) as usize;
        t.tables_failed += (table.status == TableStatus::Error) as usize;
        t.missing += table.missing;
        t.extra += table.extra;
        t.divergent += table.divergent;
        t.schema_differences += table.schema_differences.len();
        t.changed_spans += table.spans.as_ref().map_or(0, |s| s.count);
        for (class, n) in &table.classes {
            *t.classes.entry(class).or_default() += n;
        }
    }
    t
}

fn verdict(totals: &Totals, errors: &[ErrorOut]) -> Verdict {
    let differs = totals.tables_differing > 0;
    if totals.tables_failed > 0 || !errors.is_empty() {
        Verdict::Incomplete
    } else if differs {
        Verdict::Differences
    } else {
        Verdict::Identical
    }
}

pub fn findings_out(listed: &Listed, roles: &[Role]) -> Vec<FindingOut> {
    listed
        .findings
        .iter()
        .map(|f| FindingOut {
            values: f.values.as_ref().map(|v| values_out(listed, f, v, roles)),
            table: listed.layout.table(f).to_string(),
            key: RawValue::from_string(f.key.clone()).unwrap_or_else(|_| {
                RawValue::from_string(serde_json::to_string(&f.key).expect("a string serializes"))
                    .expect("valid JSON")
            }),
            kind: f.class.as_str(),
            columns: listed
                .layout
                .columns(f)
                .into_iter()
                .map(str::to_string)
                .collect(),
        })
        .collect()
}

/// A finding's shown values by column name and role.
fn values_out(
    listed: &Listed,
    finding: &crate::classify::Finding,
    values: &crate::classify::ShownValues,
    roles: &[Role],
) -> BTreeMap<String, BTreeMap<Role, Option<String>>> {
    values
        .iter()
        .map(|(c, per_source)| {
            let by_role = roles
                .iter()
                .zip(per_source)
                .filter_map(|(role, v)| v.clone().map(|v| (*role, v)))
                .collect();
            (listed.layout.column(finding, *c).to_string(), by_role)
        })
        .collect()
}

impl VerifyReport {
    /// Writes the report as JSON to a temporary file beside `path`, then renames it into place.
    pub fn write_json(&self, path: &std::path::Path) -> crate::error::Result<()> {
        write_report_file(path, self)
    }
}

/// Writes a report as JSON (see [`write_json_file`]) with the fields of
/// [`provenance`]: the tool's version and commit, the command line, the timings.
pub fn write_report_file(
    path: &std::path::Path,
    report: &impl Serialize,
) -> crate::error::Result<()> {
    let value = provenance::stamped(report)
        .map_err(|e| Error::internal(format!("a report as JSON: {e}")))?;
    write_json_file(path, &value)
}

/// Writes any report as pretty JSON to a temporary file beside `path`, then renames it into
/// place, so a crash never leaves a half report that looks complete. `-` is standard output.
pub fn write_json_file(path: &std::path::Path, value: &impl Serialize) -> crate::error::Result<()> {
    if is_stdout(path) {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)
            .map_err(|e| Error::io("standard output", e.into()))?;
        return std::io::Write::write_all(&mut out, b"\n")
            .map_err(|e| Error::io("standard output", e));
    }
    let file = crate::staging::temp_beside(path)?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| Error::io(path.display(), e.into()))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(path.display(), e.into_error()))?;
    file.persist(path)
        .map_err(|e| Error::io(path.display(), e.error))?;
    Ok(())
}

/// Whether an output path means standard output (`-`).
pub fn is_stdout(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// Checks, before any work, that an output file can be written where it is asked for: its
/// directory exists and takes a new file. A run must not fail after an hour of comparing
/// because of a typo in `--json`.
pub fn check_writable(path: &std::path::Path, flag: &str) -> crate::error::Result<()> {
    if is_stdout(path) {
        return Ok(());
    }
    if path.is_dir() {
        return Err(
            Error::usage(format!("{flag} {}: is a directory", path.display()))
                .with_hint("name a file to write"),
        );
    }
    crate::staging::temp_beside(path).map(drop).map_err(|e| {
        Error::usage(format!("{flag} {}: {e}", path.display()))
            .with_hint("the directory must exist and be writable")
    })
}
