//! A comparison cut into shards: what `pgsalvage plan --shards N` decides and writes.
//!
//! A [`ShardPlan`] is everything a shard needs to read its part and the merge needs to put the
//! parts together without asking a database again: the sources by role and connection (never a
//! password), the scope flags, every table as its sources' catalogs showed it (each shape with a
//! fingerprint of its columns, key and indexes), how the run narrowed and keyed it, its key
//! ranges cut by sampled size, and which shard reads each range. The tables' plans are rebuilt
//! from these shapes by the same pure functions a single run uses ([`super::narrowed`]), so a
//! shard and the merge hold exactly the plans the planner held. Ranges go to shards largest
//! first, each to the least loaded shard ([`assign`]), so shards read about the same number of
//! rows. The plan is bound to its content by a hash ([`ShardPlan::seal`]): a shard directory
//! names the plan it was read for, and the merge refuses directories of another plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{narrowed, Narrowing, TablePlan, TableRun};
use crate::error::{Error, Result};
use crate::key::range::{KeyBound, KeyRange};
use crate::role::Role;
use crate::shape::{TableName, TableShape};

pub const FORMAT: &str = "pgsalvage.shards/1";

/// The plan of a sharded comparison; see the module doc.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardPlan {
    pub format: String,
    /// blake3 of the plan with this field empty: what shard directories name.
    pub plan_hash: String,
    pub pgsalvage_version: String,
    pub shards: usize,
    /// Each source: its role and its connection as `user@host:port/db`.
    pub sources: Vec<(Role, String)>,
    /// The scope flags, as `TableFilter::describe` and `--key` give them.
    pub filter: String,
    /// The comparison's identity (`Checkpoint::hash_of`): sources, filter and every table's
    /// compared columns, key and decoders.
    pub compare_hash: String,
    /// The run's scope as reports record it (`settings::Scope`).
    pub scope: serde_json::Value,
    /// The scope flags in a form that parses back (`settings::FilterFile`).
    pub filter_flags: serde_json::Value,
    pub tables: Vec<PlannedTable>,
    /// Tables that cannot be compared: (name, message, hint).
    pub refused: Vec<(String, String, Option<String>)>,
}

/// One table of a shard plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlannedTable {
    pub name: TableName,
    /// Per source (in `sources` order): its shape of the table, `None` where it has none.
    pub shapes: Vec<Option<TableShape>>,
    /// Per source: the fingerprint of that shape (empty where it has none).
    pub fingerprints: Vec<String>,
    pub narrowing: Narrowing,
    /// `--key`, if given for this table.
    pub key: Option<Vec<String>>,
    /// Why the table is compared without the key its catalog offers, when its rows in the
    /// planner's snapshots did not bear that key out.
    pub keyless_why: Option<String>,
    pub est_rows: u64,
    pub tree_bits: u8,
    pub ranges: Vec<RangeCut>,
    /// Per range: the shard that reads it.
    pub shard_of: Vec<usize>,
}

/// A key range in a file: its two bounds, either open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeCut(pub Option<BoundCut>, pub Option<BoundCut>);

/// A key bound in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundCut {
    pub literals: Vec<String>,
    /// Hex of the order key.
    pub order_key: String,
    pub display: String,
}

impl RangeCut {
    pub fn of(range: &KeyRange) -> RangeCut {
        RangeCut(
            range.lo.as_deref().map(BoundCut::of),
            range.hi.as_deref().map(BoundCut::of),
        )
    }

    /// The range again; `None` when an order key is not hex.
    pub fn range(&self) -> Option<KeyRange> {
        let bound = |b: &Option<BoundCut>| match b {
            None => Some(None),
            Some(cut) => cut.bound().map(Some),
        };
        Some(KeyRange {
            lo: bound(&self.0)?,
            hi: bound(&self.1)?,
        })
    }
}

impl BoundCut {
    fn of(b: &KeyBound) -> BoundCut {
        BoundCut {
            literals: b.literals.clone(),
            order_key: crate::tree::hex(&b.order_key),
            display: b.display.clone(),
        }
    }

