//! Finished ranges on disk: how a killed verify resumes (`--checkpoint DIR`).
//!
//! A checkpoint directory holds `plan.json` — which comparison it belongs to (a hash of the sources
//! and of every table's compared columns and key), each table's key ranges and tree shape as first
//! cut, and the snapshot of every run that worked on it — and one file per finished range under
//! `ranges/`, with the range's tally and findings. Every file is written under a temporary name and
//! renamed, so a kill at any moment leaves whole files only. A run started with the same directory
//! keeps the first run's cut, reads only the ranges not yet done, and replays the saved ones into
//! its tallies and findings: its report is the one a single run would give, and says which ranges
//! came from earlier runs and their snapshots, since those were read at other times. A run that
//! verifies every range removes the directory, so a later run with it compares afresh and never
//! replays a result that may be stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::classify::{Class, Finding};
use crate::compare::strip::Strip;
use crate::compare::tally::{ClassCounts, RangeTally};
use crate::error::{Error, Result};
use crate::key::range::KeyRange;
use crate::plan::shards::RangeCut;
use crate::plan::{TablePlan, TableRun};
use crate::role::Role;
use crate::source::SnapshotInfo;
use crate::tree::{hex, ChecksumTree, Fingerprint};

pub const FORMAT: &str = "pgsalvage.checkpoint/1";
const PLAN: &str = "plan.json";

#[derive(Serialize, Deserialize)]
struct PlanFile {
    format: String,
    plan_hash: String,
    tables: Vec<TableCut>,
    /// Each run's snapshots, oldest first; range files name their run by index.
    runs: Vec<BTreeMap<Role, SnapshotInfo>>,
}

#[derive(Serialize, Deserialize)]
struct TableCut {
    name: String,
    tree_bits: u8,
    /// In the shard plan's file form (a range is `[lo, hi]`).
    ranges: Vec<RangeCut>,
}

#[derive(Serialize, Deserialize)]
struct RangeFile {
    run: usize,
    rows: Vec<u64>,
    /// Each source's tree: its leaves' counts and sums, little-endian, in hex.
    trees: Vec<String>,
    classes: Vec<u64>,
    columns: Vec<u64>,
    #[serde(default)]
    needs: [u64; 3],
    /// Where the range's differences lie (its part of the table's damage map).
    #[serde(default)]
    strip: Option<Strip>,
    findings: Vec<SavedFinding>,
}

#[derive(Serialize, Deserialize)]
struct SavedFinding {
    class: Class,
    key: String,
    /// Hex of the order key.
    order_key: String,
    columns: Vec<u16>,
}

/// An open checkpoint directory.
pub struct Checkpoint {
    dir: PathBuf,
    plan: PlanFile,
    /// This run's index in `plan.runs` once started.
    run: usize,
}

/// What a resumed range brings back.
pub struct Saved {
    pub tally: RangeTally,
    pub findings: Vec<Finding>,
    /// The run that read it.
    pub run: usize,
}

