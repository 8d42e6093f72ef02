//! `check`: the integrity problems a failed migration leaves besides wrong rows, read-only.
//!
//! Where verify compares rows, check looks at the rules the rows should obey. On the target, in
//! one `REPEATABLE READ READ ONLY` snapshot ([`Source::open`]): constraints not validated and the
//! rows that violate them, orphans under every foreign key, sequences behind the columns they
//! feed. With a base (the known-good schema): where the missing parents of those orphans can be
//! restored from (up the foreign-key chain, [`parents`]), columns the base has NOT NULL that hold
//! NULLs on the target, unique keys whose index the target lost and that now hold duplicates, and
//! the schema drift with the DDL that puts the base's version back ([`drift`]). The catalog is
//! read by [`catalog`], the rows by [`scan`]; [`report`] is what comes out. `recover` runs the
//! same [`inspect`] on its own snapshots and turns the findings into fix-ups ([`fixup`]).
//!
//! # JSON schema `pgsalvage.check/2`
//! ```text
//! { "format": "pgsalvage.check/2",
//!   "verdict": "clean" | "problems", "exit_code": 0 | 1,
//!   "sources": { "target": { snapshot info as in the verify report }, "base": { … } },
//!   "not_validated": [ { "table": "public.items", "constraint": "items_qty_check",
//!       "kind": "check" | "foreign_key" | "not_null" | …, "definition": "CHECK ((qty >= 0))",
//!       "violations": <rows> | null } ],          // null: a kind not checked by rows (exclusion)
//!   "orphans": [ { "table": "public.children", "constraint": "children_parent_fk",
//!       "columns": ["parent_id"], "parent": "public.parents", "parent_columns": ["id"],
//!       "validated": false, "orphans": <rows>,
//!       "missing_parents": 3, "parent_keys": [[3], [5]],   // capped, in the values' text order
//!       "restorable_parents": 3 | null, "unrestorable_parents": 0 | null } ],   // null: no base
//!   "parent_restores": [ { "table": "public.parents", "columns": ["id"], "rows": 3,
//!       "keys": [[3], [5], [9]], "keys_truncated": false, "unresolved": 0 } ],  // whole chain,
//!                                                             // keys in the values' text order
//!   "sequences": [ { "sequence": "public.items_id_seq", "last_value": 10 | null, "next_value": 11,
//!       "columns": [ { "table": "public.items", "column": "id", "max": 30 } ], "max": 30,
//!       "base_last_value": 40 | null, "setval": 40 } ],
//!   "not_null": [ { "table": "public.items", "column": "status", "nulls": <rows> } ],
//!   "duplicates": [ { "table": "public.items", "name": "items_code_key", "columns": ["code"],
//!       "duplicates": <rows>, "groups": 1, "values": [["code1"]] } ],
//!   "drift": [ { "object": "table" | "column" | "constraint" | "index" | "sequence",
//!       "change": "missing" | "extra" | "different", "table": "public.items",   // when inside one
//!       "name": "legacy", "aspect": "type" | "nullability" | "default" | "generation"
//!       | "definition",                                   // only for "different"
//!       "base": "text" | null, "target": "…" | null, "ddl": [ "ALTER TABLE …" ] } ],
//!   "totals": { "not_validated": n, "violating_rows": n, "foreign_keys_with_orphans": n,
//!       "orphans": n, "restorable_parents": n, "sequences_behind": n,
//!       "not_null_columns_with_nulls": n, "duplicate_groups": n, "drift": n },
//!   "max_keys": 1000, "elapsed_ms": 12 }
//!
//! <rows> = { "key_columns": ["id"], "rows": 15, "keys": [[2], [4]], "keys_truncated": false }
//! ```
//! Counts are exact; `keys` lists at most `max_keys` rows, in key order. A row's key is the
//! table's `--key` columns, else its primary key, else the rule's columns (which name the
//! offending values rather than the row: give a table without a primary key a `--key`). Keys
//! are JSON arrays of exact values as in the verify report: integers and numerics as JSON
//! numbers digit for digit, everything else as strings in PostgreSQL's text form (UTC, ISO
//! dates). Without a base, `parent_restores`, `not_null`, `duplicates` and `drift` are empty.
//! Exit status 0 clean, 1 problems, 2 error.
//!
//! Version 2 adds, at the top level, `tool` (name, version, commit, build date), `command_line`
//! (passwords elided) and `timings` (start, phases, total): see `report::provenance`.

