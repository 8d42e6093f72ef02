//! The check report: the wire types behind `--json` (schema in the [module doc](super)), the
//! human text the binary prints, and the exit status.
//!
//! Counts are exact; key lists stop at `max_keys` and say so. The full rows stay in the
//! structures (not serialized) for the fix-ups `recover` writes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::value::RawValue;

use super::catalog::ConstraintKind;
use super::catalog::JsonForm;
use super::drift::{Change, Drift};
use super::scan::{tuple_json, Violation};
use crate::error::Result;
use crate::source::{Role, SnapshotInfo};

pub const FORMAT: &str = "pgsalvage.check/2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    Clean,
    Problems,
}

/// Rows that break a rule: the exact count and the first keys.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RowList {
    pub key_columns: Vec<String>,
    pub rows: u64,
    pub keys: Vec<Box<RawValue>>,
    pub keys_truncated: bool,
    /// Every row, for the fix-ups.
    #[serde(skip)]
    pub all: Vec<Violation>,
}

impl RowList {
    pub fn new(
        key_columns: Vec<String>,
        forms: &[JsonForm],
        all: Vec<Violation>,
        max: usize,
    ) -> Self {
        RowList {
            key_columns,
            rows: all.len() as u64,
            keys: all
                .iter()
                .take(max)
                .map(|v| tuple_json(&v.key, forms))
                .collect(),
            keys_truncated: all.len() > max,
            all,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ConstraintFinding {
    pub table: String,
    #[serde(skip)]
    pub table_name: crate::shape::TableName,
    pub constraint: String,
    pub kind: ConstraintKind,
    pub definition: String,
    /// The rows that violate it; `null` for kinds not checked by rows (exclusion).
    pub violations: Option<RowList>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OrphanFinding {
    pub table: String,
    #[serde(skip)]
    pub table_name: crate::shape::TableName,
    pub constraint: String,
    pub columns: Vec<String>,
    pub parent: String,
    pub parent_columns: Vec<String>,
    #[serde(skip)]
    pub parent_name: crate::shape::TableName,
    pub validated: bool,
    pub orphans: RowList,
    /// Distinct parent keys the orphans reference.
    pub missing_parents: u64,
    pub parent_keys: Vec<Box<RawValue>>,
    /// With a base: how many of those parent keys the base has (restorable), and not.
    pub restorable_parents: Option<u64>,
    pub unrestorable_parents: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ParentRestore {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: u64,
    pub keys: Vec<Box<RawValue>>,
    pub keys_truncated: bool,
    /// Keys referenced by restorable rows or orphans that the base does not have either.
    pub unresolved: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SequenceColumn {
    pub table: String,
    pub column: String,
    pub max: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SequenceFinding {
    pub sequence: String,
    #[serde(skip)]
    pub name: crate::shape::TableName,
    pub last_value: Option<i64>,
    pub next_value: i64,
    pub columns: Vec<SequenceColumn>,
    pub max: i64,
    pub base_last_value: Option<i64>,
    /// The value the fix-up sets: the larger of `max` and `base_last_value`.
    pub setval: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct NullFinding {
    pub table: String,
    #[serde(skip)]
    pub table_name: crate::shape::TableName,
    pub column: String,
    pub nulls: RowList,
}

#[derive(Clone, Debug, Serialize)]
pub struct DuplicateFinding {
    pub table: String,
    #[serde(skip)]
    pub table_name: crate::shape::TableName,
    /// The base's constraint or unique index whose index the target lacks.
    pub name: String,
    pub columns: Vec<String>,
    /// Rows in a group of equal values (each row's key and the duplicated values).
    pub duplicates: RowList,
    pub groups: u64,
    pub values: Vec<Box<RawValue>>,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckTotals {
    pub not_validated: usize,
    pub violating_rows: u64,
    pub foreign_keys_with_orphans: usize,
    pub orphans: u64,
    pub restorable_parents: u64,
    pub sequences_behind: usize,
    pub not_null_columns_with_nulls: usize,
    pub duplicate_groups: u64,
    pub drift: usize,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub format: &'static str,
    pub verdict: CheckVerdict,
    pub exit_code: i32,
    pub sources: BTreeMap<Role, SnapshotInfo>,
    pub not_validated: Vec<ConstraintFinding>,
    pub orphans: Vec<OrphanFinding>,
    pub parent_restores: Vec<ParentRestore>,
    pub sequences: Vec<SequenceFinding>,
    pub not_null: Vec<NullFinding>,
    pub duplicates: Vec<DuplicateFinding>,
    pub drift: Vec<Drift>,
    pub totals: CheckTotals,
    pub max_keys: usize,
    pub elapsed_ms: u64,
}

impl CheckReport {
    /// Fills the totals, the verdict and the exit status from the lists.
    pub fn conclude(&mut self) {
        let rows = |l: &Option<RowList>| l.as_ref().map_or(0, |l| l.rows);
        self.totals = CheckTotals {
            not_validated: self.not_validated.len(),
            violating_rows: self.not_validated.iter().map(|f| rows(&f.violations)).sum(),
            foreign_keys_with_orphans: self.orphans.len(),
            orphans: self.orphans.iter().map(|o| o.orphans.rows).sum(),
            restorable_parents: self.parent_restores.iter().map(|p| p.rows).sum(),
            sequences_behind: self.sequences.len(),
            not_null_columns_with_nulls: self.not_null.len(),
            duplicate_groups: self.duplicates.iter().map(|d| d.groups).sum(),
            drift: self.drift.len(),
        };
        let t = &self.totals;
        let found = t.not_validated
            + t.foreign_keys_with_orphans
            + t.sequences_behind
            + t.not_null_columns_with_nulls
            + self.duplicates.len()
            + t.drift;
        self.verdict = if found == 0 {
            CheckVerdict::Clean
        } else {
            CheckVerdict::Problems
        };
        self.exit_code = i32::from(found > 0);
    }

    /// Writes the report as JSON to a temporary file beside `path`, then renames it into place.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        crate::report::write_report_file(path, self)
    }

    /// The human summary: one block per kind of problem, and a verdict line last.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for f in &self.not_validated {
            line(&mut out, not_validated_text(f));
        }
        for o in &self.orphans {
            line(&mut out, orphan_text(o));
        }
        for p in &self.parent_restores {
            line(&mut out, parent_restore_text(p));
        }
        for s in &self.sequences {
            line(&mut out, sequence_text(s));
        }
        for n in &self.not_null {
            line(&mut out, null_text(n));
        }
        for d in &self.duplicates {
            line(&mut out, duplicate_text(d));
        }
        for d in &self.drift {
            line(&mut out, drift_text(d));
        }
        line(&mut out, self.verdict_text());
        out
    }

    /// The last line: `clean`, or the totals of every kind of problem.
    fn verdict_text(&self) -> String {
        let t = &self.totals;
        match self.verdict {
            CheckVerdict::Clean => "check: clean".to_string(),
            CheckVerdict::Problems => format!(
                "check: problems: {} not validated, {} orphans under {} foreign keys, {} sequences behind, {} NOT NULL columns with NULLs, {} duplicate groups, {} schema differences",
                t.not_validated, t.orphans, t.foreign_keys_with_orphans, t.sequences_behind,
                t.not_null_columns_with_nulls, t.duplicate_groups, t.drift
            ),
        }
    }
}

fn not_validated_text(f: &ConstraintFinding) -> String {
    let n = f.violations.as_ref().map_or("not checked".into(), |v| {
        format!(
            "{} violating rows{}",
            v.rows,
            keys_text(&v.keys, v.keys_truncated)
        )
    });
    format!(
        "not validated: {}.{} ({}): {n}",
        f.table,
        f.constraint,
        f.kind.as_str()
    )
}

fn orphan_text(o: &OrphanFinding) -> String {
    let restorable = match (o.restorable_parents, o.unrestorable_parents) {
        (Some(r), Some(u)) => format!("; the base has {r} of them, {u} are nowhere"),
        _ => String::new(),
    };
    format!(
        "orphans: {} rows of {} ({}) reference {} missing rows of {}{restorable}{}",
        o.orphans.rows,
        o.table,
        o.constraint,
        o.missing_parents,
        o.parent,
        keys_text(&o.orphans.keys, o.orphans.keys_truncated)
    )
}

fn parent_restore_text(p: &ParentRestore) -> String {
    format!(
        "restorable from the base: {} rows of {} ({}){}",
        p.rows,
        p.table,
        p.columns.join(", "),
        keys_text(&p.keys, p.keys_truncated)
    )
}

fn sequence_text(s: &SequenceFinding) -> String {
    let cols: Vec<String> = s
        .columns
        .iter()
        .map(|c| format!("{}.{}", c.table, c.column))
        .collect();
    format!(
        "sequence behind: {} would give {} but {} holds {}; setval to {}",
        s.sequence,
        s.next_value,
        cols.join(", "),
        s.max,
        s.setval
    )
}

fn null_text(n: &NullFinding) -> String {
    format!(
        "nulls: {}.{} is NOT NULL on the base; {} rows hold NULL{}",
        n.table,
        n.column,
        n.nulls.rows,
        keys_text(&n.nulls.keys, n.nulls.keys_truncated)
    )
}

fn duplicate_text(d: &DuplicateFinding) -> String {
    format!(
        "duplicates: {} ({}) has no index on the target; {} groups, {} rows{}",
        d.table,
        d.name,
        d.groups,
        d.duplicates.rows,
        keys_text(&d.duplicates.keys, d.duplicates.keys_truncated)
    )
}

fn line(out: &mut String, text: String) {
    let _ = writeln!(out, "{text}");
}

fn keys_text(keys: &[Box<RawValue>], truncated: bool) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = keys.iter().take(10).map(|k| k.get()).collect();
    let more = if truncated || keys.len() > 10 {
        ", …"
    } else {
        ""
    };
    format!(": {}{more}", shown.join(", "))
}

fn drift_text(d: &Drift) -> String {
    let object = format!("{:?}", d.object).to_lowercase();
    let what = match &d.table {
        Some(t) => format!("{object} {t}.{}", d.name),
        None => format!("{object} {}", d.name),
    };
    match d.change {
        Change::Missing => format!("drift: {what} missing on the target"),
        Change::Extra => format!("drift: {what} only on the target"),
        Change::Different => format!(
            "drift: {what} {} differs: base {}, target {}",
            d.aspect.unwrap_or("definition"),
            d.base.as_deref().unwrap_or("none"),
            d.target.as_deref().unwrap_or("none")
        ),
    }
}
