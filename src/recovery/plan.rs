//! `plan.json`: what a recovery will do, per table, and why; read back by `apply`.
//!
//! Built from the comparison's tables and the per-key records: for each table the key, the
//! columns compared (the row digest `apply` guards with covers exactly these), the columns an
//! insert writes (generated columns left to the server), the columns an update sets (`--columns`
//! or all, never the key, identity or generated columns), the counts per action and per class,
//! and its place in foreign-key order. The summary lines are also what `recover` prints.
//!
//! # Schema `pgsalvage.recover/4`
//! ```text
//! { "format": "pgsalvage.recover/4", "created_at": "…Z",
//!   "sources": { "<role>": { snapshot info as in the verify report } },
//!   "totals": { "insert": n, "update": n, "delete": n, "keep": n },
//!   "fk_cycle": false,                      // true when FK order had to break a cycle
//!   "summary": [ "public.orders: insert 3 (missing), update 2 (divergent: status), …" ],
//!   "tables": [ { "index": 0, "table": "public.orders", "schema": "public", "name": "orders",
//!       "key": ["id"], "key_types": ["bigint"], "key_spans": true, "columns": ["id", …],
//!       "keyless": false,                   // true: rows named by all their columns, copy by copy
//!       "insert_columns": […], "update_columns": […],
//!       "target_columns": […], "overriding": false, "target_overriding": false,
//!       "insert": n, "update": n, "delete": n, "keep": n,
//!       "classes": { "missing": n, "extra": n, "divergent": n },   // or the three-way classes
//!       "by_action": { "insert": { "lost": n, … }, "keep": { "conflict": n, … } },
//!       "differing_columns": { "status": n },   // over the updated rows
//!       "insert_order": 0, "delete_order": 3,
//!       "written_sum": "9f…" } ],              // hex sum of the inserts' and updates' `after`
//!                                              // digests (apply's scan re-verify); optional
//!   "fixups": {                               // check's fix-ups (see recover::fixup)
//!     "summary": [ "fix-up after rows: validate public.children.children_parent_fk", … ],
//!     "steps": [ { "stage": "before_rows" | "after_rows", "kind": "add_column" | "set_default"
//!         | "create_sequence" | "add_constraint" | "restore_parents" | "copy_column"
//!         | "create_index" | "orphans" | "validate" | "set_not_null" | "setval" | "manual",
//!         "table": "public.items" | null, "object": "public.items.legacy",
//!         "active": true,                     // false: written commented out, see "note"
//!         "rows": n | null, "statements": [ "ALTER TABLE …" ], "note": "…" | null } ],
//!     "insert_tables": [ "public.parents" ],  // fix-ups insert rows there before the row restore
//!     "not_undone": [ "setval of public.items_id_seq" ] } }
//! ```
//! Plans written before `fixups` existed read as having none.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::keys::for_each_record;
use super::order::parents_first;
use crate::classify::Action;
use crate::error::{Error, Result};
use crate::plan::TableRun;
use crate::recovery::keys::key_file;
use crate::report::VerifyReport;
use crate::shape::{Column, TableShape};
use crate::source::{Role, SnapshotInfo};
use crate::tree::{hex, unhex_digest, Fingerprint};

pub const FORMAT: &str = "pgsalvage.recover/4";

/// The plan's own file, and the marker `apply` leaves once it committed the plan: the two files
/// of a recovery directory its seal does not cover.
pub const PLAN_FILE: &str = "plan.json";
pub const APPLIED_FILE: &str = "applied.json";
/// Where the marker is written before it is renamed into place.
pub const APPLIED_TMP: &str = ".applied.json.tmp";

