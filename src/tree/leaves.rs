//! Content-defined leaves: a table's rows cut into key spans that stay put across inserts and
//! deletes, so that last night's baseline lines up with today's data.
//!
//! A row whose order key hashes below a threshold (the top `shift` bits of [`key_hash`] all zero)
//! is an *anchor*: it starts a new leaf, which holds it and every following row up to the next
//! anchor. Rows before the first anchor form the head leaf, which has no anchor and is always
//! present. Where leaves begin depends only on which keys exist, never on how the table was
//! read, so two captures of one table taken months apart share every anchor whose row still
//! exists, and a change to one row changes one leaf. A leaf carries a [`Fingerprint`] (count and
//! additive 256-bit sum of its row digests), so leaves built by parallel range workers add up.
//! With one more bit of `shift`, the anchors are a subset of the finer ones, so baselines taken at
//! different leaf sizes still compare.
//!
//! [`diff`] walks two leaf lists by anchor: between two anchors present on *both* sides, each
//! side's leaves cover exactly the same key span, so comparing their summed fingerprints says
//! exactly whether anything in that span changed. Every changed key lies in a reported span, and
//! an unchanged span is never reported (up to blake3 collisions). Pure: no I/O.

use crate::hash::digest::Digest;
use crate::tree::{key_hash, Fingerprint};

/// The key a leaf starts at: its order key and an opaque payload the caller renders (the raw key
/// fields, for typed literals and JSON). Both live in one allocation: a table has up to a quarter
/// of a million leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    bytes: Box<[u8]>,
    split: u32,
}

impl Anchor {
    pub fn new(order_key: &[u8], payload: &[u8]) -> Anchor {
        Anchor {
            bytes: [order_key, payload].concat().into_boxed_slice(),
            split: order_key.len() as u32,
        }
    }

    pub fn order_key(&self) -> &[u8] {
        &self.bytes[..self.split as usize]
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.split as usize..]
    }
}

/// One leaf: the rows from its anchor (or the table's start) up to the next anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub anchor: Option<Anchor>,
    pub fp: Fingerprint,
}

/// Whether a key starts a leaf when leaves hold about `2^shift` rows.
#[inline]
pub fn is_anchor(order_key: &[u8], shift: u8) -> bool {
    shift == 0 || key_hash(order_key) >> (64 - u32::from(shift.min(63))) == 0
}

/// The leaf size (as a shift) for a table of about `rows` rows: at most about 2^18 leaves, of
/// 64 to 2^20 rows each, so a leaf list stays about 10 MB at most while a change is localized to
/// about a hundred rows in tables of up to ten million (which is what a comparison with a `--rows`
/// baseline re-reads from the database around each change).
pub fn shift_for(rows: u64) -> u8 {
    let per_leaf = (rows >> 18).max(1);
    (64 - per_leaf.leading_zeros()).clamp(6, 20) as u8
}

/// The leaves of one key range, in key order: rows before the range's first anchor (which belong
/// to a leaf started in an earlier range), then the range's own leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeLeaves {
    pub head: Fingerprint,
    pub leaves: Vec<Leaf>,
}

/// Builds the leaves of one range from its rows in key order.
#[derive(Debug)]
pub struct LeafBuilder {
    shift: u8,
    out: RangeLeaves,
}

impl LeafBuilder {
    pub fn new(shift: u8) -> Self {
        LeafBuilder {
            shift,
            out: RangeLeaves::default(),
        }
    }

    /// Adds the next row; `payload` is asked for only when the row is an anchor.
    #[inline]
    pub fn push(&mut self, order_key: &[u8], digest: &Digest, payload: impl FnOnce() -> Vec<u8>) {
        if is_anchor(order_key, self.shift) {
            self.out.leaves.push(Leaf {
                anchor: Some(Anchor::new(order_key, &payload())),
                fp: Fingerprint::default(),
            });
        }
        match self.out.leaves.last_mut() {
            Some(leaf) => leaf.fp.add_digest(digest),
            None => self.out.head.add_digest(digest),
        }
    }

