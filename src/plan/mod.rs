//! The table plan: what will be compared, decided before any row is read.
//!
//! [`reconcile`] (in [`table`]) lines one table's shapes up across sources into a [`TablePlan`]
//! (key, compared columns, per-source codecs, schema differences; [`key`] chooses the key). A
//! [`TableRun`] adds what the run needs on top: the key ranges the table is cut into, the size of
//! its checksum trees, and the restore options of recover runs. Everything here is pure: the
//! sampling of key boundaries and the checks of keys in the snapshots, which need a session, live
//! in `source::sample` and `source::key_check`, and the planning of ranges from those boundaries
//! in `key::range`.

pub mod key;
pub mod narrow;
pub mod shards;
pub mod table;

use std::collections::{BTreeMap, HashMap};

pub use key::KeyOrigin;
pub use table::{reconcile, SchemaDiff, TablePlan};

use crate::error::{Error, Result};
use crate::key::range::KeyRange;
use crate::role::Role;
use crate::shape::{TableName, TableShape};

/// A table that will be compared: its plan, its ranges, its tree shape.
#[derive(Debug)]
pub struct TableRun {
    pub plan: TablePlan,
    pub ranges: Vec<KeyRange>,
    pub tree_bits: u8,
    /// Recover runs with `--columns`: which compared columns divergent rows restore.
    pub restore_mask: Option<Vec<bool>>,
    /// Recover runs with `--changed-after`: the predicate marking target rows written after the
    /// replica (kept, never overwritten).
    pub changed_after: Option<String>,
    /// `--narrow`: the run that reads this table as keys and row hashes (see [`narrow`]).
    pub narrow: Option<Box<TableRun>>,
}

/// Turns `--columns` into per-table masks over the compared columns.
pub fn restore_masks(
    tables: &mut [TableRun],
    columns: &HashMap<TableName, Vec<String>>,
    changed_after: &HashMap<TableName, String>,
) -> Result<()> {
    for (name, cols) in columns {
        let run = tables
            .iter_mut()
            .find(|t| &t.plan.name == name)
            .ok_or_else(|| {
                Error::usage(format!(
                    "--columns names table {name}, which is not compared"
                ))
            })?;
        let mut mask = vec![false; run.plan.columns.len()];
        for col in cols {
            let i = run
                .plan
                .columns
                .iter()
                .position(|c| c == col)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "--columns: column {col} of {name} is not a compared column"
                    ))
                    .with_hint("name columns that exist on both sides with comparable types")
                })?;
            mask[i] = true;
        }
        run.restore_mask = Some(mask);
    }
    for (name, predicate) in changed_after {
        let run = tables
            .iter_mut()
            .find(|t| &t.plan.name == name)
            .ok_or_else(|| {
                Error::usage(format!(
                    "--changed-after names table {name}, which is not compared"
                ))
            })?;
        run.changed_after = Some(predicate.clone());
    }
    Ok(())
}

/// What a run's table filter (`settings::TableFilter::narrowing`) asks of one table.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Narrowing {
    /// `--exclude-columns`.
    pub excluded: Vec<String>,
    /// `--map-column`: (the base's old name, the new name).
    pub mapped: Vec<(String, String)>,
    /// `--where`.
    pub rows: Option<String>,
}

/// [`reconcile`] within a run's narrowing: `--exclude-columns` taken out of every source's
/// shape (so they are neither compared nor reported as differences), `--map-column` renaming the
/// base's old column to its new name (so the two compare by value; the base's reads select the
/// old name, see [`TablePlan::select_list_on`]), and the `--where` predicate kept for every read.
pub fn narrowed(
    narrowing: Narrowing,
    name: &TableName,
    roles: &[Role],
    shapes: &[Option<&TableShape>],
    key_override: Option<&[String]>,
) -> Result<TablePlan> {
    let Narrowing {
        excluded,
        mapped,
        rows,
    } = narrowing;
    let mut owned: Vec<Option<TableShape>> = shapes.iter().map(|s| s.cloned()).collect();
    let key = key_of(&owned, key_override);
    for col in &excluded {
        if key.contains(col) {
            return Err(Error::usage(format!(
                "--exclude-columns: {col} is a key column of {name}"
            ))
            .with_hint("key columns are always compared; choose another key with --key"));
        }
        if !owned.iter().flatten().any(|s| s.column(col).is_some()) {
            return Err(Error::usage(format!(
                "--exclude-columns: no source has column {col} in {name}"
            )));
        }
        for shape in owned.iter_mut().flatten() {
            drop_column(shape, col);
        }
    }
    let base = roles.iter().position(|r| *r == Role::Base);
    let mut renamed = BTreeMap::new();
    for (old, new) in &mapped {
        let shape = base.and_then(|b| owned[b].as_mut());
        rename_column(name, shape, &key, old, new)?;
        renamed.insert(new.clone(), old.clone());
    }
    let refs: Vec<Option<&TableShape>> = owned.iter().map(Option::as_ref).collect();
    let mut plan = reconcile(name, roles, &refs, key_override)?;
    plan.rows = rows;
    plan.excluded_columns = excluded;
    if let Some(b) = base.filter(|_| !renamed.is_empty()) {
        plan.renamed = Some((b, renamed));
    }
    Ok(plan)
}

