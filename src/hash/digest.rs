//! [`RowBatch`] → [`DigestBatch`]: per row, the order key and the blake3 digest of the canonical row.
//!
//! The canonical row is every compared column, key columns first, each encoded by
//! `hash::canonical` (a NULL flag, a length prefix, a typed canonical value), so that equal rows
//! hash equal across sources even when a migration changed a column from int4 to int8, and no two
//! different rows can be confused by shifting bytes between columns. The order key
//! (`key::encode`) is what the merge compares; it is kept in one arena per batch. This is the
//! per-row hot path: one arena of canonical rows per batch, no allocation per value, and the
//! digests computed 16 rows at a time in blake3's SIMD lanes.

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

/// Encodes and hashes every row of a batch: all rows are encoded first, into one arena, then
/// hashed in SIMD groups of equal padded length.
pub fn digest_batch(codec: &RowCodec, rows: RowBatch) -> Result<DigestBatch, ValueError> {
    let n = rows.len();
    let mut keys = Vec::with_capacity(n * 12);
    let mut key_ends = Vec::with_capacity(n);
    let mut arena = RowArena {
        bytes: Vec::with_capacity(arena_size(&rows)),
        rows: Vec::with_capacity(n),
        streamed: Vec::new(),
    };
    for row in 0..n {
        for col in 0..codec.nkey {
            let raw = rows
                .field(row, col)
                .ok_or(ValueError::new("key", "NULL in a key column"))?;
            encode_key_part(&codec.kinds[col], raw, &mut keys)?;
        }
        key_ends.push(keys.len() as u32);
        if rows.row_byte_len(row) > STREAMED_ROW {
            arena
                .streamed
                .push((row as u32, streamed_digest(codec, &rows, row)?));
            arena.rows.push((0, 0));
            continue;
        }
        let start = arena.begin();
        for (kind, raw) in codec.kinds.iter().zip(rows.row_fields(row)) {
            canonical::encode_field(kind, raw, &mut arena.bytes)?;
        }
        arena.end(start);
    }
    Ok(DigestBatch {
        rows,
        keys,
        key_ends,
        digests: arena.digests(),
    })
}

/// The arena's room for a batch: every row's bytes and padding, but the streamed rows'.
fn arena_size(rows: &RowBatch) -> usize {
    let streamed: usize = (0..rows.len())
        .map(|r| rows.row_byte_len(r))
        .filter(|&len| len > STREAMED_ROW)
        .sum();
    rows.byte_len().saturating_sub(streamed) + rows.len() * BLOCK
}

/// Rows whose fields hold more bytes than this are hashed as they are read ([`streamed_digest`])
/// instead of being copied into the batch's arena: memory stays at the row itself, whatever the
/// size of its values.
const STREAMED_ROW: usize = 1 << 20;

/// [`row_digest`] of a row's canonical encoding, without building it: large verbatim values
/// (text, bytea) go to the hasher where they lie, the other fields through a small buffer.
fn streamed_digest(codec: &RowCodec, rows: &RowBatch, row: usize) -> Result<Digest, ValueError> {
    let mut hasher = blake3::Hasher::new();
    let mut scratch = Vec::new();
    let mut len = 0usize;
    for (kind, raw) in codec.kinds.iter().zip(rows.row_fields(row)) {
        match raw.and_then(|raw| Some((raw, canonical::verbatim_prefix(kind, raw)?))) {
            Some((raw, (prefix, n))) if raw.len() >= 127 => {
                hasher.update(&prefix[..n]);
                hasher.update(raw);
                len += n + raw.len();
            }
            _ => {
                scratch.clear();
                canonical::encode_field(kind, raw, &mut scratch)?;
                hasher.update(&scratch);
                len += scratch.len();
            }
        }
    }
    let zeros = padded_len(len) - 4 - len;
    hasher.update(&[0u8; BLOCK][..zeros]);
    hasher.update(&(len as u32).to_le_bytes());
    Ok(*hasher.finalize().as_bytes())
}