    fn bound(&self) -> Option<Arc<KeyBound>> {
        let mut order_key = Vec::with_capacity(self.order_key.len() / 2);
        crate::tree::unhex_into(&self.order_key, &mut order_key).then_some(())?;
        Some(Arc::new(KeyBound {
            literals: self.literals.clone(),
            order_key,
            display: self.display.clone(),
        }))
    }
}

/// What a shape's fingerprint covers: its columns (names, types, nullability, generation), key,
/// partition parents and unique indexes; not its row estimate, which moves with every ANALYZE.
pub fn fingerprint(shape: &TableShape) -> String {
    let mut stable = shape.clone();
    stable.est_rows = 0;
    stable.never_analyzed = false;
    let text = serde_json::to_vec(&stable).expect("a shape serializes");
    blake3::hash(&text).to_hex()[..32].to_string()
}

/// Deals units of work (with their sizes) to `shards` shards: largest first, each to the shard
/// with the fewest rows so far (the lowest index among equals), so the result depends only on
/// the units. Returns each unit's shard.
pub fn assign(sizes: &[u64], shards: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&u| (std::cmp::Reverse(sizes[u]), u));
    let mut load = vec![0u64; shards.max(1)];
    let mut out = vec![0; sizes.len()];
    for u in order {
        let (shard, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .expect("a shard");
        out[u] = shard;
        load[shard] += sizes[u].max(1);
    }
    out
}

impl PlannedTable {
    /// The entry of a planned and cut table. `shapes` are the raw catalog shapes per source.
    pub fn of(
        run: &TableRun,
        shapes: Vec<Option<TableShape>>,
        narrowing: Narrowing,
        key: Option<Vec<String>>,
    ) -> PlannedTable {
        let keyless_why = match (&run.plan.key_origin, run.plan.keyless()) {
            (super::KeyOrigin::Keyless { why: Some(why) }, true) => Some(why.clone()),
            _ => None,
        };
        PlannedTable {
            name: run.plan.name.clone(),
            fingerprints: shapes
                .iter()
                .map(|s| s.as_ref().map(fingerprint).unwrap_or_default())
                .collect(),
            shapes,
            narrowing,
            key,
            keyless_why,
            est_rows: run.plan.est_rows,
            tree_bits: run.tree_bits,
            ranges: run.ranges.iter().map(RangeCut::of).collect(),
            shard_of: Vec::new(),
        }
    }

    /// The table's plan, rebuilt as the planner built it.
    pub fn plan(&self, roles: &[Role]) -> Result<TablePlan> {
        let shapes: Vec<Option<&TableShape>> = self.shapes.iter().map(Option::as_ref).collect();
        let key = self.key.as_deref();
        let mut plan = narrowed(self.narrowing.clone(), &self.name, roles, &shapes, key)?;
        if let Some(why) = &self.keyless_why {
            if !plan.keyless() {
                plan = plan.without_key(roles, why.clone())?;
            }
        }
        plan.est_rows = self.est_rows;
        Ok(plan)
    }