impl Checkpoint {
    /// Opens `dir` for the comparison whose hash is `plan_hash`: a new checkpoint when the
    /// directory holds none, the saved one when it was made for the same comparison, an error
    /// naming the directory when it was made for another.
    pub fn open(dir: &Path, plan_hash: String) -> Result<Checkpoint> {
        let path = dir.join(PLAN);
        let plan = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PlanFile {
                format: FORMAT.into(),
                plan_hash,
                tables: Vec::new(),
                runs: Vec::new(),
            },
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
            Ok(bytes) => {
                let saved: PlanFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::usage(format!(
                        "{} is not a pgsalvage checkpoint: {e}",
                        path.display()
                    ))
                    .with_hint("remove the directory, or give --checkpoint another one")
                })?;
                if saved.format != FORMAT || saved.plan_hash != plan_hash {
                    return Err(Error::usage(format!(
                        "the checkpoint in {} was made for another comparison (other sources, tables, columns or keys)",
                        dir.display()
                    ))
                    .with_hint("resume with the same command line, or remove the directory to start afresh"));
                }
                saved
            }
        };
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            plan,
            run: 0,
        })
    }

    /// The hash a checkpoint is bound to: the pgsalvage version, the sources (without secrets)
    /// and every table's name, compared columns, key and column decoders.
    pub fn hash_of(sources: &[String], plans: &[TablePlan]) -> String {
        let mut text = format!("{}\n{}\n", env!("CARGO_PKG_VERSION"), sources.join("\n"));
        for p in plans {
            let codecs: Vec<String> = p
                .codecs
                .iter()
                .map(|c| format!("{:?}", c.as_ref().map(|c| &c.kinds)))
                .collect();
            text.push_str(&format!(
                "{}|{:?}|{}|{:?}\n",
                p.name, p.columns, p.nkey, codecs
            ));
        }
        blake3::hash(text.as_bytes()).to_hex().to_string()
    }

    /// Whether earlier runs cut the tables already.
    pub fn resuming(&self) -> bool {
        !self.plan.runs.is_empty()
    }

    /// The earlier cut of `plan`'s table: its ranges and tree bits.
    pub fn cut_of(&self, plan: &TablePlan) -> Option<(Vec<KeyRange>, u8)> {
        let name = plan.name.to_string();
        let table = self.plan.tables.iter().find(|t| t.name == name)?;
        let ranges = table
            .ranges
            .iter()
            .map(RangeCut::range)
            .collect::<Option<_>>()?;
        Some((ranges, table.tree_bits))
    }

    /// Records this run (and, for the first, the cut), before any range is read.
    pub fn start_run(
        &mut self,
        tables: &[TableRun],
        snapshots: BTreeMap<Role, SnapshotInfo>,
    ) -> Result<()> {
        if self.plan.runs.is_empty() {
            self.plan.tables = tables.iter().map(cut_out).collect();
        }
        self.plan.runs.push(snapshots);
        self.run = self.plan.runs.len() - 1;
        std::fs::create_dir_all(self.dir.join("ranges"))
            .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        crate::report::write_json_file(&self.dir.join(PLAN), &self.plan)
    }

    /// The snapshots of the runs before this one.
    pub fn earlier_runs(&self) -> &[BTreeMap<Role, SnapshotInfo>] {
        &self.plan.runs[..self.run]
    }

    fn range_path(&self, table: usize, range: usize) -> PathBuf {
        range_file(&self.dir, table, range)
    }

    /// The range, when an earlier run finished it.
    pub fn load(&self, table: usize, range: usize, plan: &TablePlan) -> Result<Option<Saved>> {
        let path = self.range_path(table, range);
        let bytes = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
            Ok(b) => b,
        };
        let bad = |what: String| {
            Error::usage(format!("{} is damaged: {what}", path.display()))
                .with_hint("remove the checkpoint directory to start afresh")
        };
        let file: RangeFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let trees = file
            .trees
            .iter()
            .map(|hex| tree_in(hex).ok_or_else(|| bad("a tree is not whole".into())))
            .collect::<Result<Vec<_>>>()?;
        let classes =
            ClassCounts::from_counts(&file.classes).ok_or_else(|| bad("class counts".into()))?;
        if file.columns.len() != plan.columns.len() || file.rows.len() != trees.len() {
            return Err(bad("it does not fit the table".into()));
        }
        let findings = file
            .findings
            .into_iter()
            .map(|f| Finding {
                table,
                class: f.class,
                key: f.key,
                order_key: unhex(&f.order_key).unwrap_or_default(),
                columns: f.columns,
                restore: None,
                values: None,
            })
            .collect();
        let mut tally = RangeTally::from_parts(file.rows, trees, classes, file.columns);
        tally.needs = file.needs;
        tally.strip = file.strip;
        Ok(Some(Saved {
            tally,
            findings,
            run: file.run,
        }))
    }

    /// Saves a finished range.
    pub fn save(
        &self,
        table: usize,
        range: usize,
        tally: &RangeTally,
        findings: &[Finding],
    ) -> Result<()> {
        let file = RangeFile {
            run: self.run,
            rows: tally.rows.clone(),
            trees: tally.trees.iter().map(tree_out).collect(),
            classes: tally.classes.counts().to_vec(),
            columns: tally.columns.clone(),
            needs: tally.needs,
            strip: tally.strip.clone(),
            findings: findings
                .iter()
                .map(|f| SavedFinding {
                    class: f.class,
                    key: f.key.clone(),
                    order_key: hex(&f.order_key),
                    columns: f.columns.clone(),
                })
                .collect(),
        };
        crate::report::write_json_file(&self.range_path(table, range), &file)
    }

    /// Ends the run: a run that verified everything removes the directory.
    pub fn finish(&self, complete: bool) -> Result<bool> {
        if !complete {
            return Ok(false);
        }
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("removing {}", self.dir.display()), e))?;
        Ok(true)
    }
}

/// Where the checkpoint in `dir` keeps range `range` of table `table`.
pub fn range_file(dir: &Path, table: usize, range: usize) -> PathBuf {
    dir.join("ranges")
        .join(format!("{table:05}-{range:06}.json"))
}

fn cut_out(run: &TableRun) -> TableCut {
    TableCut {
        name: run.plan.name.to_string(),
        tree_bits: run.tree_bits,
        ranges: run.ranges.iter().map(RangeCut::of).collect(),
    }
}

fn tree_out(tree: &ChecksumTree) -> String {
    let mut bytes = vec![tree.bits()];
    for leaf in tree.leaves() {
        bytes.extend(leaf.count.to_le_bytes());
        for limb in leaf.sum {
            bytes.extend(limb.to_le_bytes());
        }
    }
    hex(&bytes)
}

fn tree_in(text: &str) -> Option<ChecksumTree> {
    let bytes = unhex(text)?;
    let (&bits, rest) = bytes.split_first()?;
    if bits > 24 || rest.len() != (1usize << bits) * 40 {
        return None;
    }
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
    let leaves = rest
        .chunks_exact(40)
        .map(|c| Fingerprint {
            count: word(&c[..8]),
            sum: [
                word(&c[8..16]),
                word(&c[16..24]),
                word(&c[24..32]),
                word(&c[32..40]),
            ],
        })
        .collect();
    ChecksumTree::from_leaves(bits, leaves)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2);
    crate::tree::unhex_into(text, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_survives_the_round_trip_through_its_file_form() {
        let mut tree = ChecksumTree::new(4);
        tree.add(b"k1", &[7u8; 32]);
        tree.add(b"k2", &[9u8; 32]);
        let back = tree_in(&tree_out(&tree)).expect("whole");
        assert_eq!(back, tree);
        // A cut file is refused, not read as a smaller tree.
        let text = tree_out(&tree);
        assert!(tree_in(&text[..text.len() - 2]).is_none());
    }

    #[test]
    fn hex_round_trips_and_refuses_odd_text() {
        let bytes = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