pub mod catalog;
pub mod drift;
pub mod parents;
pub mod report;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use tokio_postgres::Client;

use crate::error::{Error, Result};
pub use crate::settings::CheckSettings;
use crate::settings::TableFilter;
use crate::shape::TableName;
use crate::source::{Role, Source};
use catalog::{ConstraintDef, ConstraintKind, ForeignKey, Schema, TableDef};
use parents::{ParentRows, Seed};
use report::{
    CheckReport, CheckTotals, CheckVerdict, ConstraintFinding, DuplicateFinding, NullFinding,
    OrphanFinding, ParentRestore, RowList, SequenceColumn, SequenceFinding, FORMAT,
};
use scan::{forms, key_columns, tuple_json, violation_condition, violations, Tuple, Violation};

/// What [`inspect`] found, with the schemas (every table, whatever the filter) and parent chain
/// the fix-ups build on.
pub struct Inspection {
    pub report: CheckReport,
    pub target: Schema,
    pub base: Option<Schema>,
    pub parents: Vec<ParentRows>,
}

/// Opens the sources on their snapshots and inspects the target.
pub async fn check(settings: &CheckSettings) -> Result<CheckReport> {
    let started = Instant::now();
    crate::log::phase("checking integrity");
    let target = Source::open(Role::Target, settings.target.clone()).await?;
    let base = match &settings.base {
        Some(info) => Some(Source::open(Role::Base, info.clone()).await?),
        None => None,
    };
    // Read in snapshot sessions whose lock waits are bounded: a table locked by a migration
    // fails the check after a while, naming it, instead of hanging it.
    let lock_wait = crate::settings::LiveLimits::default().lock_wait;
    let target_session = target.snapshot_session(lock_wait).await?;
    let base_session = match &base {
        Some(b) => Some(b.snapshot_session(lock_wait).await?),
        None => None,
    };
    let found = inspect_keyed(
        &target_session,
        base_session.as_deref(),
        &settings.filter,
        &settings.keys,
        settings.max_keys,
    )
    .await?;
    let mut report = found.report;
    report.sources.insert(Role::Target, target.snapshot.clone());
    if let Some(b) = &base {
        report.sources.insert(Role::Base, b.snapshot.clone());
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Every check on `target` (and against `base`), on whatever snapshot the sessions are in.
pub async fn inspect(
    target: &Client,
    base: Option<&Client>,
    filter: &TableFilter,
    max_keys: usize,
) -> Result<Inspection> {
    inspect_keyed(target, base, filter, &HashMap::new(), max_keys).await
}

/// [`inspect`], the rows of the tables in `keys` named by those columns (`--key`) in findings.
pub async fn inspect_keyed(
    target: &Client,
    base: Option<&Client>,
    filter: &TableFilter,
    keys: &HashMap<TableName, Vec<String>>,
    max_keys: usize,
) -> Result<Inspection> {
    let mut target_all = catalog::read_schema(target)
        .await
        .map_err(|e| e.context("reading the target's schema"))?;
    let base_all = match base {
        Some(client) => Some(
            catalog::read_schema(client)
                .await
                .map_err(|e| e.context("reading the base's schema"))?,
        ),
        None => None,
    };
    set_row_keys(&mut target_all, base_all.as_ref(), keys)?;
    // A named table that exists nowhere must not read as "clean".
    for wanted in filter.tables.iter().flatten() {
        let somewhere = target_all.table(wanted).is_some()
            || base_all.as_ref().is_some_and(|b| b.table(wanted).is_some());
        if !somewhere {
            let sides = if base.is_some() {
                "target or base"
            } else {
                "target"
            };
            return Err(Error::usage(format!("table {wanted} not found on {sides}"))
                .with_hint("check the name (schema.table); list tables with psql's \\dt"));
        }
    }
    // The filter says which tables are checked; parents are followed wherever they are.
    let scoped = |s: &Schema, base: bool| {
        let mut s = s.clone();
        s.retain(|n| filter.accepts(n));
        narrow_columns(&mut s, filter, base);
        s
    };
    let ts = scoped(&target_all, false);
    let bs = base_all.as_ref().map(|b| scoped(b, true));
    if ts.tables.is_empty() && bs.as_ref().is_none_or(|b| b.tables.is_empty()) {
        let sides = if base.is_some() {
            "target or base"
        } else {
            "target"
        };
        return Err(filter.matched_nothing(sides));
    }
    let mut report = empty_report(max_keys);
    for table in ts.tables.values() {
        constraint_findings(target, table, max_keys, &mut report).await?;
    }
    let mut parents = Vec::new();
    if let (Some(client), Some(bs), Some(base_all)) = (base, &bs, &base_all) {
        let added = added_fk_seeds(target, bs, &ts, &target_all).await?;
        parents = parent_chain(client, target, (base_all, &target_all), added, &mut report).await?;
        report.not_null = null_findings(target, bs, &ts, max_keys).await?;
        report.duplicates = duplicate_findings(target, bs, &ts, max_keys).await?;
        report.drift = drift::diff(bs, &ts);
    }
    report.sequences = sequence_findings(target, &ts, bs.as_ref()).await?;
    report.conclude();
    Ok(Inspection {
        report,
        target: target_all,
        base: base_all,
        parents,
    })
}

/// `--key`: the columns that name the rows of a table in findings (only the target's rows are
/// listed). A key over columns the target's table lacks, or for a table on neither side, is a
/// mistake said before any row is read, as verify says it.
fn set_row_keys(
    target: &mut Schema,
    base: Option<&Schema>,
    keys: &HashMap<TableName, Vec<String>>,
) -> Result<()> {
    for (name, cols) in keys {
        let Some(table) = target.tables.get_mut(name) else {
            if base.is_some_and(|b| b.table(name).is_some()) {
                continue;
            }
            return Err(Error::usage(format!("--key names table {name}, not found"))
                .with_hint("check the name (schema.table); list tables with psql's \\dt"));
        };
        if let Some(missing) = cols.iter().find(|c| table.column(c).is_none()) {
            return Err(Error::usage(format!(
                "key column {missing} of table {name} does not exist on the target"
            ))
            .with_hint(format!("name its columns: --key {name}=col1,col2")));
        }
        table.row_key = Some(cols.clone());
    }
    Ok(())
}

/// `--exclude-columns` and `--map-column` as the comparison reads them: excluded columns are
/// no drift and hold no findings; on the base, a mapped column goes by its new name.
fn narrow_columns(schema: &mut Schema, filter: &TableFilter, base: bool) {
    for (name, table) in schema.tables.iter_mut() {
        if let Some(excluded) = filter.exclude_columns.get(name) {
            table.columns.retain(|c| !excluded.contains(&c.name));
        }
        let mapped = filter.map_columns.get(name).filter(|_| base);
        for (old, new) in mapped.into_iter().flatten() {
            if let Some(c) = table.columns.iter_mut().find(|c| &c.name == old) {
                c.name = new.clone();
            }
        }
    }
}

fn empty_report(max_keys: usize) -> CheckReport {
    CheckReport {
        format: FORMAT,
        verdict: CheckVerdict::Clean,
        exit_code: 0,
        sources: BTreeMap::new(),
        not_validated: Vec::new(),
        orphans: Vec::new(),
        parent_restores: Vec::new(),
        sequences: Vec::new(),
        not_null: Vec::new(),
        duplicates: Vec::new(),
        drift: Vec::new(),
        totals: CheckTotals::default(),
        max_keys,
        elapsed_ms: 0,
    }
}

/// Constraints not validated, with their violating rows, and orphans under every foreign key
/// (one scan per foreign key serves both).
async fn constraint_findings(
    client: &Client,
    table: &TableDef,
    max_keys: usize,
    report: &mut CheckReport,
) -> Result<()> {
    for con in &table.constraints {
        let fk = con.kind == ConstraintKind::ForeignKey;
        if con.validated && !fk {
            continue;
        }
        let key = key_columns(table, &con.columns);
        let values = if fk { con.columns.clone() } else { Vec::new() };
        let rows = match violation_condition(table, con) {
            Some(cond) => Some(violations(client, table, &key, &values, &cond).await?.rows),
            None => None,
        };
        let list = |all: Vec<_>| RowList::new(key.clone(), &forms(table, &key), all, max_keys);
        if !con.validated {
            let violations = rows.clone().map(list);
            report
                .not_validated
                .push(not_validated(table, con, violations));
        }
        let (Some(rows), Some(foreign)) = (rows, &con.foreign) else {
            continue;
        };
        if rows.is_empty() {
            continue;
        }
        let orphans = list(rows);
        let finding = orphan_finding(table, con, foreign, orphans, max_keys);
        report.orphans.push(finding);
    }
    Ok(())
}

/// The finding of a constraint the target holds `NOT VALID`.
fn not_validated(
    table: &TableDef,
    con: &ConstraintDef,
    violations: Option<RowList>,
) -> ConstraintFinding {
    ConstraintFinding {
        table: table.name.to_string(),
        table_name: table.name.clone(),
        constraint: con.name.clone(),
        kind: con.kind,
        definition: con.definition.clone(),
        violations,
    }
}

/// The distinct parent keys orphans reference; a key with a NULL in it references nothing.
fn parent_keys(rows: &[Violation]) -> BTreeSet<Tuple> {
    rows.iter()
        .map(|r| r.values.clone())
        .filter(|v| v.iter().all(Option::is_some))
        .collect()
}

/// The finding of a foreign key's orphans; the base's part (restorable or not) comes later.
fn orphan_finding(
    table: &TableDef,
    con: &ConstraintDef,
    foreign: &ForeignKey,
    orphans: RowList,
    max_keys: usize,
) -> OrphanFinding {
    let parent_keys = parent_keys(&orphans.all);
    let value_forms = forms(table, &con.columns);
    OrphanFinding {
        table: table.name.to_string(),
        table_name: table.name.clone(),
        constraint: con.name.clone(),
        columns: con.columns.clone(),
        parent: foreign.parent.to_string(),
        parent_name: foreign.parent.clone(),
        parent_columns: foreign.parent_columns.clone(),
        validated: con.validated,
        missing_parents: parent_keys.len() as u64,
        parent_keys: parent_keys
            .iter()
            .take(max_keys)
            .map(|k| tuple_json(k, &value_forms))
            .collect(),
        orphans,
        restorable_parents: None,
        unrestorable_parents: None,
    }
}

/// The missing parents of every orphan, looked up on the base up the chain.
///
/// `added` are the parents missing under the base's foreign keys the target lost: the fix-ups
/// add those constraints back, so their parents are restored too.
async fn parent_chain(
    base: &Client,
    target: &Client,
    (bs, ts): (&Schema, &Schema),
    added: Vec<Seed>,
    report: &mut CheckReport,
) -> Result<Vec<ParentRows>> {
    let seeds: Vec<Seed> = report.orphans.iter().map(seed_of).collect();
    let all = seeds.iter().cloned().chain(added).collect();
    let chain = parents::resolve(base, target, bs, ts, all).await?;
    for (o, seed) in report.orphans.iter_mut().zip(&seeds) {
        let entry = chain
            .iter()
            .find(|p| p.table == seed.table && p.columns == seed.columns);
        let restorable = seed
            .tuples
            .iter()
            .filter(|t| entry.is_some_and(|e| e.restore.contains(*t)))
            .count() as u64;
        o.restorable_parents = Some(restorable);
        o.unrestorable_parents = Some(seed.tuples.len() as u64 - restorable);
    }
    report.parent_restores = chain
        .iter()
        .filter(|p| !p.restore.is_empty())
        .map(|p| {
            let forms = bs
                .table(&p.table)
                .map(|t| forms(t, &p.columns))
                .unwrap_or_default();
            let mut sorted: Vec<&Vec<String>> = p.restore.iter().collect();
            sorted.sort_by(|a, b| key_order(a, b));
            let tuples: Vec<Vec<Option<String>>> = sorted
                .into_iter()
                .map(|t| t.iter().cloned().map(Some).collect())
                .collect();
            ParentRestore {
                table: p.table.to_string(),
                columns: p.columns.clone(),
                rows: p.restore.len() as u64,
                keys: tuples
                    .iter()
                    .take(report.max_keys)
                    .map(|t| tuple_json(t, &forms))
                    .collect(),
                keys_truncated: tuples.len() > report.max_keys,
                unresolved: p.unresolved.len() as u64,
            }
        })
        .collect();
    Ok(chain)
}

/// Keys as their values order, not their texts: numbers by value (`[1444]` before `[14262]`),
/// anything else by its bytes, column after column.
fn key_order(a: &[String], b: &[String]) -> std::cmp::Ordering {
    let value = |x: &String, y: &String| {
        if let (Ok(i), Ok(j)) = (x.parse::<i128>(), y.parse::<i128>()) {
            return i.cmp(&j);
        }
        match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(f), Ok(g)) if f.is_finite() && g.is_finite() => {
                f.partial_cmp(&g).unwrap_or(std::cmp::Ordering::Equal)
            }
            _ => x.as_bytes().cmp(y.as_bytes()),
        }
    };
    a.iter()
        .zip(b)
        .map(|(x, y)| value(x, y))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// Parent keys the target's rows reference under the base's foreign keys the target lacks.
async fn added_fk_seeds(
    client: &Client,
    bs: &Schema,
    ts: &Schema,
    target_all: &Schema,
) -> Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    for (name, bt) in &bs.tables {
        let Some(tt) = ts.table(name) else { continue };
        for (con, fk) in bt.foreign_keys() {
            let on_target = tt.constraint(&con.name).is_some();
            let parent = target_all.table(&fk.parent);
            let parent_columns =
                parent.is_some_and(|p| fk.parent_columns.iter().all(|c| p.column(c).is_some()));
            if on_target || !parent_columns || con.columns.iter().any(|c| tt.column(c).is_none()) {
                continue;
            }
            let cond = scan::orphan_condition(fk, &con.columns);
            let rows = violations(client, tt, &[], &con.columns, &cond).await?.rows;
            let tuples: BTreeSet<Vec<String>> = rows
                .into_iter()
                .filter_map(|r| r.values.into_iter().collect())
                .collect();
            if !tuples.is_empty() {
                seeds.push(Seed {
                    table: fk.parent.clone(),
                    columns: fk.parent_columns.clone(),
                    tuples,
                });
            }
        }
    }
    Ok(seeds)
}