    /// The table's plan and cut.
    pub fn run(&self, roles: &[Role]) -> Result<TableRun> {
        let ranges = self
            .ranges
            .iter()
            .map(|r| {
                r.range().ok_or_else(|| {
                    Error::usage(format!(
                        "the shard plan's ranges of {} are damaged",
                        self.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TableRun {
            plan: self.plan(roles)?,
            ranges,
            tree_bits: self.tree_bits,
            restore_mask: None,
            changed_after: None,
            narrow: None,
        })
    }
}

impl ShardPlan {
    /// The roles of the plan's sources, in order.
    pub fn roles(&self) -> Vec<Role> {
        self.sources.iter().map(|(r, _)| *r).collect()
    }

    /// Deals the tables' ranges to the shards by their estimated rows.
    pub fn deal(&mut self) {
        let mut units = Vec::new();
        let mut sizes = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            let per_range = table.est_rows / table.ranges.len().max(1) as u64;
            for r in 0..table.ranges.len() {
                units.push((t, r));
                sizes.push(per_range);
            }
        }
        let dealt = assign(&sizes, self.shards);
        for table in &mut self.tables {
            table.shard_of = vec![0; table.ranges.len()];
        }
        for ((t, r), shard) in units.into_iter().zip(dealt) {
            self.tables[t].shard_of[r] = shard;
        }
    }

    /// Sets [`ShardPlan::plan_hash`] to the hash of everything else.
    pub fn seal(&mut self) {
        self.plan_hash = self.content_hash();
    }

    /// Whether the plan is the one its hash names.
    pub fn intact(&self) -> bool {
        self.plan_hash == self.content_hash()
    }

    fn content_hash(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.plan_hash = String::new();
        let text = serde_json::to_vec(&unsealed).expect("a plan serializes");
        blake3::hash(&text).to_hex().to_string()
    }

    /// The units (table, range) shard `shard` reads.
    pub fn units_of(&self, shard: usize) -> Vec<(usize, usize)> {
        let mut units = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            for (r, s) in table.shard_of.iter().enumerate() {
                if *s == shard {
                    units.push((t, r));
                }
            }
        }
        units
    }

    /// Refuses sources (role and `user@host:port/db`) other than the plan's: `who` names the
    /// command given them.
    pub fn check_sources(&self, given: &[(Role, String)], who: &str) -> Result<()> {
        if given == self.sources.as_slice() {
            return Ok(());
        }
        let list = |s: &[(Role, String)]| {
            s.iter()
                .map(|(r, c)| format!("{r} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Error::usage(format!(
            "{who} was given {}, but the plan compares {}",
            list(given),
            list(&self.sources)
        ))
        .with_hint(
            "give it the plan's sources: the same --base, --replica and --target (or --source)",
        ))
    }

    /// The tables the planner could not compare, with why, as a run reports them.
    pub fn refused_tables(&self) -> Result<Vec<(TableName, Error)>> {
        self.refused
            .iter()
            .map(|(name, message, hint)| {
                let table = TableName::parse(name)
                    .ok_or_else(|| Error::usage(format!("the shard plan names table {name:?}")))?;
                let mut e = Error::usage(message.clone());
                if let Some(h) = hint {
                    e = e.with_hint(h.clone());
                }
                Ok((table, e))
            })
            .collect()
    }

    /// `--key` as given, per table.
    pub fn keys(&self) -> std::collections::HashMap<TableName, Vec<String>> {
        self.tables
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.key.clone()?)))
            .collect()
    }

    /// Every table's plan and cut.
    pub fn runs(&self) -> Result<Vec<TableRun>> {
        let roles = self.roles();
        self.tables.iter().map(|t| t.run(&roles)).collect()
    }

    /// Checks the sources' catalogs (per source, in the plan's order) against the plan: the same
    /// tables in scope, each shape with the fingerprint the planner saw. `in_scope` is the run's
    /// table filter.
    pub fn check_catalogs(
        &self,
        catalogs: &[Vec<TableShape>],
        in_scope: impl Fn(&TableName) -> bool,
    ) -> Result<()> {
        let planned: BTreeMap<String, &PlannedTable> = self
            .tables
            .iter()
            .map(|t| (t.name.to_string(), t))
            .collect();
        let refused: Vec<&str> = self.refused.iter().map(|(n, _, _)| n.as_str()).collect();
        for (at, catalog) in catalogs.iter().enumerate() {
            let role = self.sources[at].0;
            for shape in catalog.iter().filter(|s| in_scope(&s.name)) {
                let name = shape.name.to_string();
                if refused.contains(&name.as_str()) {
                    continue;
                }
                let Some(table) = planned.get(&name) else {
                    return Err(changed(format!(
                        "table {name} on {role} is not in the shard plan"
                    )));
                };
                if table.fingerprints[at] != fingerprint(shape) {
                    return Err(changed(format!(
                        "the schema of {name} on {role} changed since the shard plan was made"
                    )));
                }
            }
            for table in &self.tables {
                let here = catalog.iter().any(|s| s.name == table.name);
                if here != table.shapes[at].is_some() {
                    return Err(changed(format!(
                        "table {} {} on {role} since the shard plan was made",
                        table.name,
                        if here { "appeared" } else { "disappeared" }
                    )));
                }
            }
        }
        Ok(())
    }
}

