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