    pub fn finish(self) -> RangeLeaves {
        self.out
    }
}

/// Joins the leaves of consecutive ranges (in key order) into a table's leaf list, which always
/// starts with the anchorless head leaf.
pub fn combine(ranges: impl IntoIterator<Item = RangeLeaves>) -> Vec<Leaf> {
    let mut leaves = vec![Leaf {
        anchor: None,
        fp: Fingerprint::default(),
    }];
    for range in ranges {
        leaves.last_mut().expect("head").fp.merge(&range.head);
        leaves.extend(range.leaves);
    }
    leaves
}

/// The total of a leaf list.
pub fn total(leaves: &[Leaf]) -> Fingerprint {
    let mut sum = Fingerprint::default();
    for leaf in leaves {
        sum.merge(&leaf.fp);
    }
    sum
}

/// A key span `[from, to)` whose rows differ between two leaf lists (`None` = open end), with
/// each side's fingerprint of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanDiff<'a> {
    pub from: Option<&'a Anchor>,
    pub to: Option<&'a Anchor>,
    pub a: Fingerprint,
    pub b: Fingerprint,
}

/// The spans where two leaf lists (each starting with its head leaf, anchors ascending) differ,
/// adjacent differing spans joined into one.
pub fn diff<'a>(a: &'a [Leaf], b: &'a [Leaf]) -> Vec<SpanDiff<'a>> {
    assert!(
        a.first().is_some_and(|l| l.anchor.is_none())
            && b.first().is_some_and(|l| l.anchor.is_none()),
        "leaf lists start with their head leaf"
    );
    let mut spans: Vec<SpanDiff<'a>> = Vec::new();
    let mut open = SpanDiff {
        from: None,
        to: None,
        a: a[0].fp,
        b: b[0].fp,
    };
    let (mut i, mut j) = (1, 1);
    loop {
        let ka = a.get(i).and_then(|l| l.anchor.as_ref());
        let kb = b.get(j).and_then(|l| l.anchor.as_ref());
        let next = match (ka, kb) {
            (None, None) => None,
            (Some(x), None) => Some((x, true, false)),
            (None, Some(y)) => Some((y, false, true)),
            (Some(x), Some(y)) => match x.order_key().cmp(y.order_key()) {
                std::cmp::Ordering::Less => Some((x, true, false)),
                std::cmp::Ordering::Greater => Some((y, false, true)),
                std::cmp::Ordering::Equal => Some((x, true, true)),
            },
        };
        let Some((anchor, in_a, in_b)) = next else {
            close(&mut spans, open);
            return spans;
        };
        if in_a && in_b {
            open.to = Some(anchor);
            close(&mut spans, open);
            open = SpanDiff {
                from: Some(anchor),
                to: None,
                a: a[i].fp,
                b: b[j].fp,
            };
        } else if in_a {
            open.a.merge(&a[i].fp);
        } else {
            open.b.merge(&b[j].fp);
        }
        i += usize::from(in_a);
        j += usize::from(in_b);
    }
}

