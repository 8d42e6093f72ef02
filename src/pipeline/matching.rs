//! Keyless copies matched as they stream: a row content seen once on every source is counted as
//! the same there and then, and only the copies still waiting for their match are kept.
//!
//! Two sources of one table mostly hold their rows in a similar physical order: a backup
//! restored from a dump holds them in the order the dump read them, a replica in the primary's
//! own, a damaged primary in its old order less the damage. [`Matcher`] reads the sources in step
//! (always from the one that has delivered fewest rows) and keeps, per digest, the copies some
//! source holds and another has not yet shown; when every source has shown one, those copies are
//! the same row on every side and leave memory at once (their digest goes into the tally's trees,
//! which add in any order). What is left at the end, the differing copies and the pairs the
//! window could not join, goes through the partitioned spill and is counted there exactly as
//! before, so the result does not depend on the order: counting the multisets less equal
//! matched copies gives the same differing copies, numbered from the least count (see
//! [`crate::compare::multiset::Differing::order_key`]). Past its memory budget the window moves
//! into the spill whole and matching stops for the rest of the table (every later copy goes
//! straight to the spill), so tables whose orders share nothing cost what spilling every copy
//! costs, and no more memory.
//!
//! A waiting copy keeps its row's values (the findings' keys are made from them, so the rows
//! behind the differences need no second read); a copy moved into the spill keeps only its
//! place, the row's position in its source's stream, and is read again by it if it differs.
//!
//! Matching forgets how many copies every side held, which a recovery's guard needs (the
//! target's count of each row it touches): recover reads without it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::spill::Spill;
use crate::compare::multiset::Copy;
use crate::compare::tally::RangeTally;
use crate::hash::digest::Digest;

/// A slot of the map: the digest and a [`Waiting`].
const SLOT_BYTES: usize = std::mem::size_of::<(Digest, Waiting)>();

/// A digest is uniformly random: its leading eight bytes are a hash already.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` hashes as its length (a usize) and then its bytes; keep the bytes.
        if bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

/// Where a waiting copy's values lie in the matcher's arena; `NO_ROW` when not kept.
#[derive(Clone, Copy)]
struct RowAt {
    at: u32,
    len: u32,
}

const NO_ROW: RowAt = RowAt {
    at: u32::MAX,
    len: 0,
};

impl RowAt {
    fn kept(self) -> bool {
        self.at != u32::MAX
    }
}

/// One copy waiting: its source, its place there, and where its row's values are kept.
struct Held {
    source: u8,
    place: [u8; 6],
    row: RowAt,
}

/// One row content's copies waiting for a match; only the first keeps the values (the copies
/// are of one row).
struct Waiting {
    first: Held,
    more: Vec<Held>,
}

impl Waiting {
    fn iter(&self) -> impl Iterator<Item = &Held> {
        std::iter::once(&self.first).chain(&self.more)
    }

    fn holds(&self, source: u8) -> bool {
        self.iter().any(|h| h.source == source)
    }

    /// Removes one copy of `source`; the bytes of values it let go of, and whether any copy is
    /// left.
    fn take(&mut self, source: u8) -> (usize, bool) {
        if self.first.source == source {
            return match self.more.pop() {
                // The values stay with the copy that stays.
                Some(mut next) => {
                    next.row = self.first.row;
                    self.first = next;
                    (0, true)
                }
                None => (self.first.row.len as usize, false),
            };
        }
        let at = self.more.iter().position(|h| h.source == source);
        self.more
            .swap_remove(at.expect("the source has a waiting copy"));
        (0, true)
    }
}

/// The arena is compacted past this size, when most of it is values no copy waits for.
const ARENA_COMPACT: usize = 8 << 20;

const HELD_BYTES: usize = std::mem::size_of::<Held>();

/// The rows of the copies that were still waiting when the streams ended: one per row content.
pub type HeldRows = HashMap<Digest, Box<[u8]>, BuildHasherDefault<DigestHasher>>;

/// A set of digests, hashed by their own leading bytes.
pub type DigestSet = std::collections::HashSet<Digest, BuildHasherDefault<DigestHasher>>;

/// The window of copies waiting for their match, and the spill what it cannot hold goes to.
pub struct Matcher {
    /// The sources that hold the table (a copy is matched once each has shown one).
    present: Vec<u8>,
    waiting: HashMap<Digest, Waiting, BuildHasherDefault<DigestHasher>>,
    /// Bytes of the waiting copies beyond the map's slots.
    bytes: usize,
    /// The waiting copies' values, appended as they come (one allocation for many rows), and
    /// how much of it they still use.
    arena: Vec<u8>,
    live: usize,
    compact_at: usize,
    budget: usize,
    spill: Spill,
    /// Copies matched (each match is one copy on every present source).
    matched: u64,
    flushed: bool,
    /// Off with one source, and once the window overflowed.
    matching: bool,
}

