//! Half-open key ranges: one plan per table, applied to every source.
//!
//! A plan cuts a table's key space at sampled boundaries b1 < b2 < … < bn into
//! `(-inf, b1)`, `[b1, b2)`, …, `[bn, +inf)`. The first and last ranges are open, so a row whose key
//! lies outside the sampled span (inserted after the sample, or only on one side) still falls in
//! exactly one range; the ranges are half-open, so a boundary row falls in exactly one. A boundary
//! carries its key both as typed SQL literals (for the `WHERE` clause the server evaluates) and as
//! the order-preserving key bytes (for the client's check that every row it receives is inside its
//! range). Pure: no I/O, tested as such.

use std::fmt;
use std::sync::Arc;

/// One boundary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBound {
    /// One typed, escaped SQL literal per key column (`'42'::bigint`).
    pub literals: Vec<String>,
    /// The order-preserving encoding of the key (`key::encode`).
    pub order_key: Vec<u8>,
    /// How the key reads in messages: `42` or `(10, 'a')`.
    pub display: String,
}

/// `[lo, hi)`, either end open when `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub lo: Option<Arc<KeyBound>>,
    pub hi: Option<Arc<KeyBound>>,
}

impl KeyRange {
    /// The whole key space.
    pub fn all() -> Self {
        KeyRange { lo: None, hi: None }
    }

    /// The SQL condition selecting this range over `key_exprs` (one expression per key column),
    /// or `None` for the whole key space.
    pub fn predicate(&self, key_exprs: &[String]) -> Option<String> {
        let lhs = row_expr(key_exprs);
        let lo = self
            .lo
            .as_ref()
            .map(|b| format!("{lhs} >= {}", row_expr(&b.literals)));
        let hi = self
            .hi
            .as_ref()
            .map(|b| format!("{lhs} < {}", row_expr(&b.literals)));
        match (lo, hi) {
            (Some(lo), Some(hi)) => Some(format!("{lo} AND {hi}")),
            (lo, hi) => lo.or(hi),
        }
    }

    /// Whether an order key lies in this range.
    pub fn contains(&self, order_key: &[u8]) -> bool {
        let above_lo = self
            .lo
            .as_ref()
            .is_none_or(|b| order_key >= b.order_key.as_slice());
        let below_hi = self
            .hi
            .as_ref()
            .is_none_or(|b| order_key < b.order_key.as_slice());
        above_lo && below_hi
    }
}

/// Single expressions stay bare; several become a row constructor, which PostgreSQL compares
/// lexicographically and can answer from a composite index.
fn row_expr(parts: &[String]) -> String {
    match parts {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lo {
            Some(lo) => write!(f, "[{}, ", lo.display)?,
            None => f.write_str("(-inf, ")?,
        }
        match &self.hi {
            Some(hi) => write!(f, "{})", hi.display),
            None => f.write_str("+inf)"),
        }
    }
}

/// Cuts the key space at the given boundaries, which must be strictly increasing.
pub fn plan(boundaries: Vec<KeyBound>) -> Vec<KeyRange> {
    let bounds: Vec<Arc<KeyBound>> = boundaries.into_iter().map(Arc::new).collect();
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut lo = None;
    for b in bounds {
        ranges.push(KeyRange {
            lo: lo.take(),
            hi: Some(b.clone()),
        });
        lo = Some(b);
    }
    ranges.push(KeyRange { lo, hi: None });
    ranges
}

/// Picks `want - 1` boundaries spread evenly over a sample of keys: the sample is sorted by order
/// key and deduplicated first, so the boundaries come out strictly increasing whatever order the
/// sample arrived in.
pub fn pick_boundaries(mut sample: Vec<KeyBound>, want: usize) -> Vec<KeyBound> {
    sample.sort_by(|a, b| a.order_key.cmp(&b.order_key));
    sample.dedup_by(|a, b| a.order_key == b.order_key);
    if want <= 1 || sample.is_empty() {
        return Vec::new();
    }
    let step = (sample.len() as f64 / want as f64).max(1.0);
    let mut picked: Vec<KeyBound> = Vec::with_capacity(want);
    let mut next = step;
    for (i, key) in sample.into_iter().enumerate() {
        if (i as f64) >= next - 0.5 && picked.len() + 1 < want {
            picked.push(key);
            next += step;
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bound(v: u32) -> KeyBound {
        KeyBound {
            literals: vec![format!("'{v}'::integer")],
            order_key: v.to_be_bytes().to_vec(),
            display: v.to_string(),
        }
    }

    #[test]
    fn plans_open_head_and_tail() {
        let ranges = plan(vec![bound(10), bound(20)]);
        let shown: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
        assert_eq!(shown, ["(-inf, 10)", "[10, 20)", "[20, +inf)"]);
        assert_eq!(plan(vec![]), vec![KeyRange::all()]);
        let keys = ["id".to_string()];
        assert_eq!(ranges[0].predicate(&keys).unwrap(), "id < '10'::integer");
        assert_eq!(
            ranges[1].predicate(&keys).unwrap(),
            "id >= '10'::integer AND id < '20'::integer"
        );
        assert_eq!(ranges[2].predicate(&keys).unwrap(), "id >= '20'::integer");
        assert_eq!(KeyRange::all().predicate(&keys), None);
    }

    #[test]
    fn composite_bounds_use_row_comparison() {
        let b = KeyBound {
            literals: vec!["1".into(), "'a'".into()],
            order_key: vec![1],
            display: "(1, 'a')".into(),
        };
        let r = KeyRange {
            lo: Some(Arc::new(b)),
            hi: None,
        };
        assert_eq!(
            r.predicate(&["x".into(), "y".into()]).unwrap(),
            "(x, y) >= (1, 'a')"
        );
    }

    proptest! {
        /// Every key falls in exactly one range, whatever the boundaries.
        #[test]
        fn ranges_partition_the_key_space(sample in proptest::collection::vec(0u32..1000, 0..50),
                                          want in 0usize..20, probe in proptest::collection::vec(0u32..1100, 1..50)) {
            let ranges = plan(pick_boundaries(sample.into_iter().map(bound).collect(), want));
            prop_assert!(ranges.len() <= want.max(1));
            for p in probe {
                let key = p.to_be_bytes();
                prop_assert_eq!(ranges.iter().filter(|r| r.contains(&key)).count(), 1);
            }
        }
    }
}