fn seed_of(o: &OrphanFinding) -> Seed {
    let tuples = o
        .orphans
        .all
        .iter()
        .filter_map(|r| r.values.iter().cloned().collect::<Option<Vec<String>>>())
        .collect();
    Seed {
        table: o.parent_name.clone(),
        columns: o.parent_columns.clone(),
        tuples,
    }
}

/// Sequences whose next value is not above the largest value of a column they feed.
async fn sequence_findings(
    client: &Client,
    ts: &Schema,
    bs: Option<&Schema>,
) -> Result<Vec<SequenceFinding>> {
    let mut out = Vec::new();
    // Descending sequences and those this session cannot read are not judged.
    for seq in ts
        .sequences
        .values()
        .filter(|s| s.increment > 0 && s.readable)
    {
        let mut columns = Vec::new();
        for (table, column) in seq.users.iter().filter(|(t, _)| ts.table(t).is_some()) {
            let max = scan::column_max(client, table, column).await?;
            columns.push(SequenceColumn {
                table: table.to_string(),
                column: column.clone(),
                max,
            });
        }
        let Some(max) = columns.iter().filter_map(|c| c.max).max() else {
            continue;
        };
        if max < seq.next_value() {
            continue;
        }
        let base_last_value = bs
            .and_then(|b| b.sequences.get(&seq.name))
            .and_then(|s| s.last_value);
        out.push(SequenceFinding {
            sequence: seq.name.to_string(),
            name: seq.name.clone(),
            last_value: seq.last_value,
            next_value: seq.next_value(),
            columns,
            max,
            base_last_value,
            setval: base_last_value.map_or(max, |b| b.max(max)),
        });
    }
    Ok(out)
}