/// Keeps a finished span if it differs, joining it to the previous one when they touch.
fn close<'a>(spans: &mut Vec<SpanDiff<'a>>, span: SpanDiff<'a>) {
    if span.a == span.b {
        return;
    }
    match spans.last_mut() {
        Some(last) if last.to.is_some() && last.to == span.from => {
            last.to = span.to;
            last.a.merge(&span.a);
            last.b.merge(&span.b);
        }
        _ => spans.push(span),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A row digest covers the key too, as the canonical row does.
    fn digest(k: u32, v: u32) -> Digest {
        *blake3::hash(&[k.to_be_bytes(), v.to_le_bytes()].concat()).as_bytes()
    }

    /// Leaves of a table given as key → value, read as `cuts` consecutive ranges.
    fn leaves_of(rows: &BTreeMap<u32, u32>, shift: u8, cuts: &[u32]) -> Vec<Leaf> {
        let mut ranges = Vec::new();
        let mut builder = LeafBuilder::new(shift);
        let mut cuts = cuts.iter().peekable();
        for (k, v) in rows {
            while cuts.peek().is_some_and(|c| **c <= *k) {
                cuts.next();
                ranges.push(std::mem::replace(&mut builder, LeafBuilder::new(shift)).finish());
            }
            builder.push(&k.to_be_bytes(), &digest(*k, *v), || {
                k.to_be_bytes().to_vec()
            });
        }
        ranges.push(builder.finish());
        combine(ranges)
    }

    fn inside(span: &SpanDiff<'_>, key: u32) -> bool {
        let k = key.to_be_bytes();
        span.from.is_none_or(|a| a.order_key() <= &k[..])
            && span.to.is_none_or(|a| &k[..] < a.order_key())
    }

    #[test]
    fn ranges_do_not_change_the_leaves() {
        let rows: BTreeMap<u32, u32> = (0..5000).map(|k| (k * 3, k)).collect();
        let whole = leaves_of(&rows, 5, &[]);
        let cut = leaves_of(&rows, 5, &[100, 2000, 2001, 9000]);
        assert_eq!(whole, cut);
        assert!(
            whole.len() > 50,
            "about 5000/32 leaves, got {}",
            whole.len()
        );
        assert_eq!(total(&whole).count, 5000);
        assert!(diff(&whole, &cut).is_empty());
    }

    #[test]
    fn an_empty_table_has_one_empty_leaf() {
        let leaves = leaves_of(&BTreeMap::new(), 6, &[]);
        assert_eq!(leaves.len(), 1);
        assert_eq!(leaves[0].fp, Fingerprint::default());
    }

    #[test]
    fn shifts_grow_with_tables() {
        assert_eq!(shift_for(0), 6);
        assert_eq!(shift_for(10_000_000), 6);
        assert_eq!(shift_for(100_000_000), 9);
        assert_eq!(shift_for(u64::MAX), 20);
    }

    proptest! {
        /// Every changed key lies in a reported span; every reported span holds a change; the
        /// counts of a span are the rows of each side in it; leaf sizes may differ.
        #[test]
        fn spans_are_exact(
            base in proptest::collection::btree_map(0u32..4000, 0u32..3, 0..600),
            edits in proptest::collection::vec((0u32..4000, 0u32..4), 0..40),
            shift_a in 0u8..5, extra_shift in 0u8..3,
            cuts in proptest::collection::vec(0u32..4000, 0..4),
        ) {
            let mut cuts = cuts;
            cuts.sort();
            let mut changed = base.clone();
            for (k, v) in &edits {
                if *v == 3 { changed.remove(k); } else { changed.insert(*k, *v); }
            }
            let a = leaves_of(&base, shift_a, &cuts);
            let b = leaves_of(&changed, shift_a + extra_shift, &[]);
            let spans = diff(&a, &b);
            let keys: std::collections::BTreeSet<u32> = base.keys().chain(changed.keys()).copied().collect();
            for k in &keys {
                let differs = base.get(k) != changed.get(k);
                let covered = spans.iter().any(|s| inside(s, *k));
                if differs { prop_assert!(covered, "changed key {} outside every span", k); }
            }
            for s in &spans {
                prop_assert_ne!(s.a, s.b);
                let in_span = |m: &BTreeMap<u32, u32>| m.keys().filter(|k| inside(s, **k)).count() as u64;
                prop_assert_eq!(s.a.count, in_span(&base));
                prop_assert_eq!(s.b.count, in_span(&changed));
                prop_assert!(keys.iter().any(|k| inside(s, *k) && base.get(k) != changed.get(k)));
            }
            prop_assert_eq!(spans.is_empty(), base == changed);
        }
    }
}