/// What the recovery does to one table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableRestore {
    pub index: usize,
    pub table: String,
    pub schema: String,
    pub name: String,
    pub key: Vec<String>,
    /// The key columns' types as `format_type` prints them, to type the key arrays of a fetch.
    pub key_types: Vec<String>,
    /// Whether the key's index order is the key records' order (no collation, or a byte-order
    /// one), so a sorted chunk's first and last keys bound a fetch's scan.
    pub key_spans: bool,
    /// The compared columns, key first: what the guard digests cover.
    pub columns: Vec<String>,
    pub insert_columns: Vec<String>,
    pub update_columns: Vec<String>,
    /// The target's writable columns, for undo's re-inserts.
    pub target_columns: Vec<String>,
    pub overriding: bool,
    pub target_overriding: bool,
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    pub keep: u64,
    pub classes: BTreeMap<String, u64>,
    /// Per action (`insert`, `update`, `delete`, `keep`), the classes behind it.
    pub by_action: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per column, how many of the updated rows differ in it.
    pub differing_columns: BTreeMap<String, u64>,
    pub insert_order: usize,
    pub delete_order: usize,
    /// Hex of the 256-bit sum of the `after` digests of the inserts and updates (see
    /// `apply::written`, which compares it with the rows an apply wrote); absent when one of
    /// them has no digest, or in plans written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_sum: Option<String>,
    /// The target lacks the table: the recovery creates it (a fix-up before the rows), so
    /// `apply` neither locks nor guards it, and reads its shape once it is created.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create: bool,
    /// `--where`: the predicate every read of the table applies (recover's fetches, apply's
    /// guard and re-verify); rows it does not accept are out of scope, never touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// `--map-column` in a two-way run: per column (the target's name), the name the restore
    /// source (the base) gives it, where they differ.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_names: BTreeMap<String, String>,
    /// The table has no key: its records are copies of rows (read by `ctid`, deleted by content,
    /// guarded by the target's count of each row; see `apply::copies`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyless: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    pub keep: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoverPlan {
    pub format: String,
    pub created_at: String,
    pub sources: BTreeMap<Role, SnapshotInfo>,
    pub totals: Totals,
    pub fk_cycle: bool,
    pub summary: Vec<String>,
    pub tables: Vec<TableRestore>,
    #[serde(default)]
    pub fixups: crate::recovery::fixups::FixupPlan,
    /// What the comparison left out or narrowed (exclusions, `--where`, excluded and mapped
    /// columns): `apply` and later readers know the recovery's scope.
    #[serde(default, skip_serializing_if = "crate::settings::Scope::is_empty")]
    pub scope: crate::settings::Scope,
    /// The database the plan was computed against; `apply` refuses any other.
    pub target: TargetBinding,
    /// Every other file of the directory, sealed (`seal`); `apply` refuses a directory whose
    /// files differ.
    pub files: Vec<crate::seal::FileEntry>,
}

/// What identifies the target database: the cluster (`pg_control_system()`'s system
/// identifier, when the role may read it), the database's name and OID, and where its WAL was
/// when the comparison's snapshot was taken.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetBinding {
    pub system_identifier: Option<String>,
    pub database: String,
    pub database_oid: u32,
    pub snapshot_lsn: String,
}