/// Columns NOT NULL on the base, nullable on the target, holding NULLs there.
async fn null_findings(
    client: &Client,
    bs: &Schema,
    ts: &Schema,
    max_keys: usize,
) -> Result<Vec<NullFinding>> {
    let mut out = Vec::new();
    for (name, bt) in &bs.tables {
        let Some(tt) = ts.table(name) else { continue };
        for bc in bt.columns.iter().filter(|c| c.not_null) {
            if tt.column(&bc.name).is_none_or(|c| c.not_null) {
                continue;
            }
            let key = key_columns(tt, &[]);
            let cond = scan::null_condition(&bc.name);
            let rows = violations(client, tt, &key, &[], &cond).await?.rows;
            if !rows.is_empty() {
                out.push(NullFinding {
                    table: name.to_string(),
                    table_name: name.clone(),
                    column: bc.name.clone(),
                    nulls: RowList::new(key.clone(), &forms(tt, &key), rows, max_keys),
                });
            }
        }
    }
    Ok(out)
}

/// The base's unique rules (constraint or index name, columns).
fn unique_rules(t: &TableDef) -> Vec<(String, Vec<String>)> {
    let mut rules: Vec<(String, Vec<String>)> = t
        .constraints
        .iter()
        .filter(|c| matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique))
        .map(|c| (c.name.clone(), c.columns.clone()))
        .collect();
    for i in t
        .indexes
        .iter()
        .filter(|i| i.unique && i.constraint.is_none())
    {
        if let Some(cols) = &i.columns {
            rules.push((i.name.clone(), cols.clone()));
        }
    }
    rules
}

