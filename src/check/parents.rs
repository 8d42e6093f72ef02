//! Missing parents, followed up the foreign-key chain across the two databases.
//!
//! An orphan's parent key is looked up on the base; a parent found there can be restored, but it
//! has foreign keys of its own, and the rows they reference may be missing on the target too (a
//! failed migration that deleted from the top of a hierarchy). So each restorable parent's own
//! references are checked on the target, and the missing ones looked up on the base in turn, until
//! nothing new turns up. The result is, per parent table and identifying columns, the keys to
//! restore from the base and the keys found on neither side (those orphans need a person).
//! Foreign keys followed are the target's and, for tables the base defines, the base's: the
//! fix-ups add the base's missing constraints, so their references must hold too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tokio_postgres::Client;

use super::catalog::{ForeignKey, Schema};
use super::scan::{rows_by, Tuple};
use crate::error::Result;
use crate::shape::TableName;

/// Rows of one parent table, named by the columns a foreign key references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentRows {
    pub table: TableName,
    pub columns: Vec<String>,
    /// Keys found on the base: restore them.
    pub restore: BTreeSet<Vec<String>>,
    /// Keys referenced but found on neither side.
    pub unresolved: BTreeSet<Vec<String>>,
}

/// Parent keys missing on the target, to look up on the base.
#[derive(Clone, Debug)]
pub struct Seed {
    pub table: TableName,
    pub columns: Vec<String>,
    pub tuples: BTreeSet<Vec<String>>,
}

/// Every foreign key of `table` the restored rows must satisfy: (columns, reference).
fn references(base: &Schema, target: &Schema, table: &TableName) -> Vec<(Vec<String>, ForeignKey)> {
    let mut out: Vec<(Vec<String>, ForeignKey)> = Vec::new();
    for schema in [target, base] {
        let Some(t) = schema.table(table) else {
            continue;
        };
        for (con, fk) in t.foreign_keys() {
            let item = (con.columns.clone(), fk.clone());
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    out
}

/// Follows `seeds` up the chain; the result is keyed by (table, columns).
pub async fn resolve(
    base: &Client,
    target: &Client,
    base_schema: &Schema,
    target_schema: &Schema,
    seeds: Vec<Seed>,
) -> Result<Vec<ParentRows>> {
    let sides = Sides {
        base,
        target,
        base_schema,
        target_schema,
    };
    let mut out: BTreeMap<(TableName, Vec<String>), ParentRows> = BTreeMap::new();
    let mut queue: VecDeque<Seed> = seeds.into();
    while let Some(seed) = queue.pop_front() {
        let entry = out
            .entry((seed.table.clone(), seed.columns.clone()))
            .or_insert_with(|| ParentRows {
                table: seed.table.clone(),
                columns: seed.columns.clone(),
                restore: BTreeSet::new(),
                unresolved: BTreeSet::new(),
            });
        let new = unseen(&seed, entry);
        if new.is_empty() {
            continue;
        }
        queue.extend(sides.follow(&seed, entry, new).await?);
    }
    Ok(out
        .into_values()
        .filter(|p| !p.restore.is_empty() || !p.unresolved.is_empty())
        .collect())
}

/// The keys of a seed not yet sorted into found or not: each key is looked up once.
fn unseen(seed: &Seed, entry: &ParentRows) -> BTreeSet<Vec<String>> {
    seed.tuples
        .iter()
        .filter(|t| !entry.restore.contains(*t) && !entry.unresolved.contains(*t))
        .cloned()
        .collect()
}

/// The two databases the chain is followed across, with their schemas.
struct Sides<'a> {
    base: &'a Client,
    target: &'a Client,
    base_schema: &'a Schema,
    target_schema: &'a Schema,
}

impl Sides<'_> {
    /// Looks the `new` keys of a seed up on the base, sorts them in `entry` into found and not,
    /// and returns the seeds of the parents the found rows reference and the target lacks.
    async fn follow(
        &self,
        seed: &Seed,
        entry: &mut ParentRows,
        new: BTreeSet<Vec<String>>,
    ) -> Result<Vec<Seed>> {
        let Some(table) = self.base_schema.table(&seed.table) else {
            entry.unresolved.extend(new);
            return Ok(Vec::new());
        };
        let refs: Vec<_> = references(self.base_schema, self.target_schema, &seed.table)
            .into_iter()
            .filter(|(cols, _)| cols.iter().all(|c| table.column(c).is_some()))
            .collect();
        let select: Vec<String> = refs.iter().flat_map(|(c, _)| c.clone()).collect();
        let rows = rows_by(self.base, table, &seed.columns, &new, &select).await?;
        let found: BTreeSet<Vec<String>> = rows.iter().map(|(k, _)| k.clone()).collect();
        entry.unresolved.extend(new.difference(&found).cloned());
        entry.restore.extend(found);
        self.missing_parents(&refs, &rows).await
    }

    /// Per reference, the parent keys `rows` hold (their selected columns, in `refs` order) that
    /// the target lacks, as seeds.
    async fn missing_parents(
        &self,
        refs: &[(Vec<String>, ForeignKey)],
        rows: &[(Vec<String>, Tuple)],
    ) -> Result<Vec<Seed>> {
        let mut seeds = Vec::new();
        let mut offset = 0;
        for (cols, fk) in refs {
            // MATCH SIMPLE: a reference with a NULL in it points nowhere.
            let wanted: BTreeSet<Vec<String>> = rows
                .iter()
                .filter_map(|(_, v)| v[offset..offset + cols.len()].iter().cloned().collect())
                .collect();
            offset += cols.len();
            let missing = missing_on_target(self.target, self.target_schema, fk, wanted).await?;
            if !missing.is_empty() {
                seeds.push(Seed {
                    table: fk.parent.clone(),
                    columns: fk.parent_columns.clone(),
                    tuples: missing,
                });
            }
        }
        Ok(seeds)
    }
}

/// The tuples of `wanted` that no row of the reference's parent holds on the target.
async fn missing_on_target(
    target: &Client,
    schema: &Schema,
    fk: &ForeignKey,
    wanted: BTreeSet<Vec<String>>,
) -> Result<BTreeSet<Vec<String>>> {
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let Some(parent) = schema.table(&fk.parent) else {
        return Ok(wanted);
    };
    let rows = rows_by(target, parent, &fk.parent_columns, &wanted, &[]).await?;
    let present: BTreeSet<Vec<String>> = rows.into_iter().map(|(k, _)| k).collect();
    Ok(wanted.difference(&present).cloned().collect())
}
