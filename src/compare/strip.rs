//! Where in a table's key space the differences lie: a small histogram per key range, joined
//! into one strip per table for the reports.
//!
//! The merge walks each range in key order, so the position of a differing key is its ordinal
//! among the rows read so far. A [`Strip`] counts those positions in [`BUCKETS`] buckets whose
//! width doubles (merging neighbours) whenever a position falls past the last one: bounded
//! memory whatever the range holds, exact counts, and a resolution of 1/16 of the range or
//! better. The ranges of a table are planned in key order, so [`table_map`] lays their strips
//! end to end, each as wide as the rows it read, and resamples the whole into a fixed number of
//! buckets: bucket `i` of `n` covers the rows from `i/n` to `(i+1)/n` of the table, in key
//! order.

/// Buckets per range.
pub const BUCKETS: usize = 32;

/// Differing keys of one range by position, see the module doc.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Strip {
    /// Rows per bucket, a power of two.
    width: u64,
    counts: [u64; BUCKETS],
    /// Rows the range read (the most of any source).
    pub rows: u64,
}

impl Default for Strip {
    fn default() -> Self {
        Strip {
            width: 1,
            counts: [0; BUCKETS],
            rows: 0,
        }
    }
}

impl Strip {
    /// Counts a differing key at row ordinal `at` of the range.
    pub fn add(&mut self, at: u64) {
        while at >= self.width * BUCKETS as u64 {
            for i in 0..BUCKETS / 2 {
                self.counts[i] = self.counts[2 * i] + self.counts[2 * i + 1];
            }
            self.counts[BUCKETS / 2..].fill(0);
            self.width *= 2;
        }
        self.counts[(at / self.width) as usize] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A table's differing keys by position in its key space.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DamageMap {
    /// Differing keys per bucket, the table's rows in key order cut into equal parts.
    pub buckets: Vec<u64>,
    /// Rows the map spans.
    pub rows: u64,
    /// Ranges whose positions are not known (read by an earlier run of a --checkpoint): their
    /// differences are not in the buckets.
    pub unmapped_ranges: usize,
}

/// Joins the strips of a table's ranges (in key order; `None` for a range without one) into
/// `n` buckets.
pub fn table_map(strips: &[Option<Strip>], n: usize) -> DamageMap {
    let rows: u64 = strips.iter().flatten().map(|s| s.rows.max(1)).sum();
    let mut map = DamageMap {
        buckets: vec![0; n],
        rows,
        unmapped_ranges: strips.iter().filter(|s| s.is_none()).count(),
    };
    let mut offset = 0u64;
    for strip in strips.iter().flatten() {
        let span = strip.rows.max(1);
        for (b, &count) in strip.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let mid = (b as u64 * strip.width + strip.width / 2).min(span - 1);
            let at = offset + mid;
            let bucket = ((at as u128 * n as u128) / rows.max(1) as u128) as usize;
            map.buckets[bucket.min(n - 1)] += count;
        }
        offset += span;
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(rows: u64, at: &[u64]) -> Strip {
        let mut s = Strip {
            rows,
            ..Strip::default()
        };
        for &a in at {
            s.add(a);
        }
        s
    }

    #[test]
    fn counts_stay_exact_as_buckets_widen() {
        let s = strip(1_000_000, &(0..1_000_000).step_by(7).collect::<Vec<_>>());
        assert_eq!(s.total(), (0..1_000_000).step_by(7).count() as u64);
        assert!(s.width >= 1_000_000 / BUCKETS as u64, "{}", s.width);
    }

    #[test]
    fn damage_lands_where_it_is_in_key_order() {
        // Two ranges of 1000 rows; damage at the end of the first and the start of the second:
        // the middle of the table.
        let strips = [
            Some(strip(1000, &[990, 995])),
            Some(strip(1000, &[1, 2, 3])),
        ];
        let map = table_map(&strips, 10);
        assert_eq!(map.rows, 2000);
        assert_eq!(map.buckets, vec![0, 0, 0, 0, 2, 3, 0, 0, 0, 0]);
        // Spread damage spreads.
        let spread = table_map(&[Some(strip(100, &(0..100).collect::<Vec<_>>()))], 4);
        assert_eq!(spread.buckets.iter().sum::<u64>(), 100);
        assert!(
            spread.buckets.iter().all(|&b| b >= 20),
            "{:?}",
            spread.buckets
        );
    }

    #[test]
    fn unknown_ranges_are_counted_not_placed() {
        let map = table_map(&[None, Some(strip(10, &[9]))], 5);
        assert_eq!(map.unmapped_ranges, 1);
        assert_eq!(map.buckets, vec![0, 0, 0, 0, 1]);
        assert_eq!(table_map(&[], 3).buckets, vec![0, 0, 0]);
    }
}