/// The digest of one canonical row: blake3 of the row padded to whole 64-byte blocks, its length
/// (u32, little-endian) in the last four bytes. The padding is what lets [`digest_batch`] hash
/// up to 16 rows at once in the SIMD lanes of blake3's compression function (rows of up to 1020
/// canonical bytes, one blake3 chunk); the trailing length keeps the padded form injective.
pub fn row_digest(canonical: &[u8]) -> Digest {
    let mut padded = Vec::with_capacity(padded_len(canonical.len()));
    padded.extend_from_slice(canonical);
    pad(&mut padded, 0);
    *blake3::hash(&padded).as_bytes()
}

/// Bytes of a row of `len` canonical bytes once padded.
fn padded_len(len: usize) -> usize {
    (len + 4).div_ceil(BLOCK) * BLOCK
}

/// Pads the row that starts at `start` of `buf` and runs to its end.
fn pad(buf: &mut Vec<u8>, start: usize) {
    let len = buf.len() - start;
    buf.resize(start + padded_len(len) - 4, 0);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
}

const BLOCK: usize = blake3::BLOCK_LEN;
/// Rows of at most this many blocks fit one blake3 chunk and are hashed in SIMD groups.
const MAX_BLOCKS: usize = blake3::CHUNK_LEN / BLOCK;

/// Padded canonical rows laid end to end, hashed together once the batch is encoded.
#[derive(Default)]
struct RowArena {
    bytes: Vec<u8>,
    /// Per row: where it starts and how many blocks it has (none for a streamed row).
    rows: Vec<(usize, usize)>,
    /// The rows hashed as they were read, with their digests.
    streamed: Vec<(u32, Digest)>,
}

impl RowArena {
    fn begin(&mut self) -> usize {
        self.bytes.len()
    }

    fn end(&mut self, start: usize) {
        pad(&mut self.bytes, start);
        self.rows.push((start, (self.bytes.len() - start) / BLOCK));
    }

    /// Every row's digest, in row order.
    fn digests(&self) -> Vec<Digest> {
        let mut out = vec![[0u8; 32]; self.rows.len()];
        let mut by_blocks: [Vec<u32>; MAX_BLOCKS + 1] = Default::default();
        for &(i, digest) in &self.streamed {
            out[i as usize] = digest;
        }
        for (i, &(start, blocks)) in self.rows.iter().enumerate() {
            if blocks == 0 {
                continue;
            } else if blocks <= MAX_BLOCKS {
                by_blocks[blocks].push(i as u32);
            } else {
                let end = start + blocks * BLOCK;
                out[i] = *blake3::hash(&self.bytes[start..end]).as_bytes();
            }
        }
        for (blocks, rows) in by_blocks.iter().enumerate().skip(1) {
            self.hash_group(blocks, rows, &mut out);
        }
        out
    }

    fn hash_group(&self, blocks: usize, rows: &[u32], out: &mut [Digest]) {
        macro_rules! by_len {
            ($($n:literal)*) => {
                match blocks {
                    $($n => self.hash_same::<{ $n * BLOCK }>(rows, out),)*
                    _ => unreachable!("rows of more than one chunk are hashed alone"),
                }
            };
        }
        by_len!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
    }

    /// Hashes rows of exactly `N` padded bytes through blake3's many-inputs kernel: each row is
    /// the whole input of its own hash (chunk 0, the root), so the result is the standard blake3
    /// of the padded row, as `row_digest` computes it one at a time (the unit tests hold the two
    /// equal for every length).
    fn hash_same<const N: usize>(&self, rows: &[u32], out: &mut [Digest]) {
        use blake3::platform::Platform;
        const CHUNK_START: u8 = 1 << 0;
        const CHUNK_END: u8 = 1 << 1;
        const ROOT: u8 = 1 << 3;
        const IV: [u32; 8] = [
            0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
            0x5BE0CD19,
        ];
        let platform = Platform::detect();
        let mut inputs: Vec<&[u8; N]> = Vec::with_capacity(GROUP);
        let mut hashed = [0u8; 32 * GROUP];
        for group in rows.chunks(GROUP) {
            inputs.clear();
            inputs.extend(group.iter().map(|&i| {
                let start = self.rows[i as usize].0;
                <&[u8; N]>::try_from(&self.bytes[start..start + N]).expect("N bytes")
            }));
            let hashed = &mut hashed[..32 * group.len()];
            platform.hash_many(
                &inputs,
                &IV,
                0,
                blake3::IncrementCounter::No,
                0,
                CHUNK_START,
                CHUNK_END | ROOT,
                hashed,
            );
            for (&i, digest) in group.iter().zip(hashed.chunks_exact(32)) {
                out[i as usize].copy_from_slice(digest);
            }
        }
    }
}