impl Matcher {
    /// A matcher of the copies of the sources `present`, with `budget` bytes of memory (at
    /// most 2 GiB: the arena is addressed by `u32`).
    pub fn new(present: Vec<u8>, spill: Spill, budget: usize) -> Matcher {
        let budget = budget.min(2 << 30);
        Matcher {
            matching: present.len() > 1,
            present,
            waiting: HashMap::default(),
            bytes: 0,
            arena: Vec::new(),
            live: 0,
            compact_at: ARENA_COMPACT,
            budget,
            spill,
            matched: 0,
            flushed: false,
        }
    }

    /// Takes in one copy: matched with the other sources' waiting copies of its row when every
    /// one has one (counted into `tally` as the same row on each), kept waiting otherwise, with
    /// the row's values, which `row` appends to the buffer it is given (asked for only then).
    pub fn push(
        &mut self,
        copy: &Copy,
        row: impl FnOnce(&mut Vec<u8>),
        tally: &mut RangeTally,
    ) -> std::io::Result<()> {
        use std::collections::hash_map::Entry;
        let source = copy.source;
        if !self.matching {
            return self.spill.push(copy);
        }
        let mut entry = match self.waiting.entry(copy.digest) {
            Entry::Vacant(v) => {
                let at = self.arena.len();
                row(&mut self.arena);
                let len = self.arena.len() - at;
                self.live += len;
                self.bytes += HELD_BYTES;
                v.insert(Waiting {
                    first: Held {
                        source,
                        place: copy.ctid,
                        row: RowAt {
                            at: at as u32,
                            len: len as u32,
                        },
                    },
                    more: Vec::new(),
                });
                return self.keep_to_budget();
            }
            Entry::Occupied(o) => o,
        };
        let w = entry.get_mut();
        let others = self.present.iter().filter(|&&s| s != source);
        if !others.clone().all(|&s| w.holds(s)) {
            w.more.push(Held {
                source,
                place: copy.ctid,
                row: NO_ROW,
            });
            self.bytes += HELD_BYTES;
            return self.keep_to_budget();
        }
        let mut left = true;
        for &s in others {
            let (freed, any) = w.take(s);
            self.live -= freed;
            self.bytes -= HELD_BYTES;
            left = any;
        }
        if !left {
            entry.remove();
        }
        self.matched += 1;
        let leaf = tally.leaf_of(&copy.digest);
        for s in &self.present {
            tally.add_row(usize::from(*s), leaf, &copy.digest);
        }
        Ok(())
    }