/// Whether the target still enforces uniqueness of `cols` (any valid unique index on them).
fn enforced(tt: &TableDef, name: &str, cols: &[String]) -> bool {
    let same = |c: &Vec<String>| {
        let (mut a, mut b) = (c.clone(), cols.to_vec());
        a.sort();
        b.sort();
        a == b
    };
    tt.constraint(name).is_some()
        || tt.index(name).is_some()
        || tt
            .indexes
            .iter()
            .any(|i| i.unique && i.valid && i.columns.as_ref().is_some_and(same))
}

/// Unique rules of the base the target no longer enforces, whose columns hold duplicates.
async fn duplicate_findings(
    client: &Client,
    bs: &Schema,
    ts: &Schema,
    max_keys: usize,
) -> Result<Vec<DuplicateFinding>> {
    let mut out = Vec::new();
    for (name, bt) in &bs.tables {
        let Some(tt) = ts.table(name) else { continue };
        for (rule, cols) in unique_rules(bt) {
            if enforced(tt, &rule, &cols) || cols.iter().any(|c| tt.column(c).is_none()) {
                continue;
            }
            let key = key_columns(tt, &cols);
            let cond = scan::duplicate_condition(name, &cols);
            let rows = violations(client, tt, &key, &cols, &cond).await?.rows;
            if rows.is_empty() {
                continue;
            }
            let groups: BTreeSet<Vec<Option<String>>> =
                rows.iter().map(|r| r.values.clone()).collect();
            let value_forms = forms(tt, &cols);
            out.push(DuplicateFinding {
                table: name.to_string(),
                table_name: name.clone(),
                name: rule,
                columns: cols,
                groups: groups.len() as u64,
                values: groups
                    .iter()
                    .take(max_keys)
                    .map(|g| tuple_json(g, &value_forms))
                    .collect(),
                duplicates: RowList::new(key.clone(), &forms(tt, &key), rows, max_keys),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod key_order_tests {
    use super::key_order;

    #[test]
    fn keys_order_by_value() {
        let mut keys: Vec<Vec<String>> = [
            ["14262", "b"],
            ["1444", "b"],
            ["1444", "a"],
            ["-3", "z"],
            ["2.5", "a"],
        ]
        .iter()
        .map(|k| k.iter().map(|s| s.to_string()).collect())
        .collect();
        keys.sort_by(|a, b| key_order(a, b));
        let flat: Vec<String> = keys.iter().map(|k| k.join(",")).collect();
        assert_eq!(flat, ["-3,z", "2.5,a", "1444,a", "1444,b", "14262,b"]);
    }
}