/// The key a plan will use whatever is narrowed: the override, or the reference's primary key.
/// (A unique index's key is chosen after narrowing, among the indexes whose columns remain.)
fn key_of(shapes: &[Option<TableShape>], key_override: Option<&[String]>) -> Vec<String> {
    if let Some(k) = key_override {
        return k.to_vec();
    }
    let reference = shapes.iter().flatten().next();
    reference
        .map(|s| s.key.iter().map(|&i| s.columns[i].name.clone()).collect())
        .unwrap_or_default()
}

/// Removes a column from a shape, keeping the key's indexes pointing at their columns.
fn drop_column(shape: &mut TableShape, col: &str) {
    let Some((at, _)) = shape.column(col) else {
        return;
    };
    shape.columns.remove(at);
    shape.unique.retain(|u| !u.columns.iter().any(|c| c == col));
    shape.key.retain(|&k| k != at);
    for k in &mut shape.key {
        *k -= usize::from(*k > at);
    }
}

/// `--map-column old=new` on the base's shape: its column `old` goes by `new`.
fn rename_column(
    name: &TableName,
    base: Option<&mut TableShape>,
    key: &[String],
    old: &str,
    new: &str,
) -> Result<()> {
    let flag = format!("--map-column {name}:{old}={new}");
    if key.iter().any(|k| k == old || k == new) {
        return Err(Error::usage(format!(
            "{flag}: a key column cannot be mapped"
        )));
    }
    let Some(base) = base else {
        return Err(Error::usage(format!(
            "{flag}: the base has no table {name}"
        )));
    };
    if base.column(new).is_some() {
        return Err(Error::usage(format!(
            "{flag}: the base already has a column {new}"
        )));
    }
    let col = base
        .columns
        .iter_mut()
        .find(|c| c.name == old)
        .ok_or_else(|| Error::usage(format!("{flag}: the base has no column {old}")))?;
    col.name = new.to_string();
    // Key columns go by one name on every source (ranges, samples and fetches name them so):
    // an index over the mapped column keys nothing.
    base.unique.retain(|u| !u.columns.iter().any(|c| c == old));
    Ok(())
}

/// Ranges of about 200k rows, at least two per worker for large tables so the workers stay busy
/// till the end; small tables stay whole.
pub fn ranges_for(est_rows: u64, jobs: usize) -> usize {
    const ROWS_PER_RANGE: u64 = 200_000;
    if est_rows < 50_000 {
        return 1;
    }
    let by_size = est_rows.div_ceil(ROWS_PER_RANGE) as usize;
    by_size.max(jobs * 2).min(4096)
}

/// About 32 rows per leaf, between 2^4 and 2^12 leaves. The cap keeps a range's trees (one per
/// source, 40 bytes a leaf) inside the CPU's L2 cache: every row adds to a random leaf, and with
/// 2^16 leaves those adds were cache misses that cost more than hashing the row.
pub fn tree_bits_for(est_rows: u64) -> u8 {
    let leaves = (est_rows / 32).max(1);
    (64 - leaves.leading_zeros()).clamp(4, 12) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{Column, TypeKind, UniqueIndex};

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: "integer".into(),
            family: TypeKind::Int(4).family("integer"),
            kind: TypeKind::Int(4),
            not_null: true,
            bytewise: false,
            generated: false,
            identity_always: false,
        }
    }

    /// `public.t (a, b, v)` without a primary key, `a` unique.
    fn shape() -> TableShape {
        TableShape {
            name: TableName::new("public", "t"),
            columns: vec![column("a"), column("b"), column("v")],
            key: Vec::new(),
            est_rows: 0,
            never_analyzed: false,
            parents: Vec::new(),
            unique: vec![UniqueIndex {
                name: "t_a_key".into(),
                columns: vec!["a".into()],
                nulls_not_distinct: false,
            }],
        }
    }

    fn plan(narrowing: Narrowing) -> TablePlan {
        let s = shape();
        let roles = [Role::Base, Role::Target];
        narrowed(narrowing, &s.name, &roles, &[Some(&s), Some(&s)], None).unwrap()
    }

    #[test]
    fn a_unique_index_over_an_excluded_or_mapped_column_keys_nothing() {
        assert_eq!(plan(Narrowing::default()).key(), ["a"]);
        let excluded = plan(Narrowing {
            excluded: vec!["a".into()],
            ..Narrowing::default()
        });
        assert!(excluded.keyless(), "{:?}", excluded.columns);
        // The base's column a is the target's x, each unique: a key over it would go by two
        // names, which the reads of a key do not follow.
        let mut target = shape();
        target.columns[0].name = "x".into();
        target.unique[0].columns = vec!["x".into()];
        let s = shape();
        let mapped = narrowed(
            Narrowing {
                mapped: vec![("a".into(), "x".into())],
                ..Narrowing::default()
            },
            &s.name,
            &[Role::Base, Role::Target],
            &[Some(&s), Some(&target)],
            None,
        )
        .unwrap();
        assert!(mapped.keyless());
    }
}
