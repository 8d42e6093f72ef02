//! Counting what the merge saw: per range, then per table.
//!
//! A [`RangeTally`] is filled by one range's merge without locks; when the range ends it is added
//! to its table's [`TableTally`] under the run's lock. Counts are exact whatever the findings
//! listing keeps, and the checksum trees of the ranges add up to the table's trees because their
//! leaves are additive.

use std::time::{Duration, Instant};

use super::strip::Strip;
use crate::classify::{Class, Finding};
use crate::hash::digest::Digest;
use crate::plan::TablePlan;
use crate::shape::ValueError;
use crate::tree::ChecksumTree;

/// Counts by class, in `Class` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts([u64; Class::COUNT]);

impl ClassCounts {
    fn add(&mut self, class: Class) {
        self.0[class as usize] += 1;
    }

    pub fn get(&self, class: Class) -> u64 {
        self.0[class as usize]
    }

    /// Every differing key, legitimate or not.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Keys that are damage or conflicts: what makes a verify report differences.
    pub fn actionable(&self) -> u64 {
        Class::ALL
            .iter()
            .filter(|c| !c.legitimate())
            .map(|&c| self.get(c))
            .sum()
    }

    /// The non-zero counts by class.
    pub fn nonzero(&self) -> impl Iterator<Item = (Class, u64)> + '_ {
        Class::ALL
            .iter()
            .map(|&c| (c, self.get(c)))
            .filter(|(_, n)| *n > 0)
    }

    /// The counts in `Class` order (a checkpoint's form).
    pub fn counts(&self) -> &[u64] {
        &self.0
    }

    /// Counts read back from [`ClassCounts::counts`]; `None` when there are not one per class.
    pub fn from_counts(counts: &[u64]) -> Option<Self> {
        Some(ClassCounts(counts.try_into().ok()?))
    }

    fn merge(&mut self, other: &ClassCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// What one range's merge saw.
#[derive(Debug)]
pub struct RangeTally {
    pub rows: Vec<u64>,
    pub trees: Vec<ChecksumTree>,
    pub classes: ClassCounts,
    /// Per compared column, how many divergent rows differ in it.
    pub columns: Vec<u64>,
    /// Three-way: the keys whose class calls for an action, by what the target lacks against
    /// the replica: [missing, extra, divergent].
    pub needs: [u64; 3],
    /// Where the differing keys lie in the range (`None` for a range saved by an earlier run).
    pub strip: Option<Strip>,
    error: Option<ValueError>,
}

impl RangeTally {
    pub fn new(plan: &TablePlan, sources: usize, tree_bits: u8) -> Self {
        RangeTally {
            rows: vec![0; sources],
            trees: vec![ChecksumTree::new(tree_bits); sources],
            classes: ClassCounts::default(),
            columns: vec![0; plan.columns.len()],
            needs: [0; 3],
            strip: Some(Strip::default()),
            error: None,
        }
    }

    /// A range's tally saved by an earlier run (see `pipeline::checkpoint`).
    pub fn from_parts(
        rows: Vec<u64>,
        trees: Vec<ChecksumTree>,
        classes: ClassCounts,
        columns: Vec<u64>,
    ) -> Self {
        RangeTally {
            rows,
            trees,
            classes,
            columns,
            needs: [0; 3],
            strip: None,
            error: None,
        }
    }

    #[inline]
    pub fn add_row(&mut self, source: usize, leaf: usize, digest: &Digest) {
        self.rows[source] += 1;
        self.trees[source].add_to_leaf(leaf, digest);
    }

    /// The leaf of a key in this range's trees (all of one shape).
    #[inline]
    pub fn leaf_of(&self, key: &[u8]) -> usize {
        self.trees[0].leaf_of(key)
    }

    /// Three-way: counts a key whose class calls for an action by whether the replica (the
    /// restore's source) and the target hold it.
    pub fn add_need(&mut self, class: Class, replica: bool, target: bool) {
        if class.legitimate() {
            return;
        }
        match (replica, target) {
            (true, false) => self.needs[0] += 1,
            (false, true) => self.needs[1] += 1,
            (true, true) => self.needs[2] += 1,
            (false, false) => {}
        }
    }

    pub fn add_finding(&mut self, finding: &Finding) {
        if let (Some(strip), false) = (&mut self.strip, finding.class.legitimate()) {
            // Rows are counted as the merge reads them, in key order: the most any source has
            // read is this key's position in the range.
            strip.add(self.rows.iter().copied().max().unwrap_or(0));
        }
        self.classes.add(finding.class);
        for &c in &finding.columns {
            self.columns[c as usize] += 1;
        }
    }

    /// Keeps the first error met inside the merge's callback, which cannot return one.
    pub fn set_error(&mut self, err: ValueError) {
        self.error.get_or_insert(err);
    }

    pub fn take_error(&mut self) -> Option<ValueError> {
        self.error.take()
    }
}

/// What all finished ranges of one table saw.
#[derive(Debug)]
pub struct TableTally {
    pub rows: Vec<u64>,
    pub trees: Vec<ChecksumTree>,
    pub classes: ClassCounts,
    pub columns: Vec<u64>,
    /// See [`RangeTally::needs`].
    pub needs: [u64; 3],
    pub ranges_total: usize,
    pub ranges_verified: usize,
    /// Of the verified ranges, those an earlier run read (`--checkpoint`).
    pub ranges_resumed: usize,
    pub errors: Vec<String>,
    /// Per range, in key order: where its differing keys lie (see [`Strip`]).
    pub strips: Vec<Option<Strip>>,
    started: Option<Instant>,
    elapsed: Duration,
}

impl TableTally {
    pub fn new(columns: usize, sources: usize, tree_bits: u8, ranges_total: usize) -> Self {
        TableTally {
            rows: vec![0; sources],
            trees: vec![ChecksumTree::new(tree_bits); sources],
            classes: ClassCounts::default(),
            columns: vec![0; columns],
            needs: [0; 3],
            ranges_total,
            ranges_verified: 0,
            ranges_resumed: 0,
            errors: Vec::new(),
            strips: vec![None; ranges_total],
            started: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Marks the start of the table's first range; true the first time.
    pub fn start(&mut self) -> bool {
        let first = self.started.is_none();
        self.started.get_or_insert_with(Instant::now);
        first
    }

    /// [`TableTally::add_range`] for the range at `index` of the table's plan, placing its strip.
    pub fn add_range_at(&mut self, index: usize, mut range: RangeTally) {
        if let (Some(slot), Some(mut strip)) = (self.strips.get_mut(index), range.strip.take()) {
            strip.rows = range.rows.iter().copied().max().unwrap_or(0);
            *slot = Some(strip);
        }
        self.add_range(range);
    }

    pub fn add_range(&mut self, range: RangeTally) {
        for (a, b) in self.rows.iter_mut().zip(&range.rows) {
            *a += b;
        }
        for (a, b) in self.trees.iter_mut().zip(&range.trees) {
            a.merge(b);
        }
        self.classes.merge(&range.classes);
        for (a, b) in self.columns.iter_mut().zip(&range.columns) {
            *a += b;
        }
        for (a, b) in self.needs.iter_mut().zip(range.needs) {
            *a += b;
        }
        self.ranges_verified += 1;
        self.touch();
    }

    pub fn add_error(&mut self, message: String) {
        self.errors.push(message);
        self.touch();
    }

    fn touch(&mut self) {
        if let Some(start) = self.started {
            self.elapsed = start.elapsed();
        }
    }

    /// Whether every range ended, verified or failed.
    pub fn finished(&self) -> bool {
        self.ranges_verified + self.errors.len() >= self.ranges_total
    }

    pub fn complete(&self) -> bool {
        self.ranges_verified == self.ranges_total && self.errors.is_empty()
    }

    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}