    /// Copies the values still waited for into a fresh arena, once most of the old one is
    /// values of copies since matched.
    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.live * 2 + (1 << 16));
        for w in self.waiting.values_mut() {
            let r = w.first.row;
            if r.kept() {
                let at = arena.len();
                arena.extend_from_slice(&self.arena[r.at as usize..(r.at + r.len) as usize]);
                w.first.row.at = at as u32;
            }
        }
        self.arena = arena;
    }

    /// Past the budget (the map's own table counted at its capacity), the window goes into the
    /// spill and matching stops for the rest of the table: orders that far apart would only
    /// fill it again, and every copy from then on goes straight to the spill.
    fn keep_to_budget(&mut self) -> std::io::Result<()> {
        if self.arena.len() > self.compact_at.max(self.live * 4) {
            self.compact();
        }
        let table = self.waiting.capacity() * (SLOT_BYTES + 1);
        match self.bytes + table + self.arena.capacity() > self.budget {
            true => {
                self.flush()?;
                self.waiting = HashMap::default();
                self.matching = false;
                Ok(())
            }
            false => Ok(()),
        }
    }

    /// Moves every waiting copy into the spill (values dropped: only places go to disk).
    fn flush(&mut self) -> std::io::Result<()> {
        for (digest, w) in self.waiting.drain() {
            for h in w.iter() {
                self.spill.push(&Copy {
                    digest,
                    source: h.source,
                    ctid: h.place,
                })?;
            }
        }
        self.bytes = 0;
        self.arena = Vec::new();
        self.live = 0;
        self.flushed = true;
        Ok(())
    }

    /// The copies left unmatched, in the spill, and the values of those still in memory.
    pub fn finish(mut self) -> std::io::Result<(Spill, HeldRows)> {
        let mut rows = HeldRows::default();
        for (digest, w) in &self.waiting {
            let r = w.first.row;
            if r.kept() {
                let values = &self.arena[r.at as usize..(r.at + r.len) as usize];
                rows.insert(*digest, values.into());
            }
        }
        self.flush()?;
        self.waiting = HashMap::default();
        Ok((self.spill, rows))
    }

    /// Whether the window ever overflowed into the spill (some copies there have no values).
    pub fn overflowed(&self) -> bool {
        self.flushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::multiset;

    fn tally(sources: usize) -> RangeTally {
        RangeTally::from_parts(
            vec![0; sources],
            vec![crate::tree::ChecksumTree::new(4); sources],
            Default::default(),
            Vec::new(),
        )
    }

    fn digest(content: u32) -> Digest {
        *blake3::hash(&content.to_le_bytes()).as_bytes()
    }

    /// Counts copies as the plain count would, after matching in the given order: the differing
    /// contents (digest, per-source counts less the least) are the same whatever the order and
    /// the window.
    fn residual(order: &[(u32, u8)], sources: usize, budget: usize) -> Vec<(Digest, Vec<u64>)> {
        let mut tally = tally(sources);
        let present = (0..sources as u8).collect();
        let mut m = Matcher::new(present, Spill::new(2, 1 << 10), budget);
        // Compacted often: the values must survive being moved.
        m.compact_at = 64;
        for (i, &(c, s)) in order.iter().enumerate() {
            let copy = Copy {
                digest: digest(c),
                source: s,
                ctid: [0, 0, 0, 0, (i >> 8) as u8, i as u8],
            };
            m.push(&copy, |a| a.extend_from_slice(&c.to_le_bytes()), &mut tally)
                .unwrap();
        }
        let overflowed = m.overflowed();
        let (spill, rows) = m.finish().unwrap();
        let mut out = Vec::new();
        for p in 0..spill.partitions() {
            let mut copies = Vec::new();
            spill.read(p, 0, 0, &mut copies).unwrap();
            multiset::count(
                &mut copies,
                sources,
                |_, _| {},
                |d| {
                    // Every differing row's values are at hand unless the window overflowed.
                    let content = order
                        .iter()
                        .find(|(c, _)| digest(*c) == d.digest)
                        .map(|(c, _)| c.to_le_bytes())
                        .unwrap();
                    match rows.get(&d.digest) {
                        Some(row) => assert_eq!(**row, content),
                        None => assert!(overflowed, "the values of a differing row were lost"),
                    }
                    let counts = d.counts();
                    let least = *counts.iter().min().unwrap();
                    out.push((d.digest, counts.iter().map(|c| c - least).collect()));
                },
            );
        }
        out.sort();
        out
    }

    #[test]
    fn matching_leaves_the_same_differences_in_any_order_and_window() {
        // Content c: base holds (c % 4) copies, target ((c * 7) % 5), replica (c % 3).
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for sources in [2usize, 3] {
            let mut copies = Vec::new();
            for c in 0..1500u32 {
                // Past 300, rows every source holds once: matched, their values left behind.
                let counts = match c < 300 {
                    true => [c % 4, (c * 7) % 5, c % 3],
                    false => [1, 1, 1],
                };
                for s in 0..sources {
                    let n = counts[if sources == 2 && s == 1 { 1 } else { s }];
                    copies.extend(std::iter::repeat_n((c, s as u8), n as usize));
                }
            }
            let plain = residual(&copies, sources, usize::MAX);
            assert!(!plain.is_empty());
            for round in 0..20 {
                // Fisher-Yates with a small LCG: orders from sorted to fully shuffled.
                let mut order = copies.clone();
                if round > 0 {
                    for i in (1..order.len()).rev() {
                        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                        order.swap(i, (rng >> 33) as usize % (i + 1));
                    }
                }
                for budget in [0, SLOT_BYTES * 40, usize::MAX] {
                    assert_eq!(
                        residual(&order, sources, budget),
                        plain,
                        "{sources} sources, round {round}, budget {budget}"
                    );
                }
            }
        }
    }

    #[test]
    fn matched_copies_go_into_the_trees_of_every_source() {
        let mut tally = tally(2);
        let mut m = Matcher::new(vec![0, 1], Spill::new(0, 1 << 20), usize::MAX);
        for (c, s) in [(1, 0), (2, 0), (1, 1), (3, 1)] {
            let copy = Copy {
                digest: digest(c),
                source: s,
                ctid: [0; 6],
            };
            m.push(&copy, |_| {}, &mut tally).unwrap();
        }
        assert_eq!(m.matched, 1);
        assert_eq!(tally.rows, [1, 1]);
        let (spill, _) = m.finish().unwrap();
        assert_eq!(spill.bytes_in(0), 2 * multiset::COPY_BYTES as u64);
    }
}
