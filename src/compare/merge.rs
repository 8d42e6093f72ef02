//! The merge: ordered row digests of 2 or 3 sources, walked together by key in one pass.
//!
//! Each source's rows of one key range arrive as [`DigestBatch`]es sorted by order key. A
//! [`Cursor`] per source holds the current batch; [`merge`] repeatedly takes the smallest head key,
//! groups the sources whose head has that key, and hands the group to the caller, who classifies
//! it (identical, missing, extra, divergent, or one of the three-way classes). Matching rows are
//! compared by digest only and never read twice. The merge trusts nothing about order: each key
//! must be strictly greater than the one before it on the same source and inside the range the
//! source was asked for; otherwise the server's order disagrees with ours and the result would be
//! wrong, so it stops with an [`OrderError`]. Pure: the caller feeds batches when a cursor asks.

use crate::hash::digest::DigestBatch;
use crate::key::range::KeyRange;

/// The most sources one merge walks: base, replica, target.
pub const MAX_SOURCES: usize = 3;

/// Where one source stands in its stream of batches.
#[derive(Debug, Default)]
pub struct Cursor {
    batch: Option<DigestBatch>,
    pos: usize,
    /// The last key of the previous batch, to check order across batch boundaries.
    prev_key: Option<Vec<u8>>,
    done: bool,
}

/// What broke the ordering contract, and on which source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    /// Keys not strictly increasing: a duplicate key or a server order unlike byte order.
    OutOfOrder { source: usize },
    /// A key outside the range the source was asked for.
    OutsideRange { source: usize },
}

/// What the merge needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The next batch (or the end) of this source.
    Need(usize),
    Done,
}

impl Cursor {
    pub fn new() -> Self {
        Cursor::default()
    }

    fn needs_batch(&self) -> bool {
        !self.done && self.batch.as_ref().is_none_or(|b| self.pos >= b.len())
    }

    /// The current batch and row, when there is one.
    pub fn current(&self) -> Option<(&DigestBatch, usize)> {
        self.batch
            .as_ref()
            .filter(|b| self.pos < b.len())
            .map(|b| (b, self.pos))
    }

    fn head_key(&self) -> Option<&[u8]> {
        self.current().map(|(b, i)| b.key(i))
    }

    /// Gives the cursor its next batch, or `None` at the end of the stream; checks the batch's
    /// order against the previous batch and its ends against the range.
    pub fn feed(
        &mut self,
        batch: Option<DigestBatch>,
        range: &KeyRange,
        source: usize,
    ) -> Result<(), OrderError> {
        if let Some(old) = self.batch.take().filter(|b| !b.is_empty()) {
            self.prev_key = Some(old.key(old.len() - 1).to_vec());
        }
        self.pos = 0;
        let Some(batch) = batch else {
            self.done = true;
            return Ok(());
        };
        if let (Some(prev), false) = (&self.prev_key, batch.is_empty()) {
            if batch.key(0) <= prev.as_slice() {
                return Err(OrderError::OutOfOrder { source });
            }
        }
        let inside = batch.is_empty()
            || (range.contains(batch.key(0)) && range.contains(batch.key(batch.len() - 1)));
        if !inside {
            return Err(OrderError::OutsideRange { source });
        }
        self.batch = Some(batch);
        Ok(())
    }

    /// Moves past the current row, checking that the next key in the batch is greater.
    fn advance(&mut self, source: usize) -> Result<(), OrderError> {
        let batch = self.batch.as_ref().expect("advance without a batch");
        self.pos += 1;
        if self.pos < batch.len() && batch.key(self.pos) <= batch.key(self.pos - 1) {
            return Err(OrderError::OutOfOrder { source });
        }
        Ok(())
    }
}

/// Which sources hold the current key, and at which row of their current batch.
pub type Present = [Option<usize>; MAX_SOURCES];

