//! [`RowBatch`] → [`DigestBatch`]: per row, the order key and the blake3 digest of the canonical row.
//!
//! The canonical row is every compared column, key columns first, each encoded by
//! `hash::canonical` (a NULL flag, a length prefix, a typed canonical value), so that equal rows
//! hash equal across sources even when a migration changed a column from int4 to int8, and no two
//! different rows can be confused by shifting bytes between columns. The order key
//! (`key::encode`) is what the merge compares; it is kept in one arena per batch. This is the
//! per-row hot path: one scratch buffer reused for every row, no allocation per value.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::hash::canonical;
use crate::key::encode::encode_key_part;
use crate::rows::batch::RowBatch;
use crate::shape::{TypeKind, ValueError};

/// A digest of one canonical row.
pub type Digest = [u8; 32];

/// How one source's rows of one table are encoded: the kind of every selected column, key
/// columns first.
#[derive(Clone, Debug)]
pub struct RowCodec {
    pub kinds: Vec<TypeKind>,
    pub nkey: usize,
}

impl RowCodec {
    /// The canonical bytes of one column of one row, for telling which columns differ.
    pub fn canonical_field(
        &self,
        batch: &RowBatch,
        row: usize,
        col: usize,
    ) -> Result<Vec<u8>, ValueError> {
        let mut out = Vec::new();
        canonical::encode_field(&self.kinds[col], batch.field(row, col), &mut out)?;
        Ok(out)
    }
}

/// A batch of rows with their order keys and digests, in stream order.
#[derive(Debug)]
pub struct DigestBatch {
    pub rows: RowBatch,
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    pub digests: Vec<Digest>,
}

impl DigestBatch {
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The order key of row `i`.
    #[inline]
    pub fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.key_ends[i - 1] as usize
        };
        &self.keys[start..self.key_ends[i] as usize]
    }
}

/// Encodes and hashes every row of a batch.
pub fn digest_batch(codec: &RowCodec, rows: RowBatch) -> Result<DigestBatch, ValueError> {
    let n = rows.len();
    let mut keys = Vec::with_capacity(n * 12);
    let mut key_ends = Vec::with_capacity(n);
    let mut digests = Vec::with_capacity(n);
    let mut scratch = Vec::with_capacity(256);
    for row in 0..n {
        for col in 0..codec.nkey {
            let raw = rows
                .field(row, col)
                .ok_or(ValueError::new("key", "NULL in a key column"))?;
            encode_key_part(&codec.kinds[col], raw, &mut keys)?;
        }
        key_ends.push(keys.len() as u32);
        scratch.clear();
        for (col, kind) in codec.kinds.iter().enumerate() {
            canonical::encode_field(kind, rows.field(row, col), &mut scratch)?;
        }
        digests.push(*blake3::hash(&scratch).as_bytes());
    }
    Ok(DigestBatch {
        rows,
        keys,
        key_ends,
        digests,
    })
}

/// Hands a batch to the rayon pool and returns where its digests will arrive.
pub fn digest_on_pool(
    codec: Arc<RowCodec>,
    rows: RowBatch,
) -> oneshot::Receiver<Result<DigestBatch, ValueError>> {
    on_pool(move || digest_batch(&codec, rows))
}

/// Runs CPU work on the rayon pool and returns where its result will arrive: the one place where
/// CPU work leaves the tokio runtime, so that no tokio worker thread is ever blocked hashing or
/// encoding.
pub fn on_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(work());
    });
    rx
}