/// Rows handed to the SIMD kernel at once: a multiple of every platform's degree.
const GROUP: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn simd_groups_hash_as_one_row_at_a_time() {
        // Every length up to past one chunk, several rows of each so that groups fill and split.
        let mut arena = RowArena::default();
        let mut expected = Vec::new();
        for len in 0..1100 {
            for seed in 0..3 {
                let bytes = row(len, seed);
                let start = arena.begin();
                arena.bytes.extend_from_slice(&bytes);
                arena.end(start);
                expected.push(row_digest(&bytes));
            }
        }
        assert_eq!(arena.digests(), expected);
    }

    #[test]
    fn digest_is_blake3_of_the_padded_row() {
        let bytes = row(70, 9);
        let mut padded = bytes.clone();
        padded.resize(124, 0);
        padded.extend_from_slice(&70u32.to_le_bytes());
        assert_eq!(row_digest(&bytes), *blake3::hash(&padded).as_bytes());
    }

    #[test]
    fn padding_keeps_rows_apart() {
        // A row and the same row with zero bytes after it (a NULL field is one zero byte) pad to
        // the same blocks but for the length.
        assert_ne!(row_digest(b"ab"), row_digest(b"ab\0"));
        assert_ne!(row_digest(b""), row_digest(b"\0"));
        assert_ne!(row_digest(&[0; 60]), row_digest(&[0; 61]));
    }

    #[test]
    fn rows_past_the_streaming_size_hash_as_their_canonical_encoding() {
        use crate::rows::batch::{tests::copy_stream, CopyDecoder};
        let codec = RowCodec {
            kinds: vec![
                TypeKind::Int(4),
                TypeKind::Text,
                TypeKind::Bytea,
                TypeKind::Bpchar,
                TypeKind::Jsonb,
                TypeKind::Text,
            ],
            nkey: 1,
        };
        let big = vec![b'x'; STREAMED_ROW + 1];
        let jsonb: &[u8] = b"\x01{\"a\": 1}";
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            // Big text and bytea; a short text, padded bpchar, jsonb and NULL beside them.
            vec![
                Some(&[0, 0, 0, 1]),
                Some(&big),
                Some(&big[..300]),
                Some(b"ab  "),
                Some(jsonb),
                None,
            ],
            // Small row between two big ones.
            vec![
                Some(&[0, 0, 0, 2]),
                Some(b"a"),
                None,
                None,
                None,
                Some(b"b"),
            ],
            // Big only together: two halves over the limit, each value streamed.
            vec![
                Some(&[0, 0, 0, 3]),
                Some(&big[..STREAMED_ROW / 2 + 1]),
                Some(&big[..STREAMED_ROW / 2 + 1]),
                None,
                None,
                Some(b""),
            ],
            // A big row of short values only.
            vec![
                Some(&[0, 0, 0, 4]),
                Some(&big[..100]),
                Some(&big[..1]),
                Some(&big),
                None,
                None,
            ],
        ];
        let mut decoder = CopyDecoder::new(codec.kinds.len());
        decoder.push(&copy_stream(&rows)).unwrap();
        let batch = digest_batch(&codec, decoder.finish().unwrap().unwrap()).unwrap();
        assert!(batch.rows.row_byte_len(0) > STREAMED_ROW);
        assert!(batch.rows.row_byte_len(2) > STREAMED_ROW);
        for (i, row) in rows.iter().enumerate() {
            let mut encoded = Vec::new();
            for (kind, raw) in codec.kinds.iter().zip(row) {
                canonical::encode_field(kind, *raw, &mut encoded).unwrap();
            }
            assert_eq!(batch.digests[i], row_digest(&encoded), "row {i}");
        }
    }
}