impl TargetBinding {
    /// Reads the binding of the database `client` is connected to (`snapshot_lsn` left empty).
    pub async fn of(client: &tokio_postgres::Client) -> Result<TargetBinding> {
        let at = || "identifying the target database".to_string();
        let row = client
            .query_one(
                "SELECT current_database()::text, oid FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| Error::pg(e).context(at()))?;
        // pg_control_system() may be revoked from the role: the database then binds alone.
        let system = client
            .query_one(
                "SELECT system_identifier::text FROM pg_control_system()",
                &[],
            )
            .await
            .ok()
            .map(|r| r.get::<_, String>(0));
        Ok(TargetBinding {
            system_identifier: system,
            database: row.get(0),
            database_oid: row.get::<_, u32>(1),
            snapshot_lsn: String::new(),
        })
    }

    /// Why `current` is not this binding's database, if it is not.
    pub fn differs_from(&self, current: &TargetBinding) -> Option<String> {
        let system_differs = match (&self.system_identifier, &current.system_identifier) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
        let same = !system_differs
            && self.database == current.database
            && self.database_oid == current.database_oid;
        (!same).then(|| {
            format!(
                "this recovery was computed against database {} (oid {}{}), not {} (oid {}{})",
                self.database,
                self.database_oid,
                system_text(&self.system_identifier),
                current.database,
                current.database_oid,
                system_text(&current.system_identifier)
            )
        })
    }
}

fn system_text(system: &Option<String>) -> String {
    system
        .as_ref()
        .map(|s| format!(", system {s}"))
        .unwrap_or_default()
}

/// The restore of every table of the run that has differing keys.
pub fn restores(runs: &[TableRun], keys_dir: &Path) -> Result<Vec<TableRestore>> {
    let mut out = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        let mut t = table_restore(index, run);
        let mut written = WrittenSum::default();
        for_each_record(&key_file(keys_dir, index), |r| {
            written.add(r.action, r.after.as_deref());
            *match r.action {
                Action::Insert => &mut t.insert,
                Action::Update => &mut t.update,
                Action::Delete => &mut t.delete,
                Action::Keep => &mut t.keep,
            } += 1;
            *t.classes.entry(r.class.as_str().to_string()).or_default() += 1;
            let action = format!("{:?}", r.action).to_lowercase();
            *t.by_action
                .entry(action)
                .or_default()
                .entry(r.class.as_str().to_string())
                .or_default() += 1;
            if r.action == Action::Update {
                for c in r.columns {
                    *t.differing_columns.entry(c).or_default() += 1;
                }
            }
            Ok(())
        })?;
        t.written_sum = written.finish().map(|sum| hex(&sum.sum_bytes()));
        if t.insert + t.update + t.delete + t.keep > 0 {
            out.push(t);
        }
    }
    let edges: Vec<_> = runs
        .iter()
        .map(|r| (r.plan.name.clone(), parents_of(r)))
        .collect();
    let (order, _) = parents_first(&edges);
    for t in &mut out {
        t.insert_order = order.iter().position(|&i| i == t.index).unwrap_or(0);
        t.delete_order = order.len() - 1 - t.insert_order;
    }
    Ok(out)
}

/// The sum of the `after` digests of a table's inserts and updates, record by record: what
/// recover writes as `written_sum`, and what apply's scan re-verify compares the rows it wrote
/// with. `None` once one of them has no digest: the sum cannot stand for it.
pub struct WrittenSum(Option<Fingerprint>);

impl Default for WrittenSum {
    fn default() -> Self {
        WrittenSum(Some(Fingerprint::default()))
    }
}

impl WrittenSum {
    pub fn add(&mut self, action: Action, after: Option<&str>) {
        if matches!(action, Action::Insert | Action::Update) {
            let digest = after.and_then(unhex_digest);
            self.0 = self.0.zip(digest).map(|(mut sum, d)| {
                sum.add_digest(&d);
                sum
            });
        }
    }

    pub fn finish(self) -> Option<Fingerprint> {
        self.0
    }
}

fn parents_of(run: &TableRun) -> Vec<crate::shape::TableName> {
    let mut parents: Vec<_> = run
        .plan
        .shapes
        .iter()
        .flatten()
        .flat_map(|s| s.parents.clone())
        .collect();
    parents.sort();
    parents.dedup();
    parents
}

fn table_restore(index: usize, run: &TableRun) -> TableRestore {
    let plan = &run.plan;
    let on_target = plan.shapes.last().and_then(Option::as_ref);
    // A table the target lacks is created as the reference has it.
    let target = TargetShape(on_target.or_else(|| plan.shapes.iter().flatten().next()));
    let key: Vec<String> = plan.columns[..plan.nkey].to_vec();
    let insert_columns: Vec<String> = plan
        .columns
        .iter()
        .filter(|c| !target.generated(c))
        .cloned()
        .collect();
    let update_columns = update_columns(run, target);
    let target_columns = target.written_columns();
    let key_types = plan.key_columns.iter().map(|c| c.type_name.clone());
    TableRestore {
        index,
        table: plan.name.to_string(),
        schema: plan.name.schema.clone(),
        name: plan.name.name.clone(),
        key,
        key_types: key_types.collect(),
        key_spans: plan.native_order,
        columns: plan.columns.clone(),
        overriding: target.identity_always(&insert_columns),
        target_overriding: target.identity_always(&target_columns),
        insert_columns,
        update_columns,
        target_columns,
        insert: 0,
        update: 0,
        delete: 0,
        keep: 0,
        classes: BTreeMap::new(),
        by_action: BTreeMap::new(),
        differing_columns: BTreeMap::new(),
        insert_order: 0,
        delete_order: 0,
        written_sum: None,
        create: on_target.is_none(),
        rows: plan.rows.clone(),
        source_names: source_names(plan),
        keyless: plan.keyless(),
    }
}