/// Walks the cursors until one needs a batch or all are done, calling `on_key` once per distinct
/// key with the sources that hold it.
pub fn merge(
    cursors: &mut [Cursor],
    on_key: &mut impl FnMut(&[Cursor], &Present),
) -> Result<Step, OrderError> {
    debug_assert!(cursors.len() <= MAX_SOURCES);
    loop {
        if let Some(i) = cursors.iter().position(Cursor::needs_batch) {
            return Ok(Step::Need(i));
        }
        let Some(min) = smallest_head(cursors) else {
            return Ok(Step::Done);
        };
        let min_key = cursors[min].head_key();
        let mut present: Present = [None; MAX_SOURCES];
        for (i, c) in cursors.iter().enumerate() {
            if c.head_key() == min_key {
                present[i] = Some(c.pos);
            }
        }
        on_key(cursors, &present);
        for (i, c) in cursors.iter_mut().enumerate() {
            if present[i].is_some() {
                c.advance(i)?;
            }
        }
    }
}

/// The cursor with the smallest head key.
fn smallest_head(cursors: &[Cursor]) -> Option<usize> {
    let heads = cursors
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.head_key().map(|k| (k, i)));
    heads.min().map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::hash::digest::{digest_batch, RowCodec};
    use crate::key::encode::encode_key_part;
    use crate::key::range::KeyBound;
    use crate::rows::batch::tests::copy_stream;
    use crate::rows::batch::CopyDecoder;
    use crate::shape::TypeKind;

    /// Rows of `(id int4, v text)`, keyed by `id`.
    fn codec() -> RowCodec {
        RowCodec {
            kinds: vec![TypeKind::Int(4), TypeKind::Text],
            nkey: 1,
        }
    }

    /// A digested batch of `(id, v)` rows, in the order given (sorted or not).
    fn batch(rows: &[(i32, &str)]) -> DigestBatch {
        let rows: Vec<Vec<Option<Vec<u8>>>> = rows
            .iter()
            .map(|(k, v)| vec![Some(k.to_be_bytes().to_vec()), Some(v.as_bytes().to_vec())])
            .collect();
        let mut decoder = CopyDecoder::new(2);
        decoder.push(&copy_stream(&rows)).unwrap();
        let rows = decoder.finish().unwrap().expect("a batch has rows");
        digest_batch(&codec(), rows).unwrap()
    }

    /// A batch of the given keys, every value `v`.
    fn keys(ks: &[i32]) -> DigestBatch {
        batch(&ks.iter().map(|&k| (k, "v")).collect::<Vec<_>>())
    }

    fn bound(k: i32) -> Arc<KeyBound> {
        let mut order_key = Vec::new();
        encode_key_part(&TypeKind::Int(4), &k.to_be_bytes(), &mut order_key).unwrap();
        Arc::new(KeyBound {
            literals: vec![format!("'{k}'::integer")],
            order_key,
            display: k.to_string(),
        })
    }

    /// `[lo, hi)`, an end open when `None`.
    fn range(lo: Option<i32>, hi: Option<i32>) -> KeyRange {
        KeyRange {
            lo: lo.map(bound),
            hi: hi.map(bound),
        }
    }

    /// Per key the merge reported: the key, and each source's value (`None`: not present).
    type Seen = Vec<(i32, [Option<String>; MAX_SOURCES])>;

    /// Reads the rows `present` points at back out of the cursors' batches, by their fields (not
    /// their order keys), checking that every present source holds the same key.
    fn record(cursors: &[Cursor], present: &Present, seen: &mut Seen) {
        let mut key = None;
        let mut values: [Option<String>; MAX_SOURCES] = Default::default();
        for (i, cursor) in cursors.iter().enumerate() {
            let Some(row) = present[i] else { continue };
            let (batch, pos) = cursor.current().expect("a present source has a row");
            assert_eq!(pos, row, "source {i}: present row is not the current one");
            let k = i32::from_be_bytes(batch.rows.field(row, 0).unwrap().try_into().unwrap());
            assert!(
                key.is_none_or(|key| key == k),
                "one group holds keys {key:?} and {k}"
            );
            key = Some(k);
            values[i] =
                Some(String::from_utf8(batch.rows.field(row, 1).unwrap().to_vec()).unwrap());
        }
        for p in &present[cursors.len()..] {
            assert_eq!(*p, None, "a source beyond the cursors is present");
        }
        seen.push((key.expect("a group without a source"), values));
    }

    /// What a merge run to its end (or first error) did.
    #[derive(Debug)]
    struct Outcome {
        seen: Seen,
        /// The sources asked for, in order.
        asked: Vec<usize>,
        result: Result<(), OrderError>,
    }

    /// Merges `sources` (each a list of batches) over `range`, feeding a source its next batch
    /// (then its end) whenever the merge asks.
    fn run(sources: Vec<Vec<DigestBatch>>, range: &KeyRange) -> Outcome {
        let mut feeds: Vec<_> = sources.into_iter().map(Vec::into_iter).collect();
        let mut cursors: Vec<Cursor> = feeds.iter().map(|_| Cursor::new()).collect();
        let mut seen = Vec::new();
        let mut asked = Vec::new();
        let result = loop {
            match merge(&mut cursors, &mut |cs, p| record(cs, p, &mut seen)) {
                Ok(Step::Need(i)) => {
                    assert!(asked.len() < 10_000, "the merge keeps asking");
                    asked.push(i);
                    if let Err(e) = cursors[i].feed(feeds[i].next(), range, i) {
                        break Err(e);
                    }
                }
                Ok(Step::Done) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        Outcome {
            seen,
            asked,
            result,
        }
    }

    fn present_at(key: i32, values: [Option<&str>; MAX_SOURCES]) -> (i32, [Option<String>; 3]) {
        (key, values.map(|v| v.map(str::to_string)))
    }

    #[test]
    fn two_sources_group_equal_keys() {
        let out = run(
            vec![
                vec![batch(&[(1, "a"), (2, "b"), (4, "d")])],
                vec![batch(&[(2, "x"), (3, "c"), (4, "d")])],
            ],
            &KeyRange::all(),
        );
        assert_eq!(out.result, Ok(()));
        assert_eq!(
            out.seen,
            vec![
                present_at(1, [Some("a"), None, None]),
                present_at(2, [Some("b"), Some("x"), None]),
                present_at(3, [None, Some("c"), None]),
                present_at(4, [Some("d"), Some("d"), None]),
            ]
        );
    }

    #[test]
    fn three_sources_group_equal_keys() {
        let out = run(
            vec![
                vec![batch(&[(-5, "a"), (0, "b")])],
                vec![batch(&[(-5, "a"), (7, "r")])],
                vec![batch(&[(0, "t"), (7, "r"), (9, "n")])],
            ],
            &KeyRange::all(),
        );
        assert_eq!(out.result, Ok(()));
        assert_eq!(
            out.seen,
            vec![
                present_at(-5, [Some("a"), Some("a"), None]),
                present_at(0, [Some("b"), None, Some("t")]),
                present_at(7, [None, Some("r"), Some("r")]),
                present_at(9, [None, None, Some("n")]),
            ]
        );
    }

    /// The merge never passes a key while a source whose batch ran out might still hold it: it
    /// asks for that source's next batch first, and asks each source for each batch once.
    #[test]
    fn asks_for_the_next_batch_before_passing_a_key() {
        let out = run(
            vec![
                vec![keys(&[1, 2]), keys(&[3, 5])],
                vec![keys(&[2, 3]), keys(&[4])],
            ],
            &KeyRange::all(),
        );
        assert_eq!(out.result, Ok(()));
        let seen: Vec<(i32, [bool; 2])> = out
            .seen
            .iter()
            .map(|(k, v)| (*k, [v[0].is_some(), v[1].is_some()]))
            .collect();
        assert_eq!(
            seen,
            [
                (1, [true, false]),
                (2, [true, true]),
                (3, [true, true]),
                (4, [false, true]),
                (5, [true, false]),
            ]
        );
        // Both first batches; source 0's second once key 2 exhausted its first, source 1's
        // second once key 3 did; then source 1's end after key 4, source 0's after key 5.
        assert_eq!(out.asked, [0, 1, 0, 1, 1, 0]);
    }

    #[test]
    fn empty_sources_end_at_once() {
        for n in 1..=MAX_SOURCES {
            let out = run((0..n).map(|_| Vec::new()).collect(), &KeyRange::all());
            assert_eq!(out.result, Ok(()));
            assert!(out.seen.is_empty(), "{n} sources: {:?}", out.seen);
            assert_eq!(out.asked, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_source_without_rows_leaves_every_key_to_the_others() {
        let out = run(
            vec![
                vec![keys(&[1, 2]), keys(&[4])],
                Vec::new(),
                vec![keys(&[2, 3])],
            ],
            &KeyRange::all(),
        );
        assert_eq!(out.result, Ok(()));
        let v = Some("v");
        assert_eq!(
            out.seen,
            vec![
                present_at(1, [v, None, None]),
                present_at(2, [v, None, v]),
                present_at(3, [None, None, v]),
                present_at(4, [v, None, None]),
            ]
        );
    }

    #[test]
    fn keys_out_of_order_within_a_batch_are_refused() {
        // Source 0 goes back from 3 to 2: keys up to 3 are passed, then the merge stops.
        let out = run(
            vec![vec![keys(&[1, 3, 2])], vec![keys(&[1, 2, 3])]],
            &KeyRange::all(),
        );
        assert_eq!(out.result, Err(OrderError::OutOfOrder { source: 0 }));
        let passed: Vec<i32> = out.seen.iter().map(|(k, _)| *k).collect();
        assert_eq!(passed, [1, 2, 3]);
        // A duplicate key is out of order too, and the error names its source.
        for dup in [&[1, 2, 2][..], &[5, 5], &[-1, 0, 0, 1]] {
            let out = run(
                vec![vec![keys(&[0, 1, 2])], vec![keys(&[0]), keys(dup)]],
                &KeyRange::all(),
            );
            assert_eq!(
                out.result,
                Err(OrderError::OutOfOrder { source: 1 }),
                "{dup:?}"
            );
        }
        // Negative keys sort before positive ones (the order key flips the sign bit): a batch
        // that goes from -1 to 1 is in order, one from 1 to -1 is not.
        let ok = run(
            vec![vec![keys(&[i32::MIN, -1, 1, i32::MAX])]],
            &KeyRange::all(),
        );
        assert_eq!(ok.result, Ok(()));
        let bad = run(vec![vec![keys(&[1, -1])]], &KeyRange::all());
        assert_eq!(bad.result, Err(OrderError::OutOfOrder { source: 0 }));
    }

    #[test]
    fn keys_out_of_order_across_batches_are_refused() {
        for second in [&[2, 3][..], &[1], &[0, 9], &[-7]] {
            let out = run(
                vec![vec![keys(&[5])], vec![keys(&[1, 2]), keys(second)]],
                &KeyRange::all(),
            );
            assert_eq!(
                out.result,
                Err(OrderError::OutOfOrder { source: 1 }),
                "[1, 2] then {second:?}"
            );
        }
        // Directly: the check is against the last key of the previous batch.
        let all = KeyRange::all();
        let mut c = Cursor::new();
        c.feed(Some(keys(&[1, 2])), &all, 2).unwrap();
        assert_eq!(
            c.feed(Some(keys(&[2])), &all, 2),
            Err(OrderError::OutOfOrder { source: 2 })
        );
        let mut c = Cursor::new();
        c.feed(Some(keys(&[1, 2])), &all, 0).unwrap();
        assert_eq!(c.feed(Some(keys(&[3])), &all, 0), Ok(()));
    }

    #[test]
    fn keys_outside_the_range_are_refused() {
        let (min, max) = (i32::MIN, i32::MAX);
        // (lo, hi, a batch's keys, whether they are inside [lo, hi))
        type Case<'a> = (Option<i32>, Option<i32>, &'a [i32], bool);
        let cases: &[Case] = &[
            // [10, 20): the low end is inside, the high end is not.
            (Some(10), Some(20), &[10, 19], true),
            (Some(10), Some(20), &[9, 15], false),
            (Some(10), Some(20), &[12, 20], false),
            (Some(10), Some(20), &[20], false),
            (Some(10), Some(20), &[-15], false),
            // (-inf, 10): open head.
            (None, Some(10), &[min, -1, 9], true),
            (None, Some(10), &[5, 10], false),
            (None, Some(-10), &[-11], true),
            (None, Some(-10), &[-10], false),
            // [20, +inf): open tail.
            (Some(20), None, &[20, max], true),
            (Some(20), None, &[19, 25], false),
            (Some(-3), None, &[-3, 0], true),
            (Some(-3), None, &[-4], false),
            // The whole key space.
            (None, None, &[min, 0, max], true),
        ];
        for &(lo, hi, ks, inside) in cases {
            let r = range(lo, hi);
            let mut c = Cursor::new();
            let want = match inside {
                true => Ok(()),
                false => Err(OrderError::OutsideRange { source: 1 }),
            };
            assert_eq!(c.feed(Some(keys(ks)), &r, 1), want, "{ks:?} in {r}");
        }
        // Through the merge: a later batch that leaves the range stops it.
        let r = range(Some(0), Some(100));
        let out = run(
            vec![vec![keys(&[1, 50])], vec![keys(&[2]), keys(&[99, 100])]],
            &r,
        );
        assert_eq!(out.result, Err(OrderError::OutsideRange { source: 1 }));
    }

    /// One source's rows, cut into batches of the given sizes (the last takes what is left).
    fn cut(rows: &[(i32, &'static str)], sizes: &[usize]) -> Vec<DigestBatch> {
        let mut batches = Vec::new();
        let mut rest = rows;
        for &n in sizes {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at(n.min(rest.len()));
            batches.push(batch(head));
            rest = tail;
        }
        if !rest.is_empty() {
            batches.push(batch(rest));
        }
        batches
    }

    proptest! {
        /// The merge of 2 or 3 sources, however their rows are cut into batches, reports
        /// exactly the union of their keys in order, each with the sources that hold it (and
        /// their rows), as a naive walk over sorted maps computes it; and it asks for every
        /// batch and every end exactly once.
        #[test]
        fn merge_equals_the_naive_set_difference(
            n in 2usize..=MAX_SOURCES,
            maps in proptest::collection::vec(
                proptest::collection::btree_map(-40i32..40, 0usize..3, 0..30), MAX_SOURCES),
            sizes in proptest::collection::vec(
                proptest::collection::vec(1usize..6, 0..12), MAX_SOURCES),
            lo in proptest::option::of(-45i32..45),
            span in proptest::option::of(0i32..90),
        ) {
            const VALUES: [&str; 3] = ["a", "b", "c"];
            let hi = span.map(|s| lo.unwrap_or(-45) + s);
            let inside = |k: i32| lo.is_none_or(|lo| k >= lo) && hi.is_none_or(|hi| k < hi);
            let maps: Vec<BTreeMap<i32, &str>> = maps[..n]
                .iter()
                .map(|m| m.iter().filter(|(k, _)| inside(**k)).map(|(k, v)| (*k, VALUES[*v])).collect())
                .collect();
            let sources: Vec<Vec<DigestBatch>> = maps
                .iter()
                .zip(&sizes)
                .map(|(m, sizes)| cut(&m.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), sizes))
                .collect();
            let batches: usize = sources.iter().map(Vec::len).sum();

            let out = run(sources, &range(lo, hi));

            let mut union: Vec<i32> = maps.iter().flat_map(|m| m.keys().copied()).collect();
            union.sort_unstable();
            union.dedup();
            let want: Seen = union
                .into_iter()
                .map(|k| {
                    let mut values: [Option<String>; MAX_SOURCES] = Default::default();
                    for (i, m) in maps.iter().enumerate() {
                        values[i] = m.get(&k).map(|v| v.to_string());
                    }
                    (k, values)
                })
                .collect();
            prop_assert_eq!(out.result, Ok(()));
            prop_assert_eq!(out.seen, want);
            prop_assert_eq!(out.asked.len(), batches + n);
        }
    }
}