fn changed(message: String) -> Error {
    Error::usage(message)
        .with_hint("make a new plan (pgsalvage plan --shards N) and run every shard of it again")
}

/// The shard a process reads: `--shard i`, or with `--shard auto` the index its scheduler gives
/// it, from the first of these variables that is set.
pub const INDEX_VARIABLES: [&str; 3] = [
    "JOB_COMPLETION_INDEX",
    "CLOUD_RUN_TASK_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
];

/// Resolves `--shard` (`auto` or a number) against a plan of `shards` shards; `var` reads the
/// environment.
pub fn shard_index(
    flag: &str,
    shards: usize,
    var: impl Fn(&str) -> Option<String>,
) -> Result<usize> {
    let (text, from) = match flag {
        "auto" => INDEX_VARIABLES
            .iter()
            .find_map(|v| var(v).map(|value| (value, format!("${v}"))))
            .ok_or_else(|| {
                Error::usage(format!(
                    "--shard auto: none of {} is set",
                    INDEX_VARIABLES.join(", ")
                ))
                .with_hint("run it as an indexed job, or give the shard's number: --shard 0")
            })?,
        n => (n.to_string(), "--shard".to_string()),
    };
    let index: usize = text.trim().parse().map_err(|_| {
        Error::usage(format!("{from} is {text:?}, not a shard number"))
            .with_hint("shards are numbered from 0")
    })?;
    if index >= shards {
        return Err(Error::usage(format!(
            "{from} is {index}, but the plan has {shards} shards (0 to {})",
            shards - 1
        ))
        .with_hint("run as many shards as the plan has (its plan.json says how many)"));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_dealt_largest_first_to_the_least_loaded_shard() {
        let dealt = assign(&[10, 10, 10, 30, 5, 5], 3);
        let mut load = [0u64; 3];
        for (u, s) in dealt.iter().enumerate() {
            load[*s] += [10, 10, 10, 30, 5, 5][u];
        }
        assert_eq!(load.iter().max(), Some(&30));
        assert_eq!(load.iter().min(), Some(&20));
        assert_eq!(dealt[3], 0, "the largest unit goes first, to shard 0");
        // More shards than units: the rest read nothing.
        assert_eq!(assign(&[1, 1], 8), vec![0, 1]);
        assert_eq!(assign(&[], 3), Vec::<usize>::new());
    }

    #[test]
    fn the_shard_index_comes_from_the_flag_or_the_schedulers_variable() {
        let none = |_: &str| None;
        assert_eq!(shard_index("2", 3, none).unwrap(), 2);
        assert!(shard_index("3", 3, none).is_err());
        assert!(shard_index("x", 3, none).is_err());
        let e = shard_index("auto", 3, none).unwrap_err().to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX"), "{e}");
        let k8s = |v: &str| (v == "JOB_COMPLETION_INDEX").then(|| "1".to_string());
        assert_eq!(shard_index("auto", 3, k8s).unwrap(), 1);
        let aws = |v: &str| (v == "AWS_BATCH_JOB_ARRAY_INDEX").then(|| "9".to_string());
        assert!(shard_index("auto", 3, aws).is_err());
    }

    #[test]
    fn a_range_survives_its_file_form() {
        let bound = Arc::new(KeyBound {
            literals: vec!["'42'::bigint".into()],
            order_key: vec![0x80, 0, 0, 42],
            display: "42".into(),
        });
        let range = KeyRange {
            lo: None,
            hi: Some(bound),
        };
        let json = serde_json::to_string(&RangeCut::of(&range)).unwrap();
        let back: RangeCut = serde_json::from_str(&json).unwrap();
        assert_eq!(back.range(), Some(range));
    }
}