/// The restore source's own names of renamed columns: the base's, when the base is the source
/// (two sources; with three, rows come from the replica, which has the new names).
fn source_names(plan: &crate::plan::TablePlan) -> BTreeMap<String, String> {
    let source = usize::from(plan.codecs.len() == 3);
    match &plan.renamed {
        Some((i, names)) if *i == source => names.clone(),
        _ => BTreeMap::new(),
    }
}

/// The columns an update sets: not the key, only those `--columns` restores, and none the target
/// computes itself (generated, or identity `ALWAYS`).
fn update_columns(run: &TableRun, target: TargetShape<'_>) -> Vec<String> {
    let plan = &run.plan;
    let settable = |(i, c): &(usize, &String)| {
        *i >= plan.nkey
            && run.restore_mask.as_ref().is_none_or(|m| m[*i])
            && !target
                .column(c)
                .is_some_and(|c| c.generated || c.identity_always)
    };
    plan.columns
        .iter()
        .enumerate()
        .filter(settable)
        .map(|(_, c)| c.clone())
        .collect()
}

/// The target's shape of a table, when the target has the table.
#[derive(Clone, Copy)]
struct TargetShape<'a>(Option<&'a TableShape>);

impl<'a> TargetShape<'a> {
    fn column(self, name: &str) -> Option<&'a Column> {
        self.0.and_then(|s| s.column(name)).map(|(_, c)| c)
    }

    /// Whether the target generates the column: no statement writes it.
    fn generated(self, name: &str) -> bool {
        self.column(name).is_some_and(|c| c.generated)
    }

    /// Whether one of `cols` is an identity `ALWAYS` on the target: inserts into them need
    /// `OVERRIDING SYSTEM VALUE`.
    fn identity_always(self, cols: &[String]) -> bool {
        cols.iter()
            .any(|c| self.column(c).is_some_and(|c: &Column| c.identity_always))
    }

    /// The target's own columns, generated ones left out.
    fn written_columns(self) -> Vec<String> {
        self.0
            .map(|s| {
                s.columns
                    .iter()
                    .filter(|c| !c.generated)
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TableRestore {
    /// `cols` by the restore source's names (see [`TableRestore::source_names`]).
    pub fn source_columns(&self, cols: &[String]) -> Vec<String> {
        cols.iter()
            .map(|c| self.source_names.get(c).unwrap_or(c).clone())
            .collect()
    }

    /// How many of the table's key records carry one of `actions`.
    pub fn planned(&self, actions: &[Action]) -> u64 {
        actions
            .iter()
            .map(|a| match a {
                Action::Insert => self.insert,
                Action::Update => self.update,
                Action::Delete => self.delete,
                Action::Keep => self.keep,
            })
            .sum()
    }
}

impl RecoverPlan {
    pub fn new(report: &VerifyReport, runs: &[TableRun], tables: Vec<TableRestore>) -> Self {
        let mut totals = Totals::default();
        for t in &tables {
            totals.insert += t.insert;
            totals.update += t.update;
            totals.delete += t.delete;
            totals.keep += t.keep;
        }
        let edges: Vec<_> = runs
            .iter()
            .map(|r| (r.plan.name.clone(), parents_of(r)))
            .collect();
        let (_, fk_cycle) = parents_first(&edges);
        let summary = tables.iter().map(summary_line).collect();
        RecoverPlan {
            format: FORMAT.into(),
            created_at: now_utc(),
            sources: report.sources.clone(),
            totals,
            fk_cycle,
            summary,
            tables,
            fixups: Default::default(),
            scope: report.scope.clone(),
            target: TargetBinding::default(),
            files: Vec::new(),
        }
    }

    /// Seals every file of `dir` but the plan itself into the plan (see `seal`).
    pub fn seal(&mut self, dir: &Path) -> Result<()> {
        self.files = crate::seal::seal_dir(dir, &[PLAN_FILE, APPLIED_FILE, APPLIED_TMP])?;
        Ok(())
    }

    /// Refuses a directory whose files are not those recover wrote.
    pub fn check_sealed(&self, dir: &Path) -> Result<()> {
        match crate::seal::check_dir(dir, &self.files, &[PLAN_FILE, APPLIED_FILE, APPLIED_TMP])? {
            None => Ok(()),
            Some(why) => Err(Error::usage(format!(
                "recovery directory {} was modified after recover wrote it: {why}",
                dir.display()
            ))
            .with_hint("apply runs only what recover wrote and sealed in plan.json; run recover again to get a fresh plan")),
        }
    }

    pub fn parents_first(&self) -> Vec<&TableRestore> {
        let mut t: Vec<&TableRestore> = self.tables.iter().collect();
        t.sort_by_key(|t| t.insert_order);
        t
    }

    pub fn children_first(&self) -> Vec<&TableRestore> {
        let mut t = self.parents_first();
        t.reverse();
        t
    }

    /// The comment block atop a script.
    pub fn header(&self, what: &str, purpose: &str) -> String {
        let mut lines = vec![
            format!("pgsalvage {what} script ({FORMAT}), created {}: {purpose}.", self.created_at),
            "Review plan.json first. Run: psql -X -v ON_ERROR_STOP=1 -f <this file> <target URL>, or pgsalvage apply.".into(),
        ];
        for (role, s) in &self.sources {
            lines.push(format!(
                "{role}: {} (PostgreSQL {}, WAL {}, snapshot at {})",
                s.connection, s.server_version, s.wal_lsn, s.taken_at
            ));
        }
        lines.extend(self.summary.iter().cloned());
        lines.extend(self.fixups.summary.iter().cloned());
        lines.join("\n")
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| Error::io(path.display(), e))
    }

    pub fn read(dir: &Path) -> Result<RecoverPlan> {
        let path = dir.join("plan.json");
        let text = std::fs::read(&path).map_err(|e| {
            Error::io(path.display(), e)
                .with_hint("point apply at a directory written by pgsalvage recover")
        })?;
        let invalid = |e: serde_json::Error| {
            Error::usage(format!("{} is not a valid plan: {e}", path.display()))
        };
        // The format first: a plan of another version is refused as such, not as malformed.
        #[derive(Deserialize)]
        struct Format {
            format: String,
        }
        let format: Format = serde_json::from_slice(&text).map_err(invalid)?;
        if format.format != FORMAT {
            return Err(Error::usage(format!(
                "{} has format {}, this pgsalvage reads {FORMAT}",
                path.display(),
                format.format
            ))
            .with_hint("run recover again with this pgsalvage"));
        }
        serde_json::from_slice(&text).map_err(invalid)
    }
}

fn summary_line(t: &TableRestore) -> String {
    let why = |action: &str| {
        let classes = t.by_action.get(action).into_iter().flatten();
        classes
            .map(|(c, n)| format!("{} {n}", c.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    for (action, n) in [
        ("insert", t.insert),
        ("update", t.update),
        ("delete", t.delete),
        ("keep", t.keep),
    ] {
        if n == 0 {
            continue;
        }
        let mut part = format!("{action} {n} ({}", why(action));
        if action == "update" && !t.differing_columns.is_empty() {
            let cols: Vec<String> = t
                .differing_columns
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            part.push_str(&format!("; columns differing: {}", cols.join(", ")));
        }
        part.push(')');
        parts.push(part);
    }
    format!("{}: {}", t.table, parts.join(", "))
}

/// The current time, UTC, ISO 8601 (seconds), without a date library.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = crate::key::render::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
