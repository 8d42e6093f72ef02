//! The row guard: does every row a recovery touches still look as it did when it was planned?
//!
//! For each table of the plan, the key records are read back in chunks, the target's current rows
//! for those keys are fetched in binary and digested with the same canonical encoding the
//! comparison used, and each digest is compared with the record's expected one (`before` for the
//! guard ahead of the restore, `after` for the re-verify behind it). A key without a row counts as
//! "no row". Rows are matched to records by their order key, never by rendered text. The rows are
//! read as the recover writers read theirs ([`KeyedFetch`]), so uncommitted rows of the apply's
//! own transaction are what the re-verify sees.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::classify::Action;
use crate::error::{Context, Error, Result};
use crate::hash::digest::{digest_batch, Digest, RowCodec};
use crate::pool::on_pool;
use crate::recover::fetch::{JoinChoice, KeyedFetch, RowOrder, NO_HASH_JOIN, RESET_HASH_JOIN};
use crate::recovery::keys::{KeyChunks, KeyRecord};
use crate::recovery::plan::TableRestore;
use crate::rows::batch::{CopyDecoder, RowBatch};
use crate::tree::{hex, is_hex_of, unhex_into};

/// Which expected state to check against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Before,
    After,
}

/// A key whose row is not as expected.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mismatch {
    pub table: String,
    pub key: Box<serde_json::value::RawValue>,
    /// Hex digest expected, or null for "no row".
    pub expected: Option<String>,
    /// Hex digest found, or null for "no row".
    pub found: Option<String>,
    /// A keyless table's row: the copies of it expected, and found (see `apply::copies`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_copies: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found_copies: Option<u64>,
}

impl Mismatch {
    /// `key [..]`, or for a keyless row `row [..] (2 copies expected, 3 found)`.
    pub fn named(&self) -> String {
        match (self.expected_copies, self.found_copies) {
            (Some(want), Some(n)) => {
                format!("row {} ({want} copies expected, {n} found)", self.key.get())
            }
            _ => format!("key {}", self.key.get()),
        }
    }
}

/// Keys checked per query (see [`KeyedFetch`]): the cost is per key, not per query, well before
/// this, and three chunks are in memory at once (parsing, fetching, digesting).
const GUARD_CHUNK: usize = 20_000;

/// Keys of one table left out of a check (conflicts skipped with `--skip-changed`), by their
/// JSON key.
pub type Skipped = Arc<HashSet<String>>;

/// Checks the records of one table with one of `actions`, a chunk of keys at a time; returns the
/// keys that differ from `expect`. Runs inside the apply's transaction.
pub async fn check_table(
    client: &Client,
    table: &TableRestore,
    codec: Arc<RowCodec>,
    keys_file: &Path,
    expect: Expect,
    actions: &[Action],
    skip: Skipped,
) -> Result<Vec<Mismatch>> {
    let chunks = KeyChunks::open(keys_file, actions)?
        .with_chunk(GUARD_CHUNK)
        .with_ramp(GUARD_CHUNK / 10, table.planned(actions));
    let at = || format!("checking rows of {}", table.table);
    client.batch_execute(NO_HASH_JOIN).await.context(at)?;
    let mut mismatches = Vec::new();
    // Three things overlap: parsing the next chunk of key records into its query (pool), the
    // server reading the rows of this chunk, and judging the rows of the previous one (pool). The
    // runtime's thread only moves bytes.
    let shared = Arc::new(table.clone());
    let mut next = read_chunk(chunks, shared.clone());
    let mut judging: Option<Judged> = None;
    let mut join = JoinChoice::default();
    loop {
        let (chunks, chunk) = next
            .await
            .map_err(|_| Error::internal("the pool dropped a job"))?;
        let Some((records, fetch)) = chunk? else {
            break;
        };
        next = read_chunk(chunks, shared.clone());
        let copy = join.prepare(client, &fetch).await.context(at)?;
        let rows = current_rows(client, table, &copy).await?;
        let job = Judge {
            table: shared.clone(),
            codec: codec.clone(),
            expect,
            skip: skip.clone(),
        };
        if let Some(previous) = judging.replace(job.start(records, rows)) {
            mismatches.extend(judged(previous).await?);
        }
    }
    if let Some(previous) = judging {
        mismatches.extend(judged(previous).await?);
    }
    // The restore's own joins (`UPDATE ... FROM`, `DELETE ... USING`) plan as they would.
    client.batch_execute(RESET_HASH_JOIN).await.context(at)?;
    Ok(mismatches)
}

/// A chunk's mismatches, on their way from the pool.
type Judged = tokio::sync::oneshot::Receiver<Result<Vec<Mismatch>>>;

async fn judged(pending: Judged) -> Result<Vec<Mismatch>> {
    pending
        .await
        .map_err(|_| Error::internal("the pool dropped a job"))?
}

/// What judging a chunk needs besides its records and rows.
struct Judge {
    table: Arc<TableRestore>,
    codec: Arc<RowCodec>,
    expect: Expect,
    skip: Skipped,
}

impl Judge {
    /// Digests the rows and lists the records whose key does not hold the row `expect` says, on
    /// the pool.
    fn start(self, records: Vec<KeyRecord>, rows: Option<RowBatch>) -> Judged {
        on_pool(move || {
            let digests = rows.map(|b| digest_batch(&self.codec, b)).transpose()?;
            let found: HashMap<&[u8], &Digest> = digests
                .iter()
                .flat_map(|d| (0..d.len()).map(|i| (d.key(i), &d.digests[i])))
                .collect();
            let mut okey = Vec::new();
            let mut mismatches = Vec::new();
            // Kept keys are listed, never touched: nothing to guard or re-verify.
            for r in records.into_iter().filter(|r| r.action != Action::Keep) {
                if !self.skip.is_empty() && self.skip.contains(r.key_json.get()) {
                    continue;
                }
                let wanted = match self.expect {
                    Expect::Before => r.before,
                    Expect::After => r.after,
                };
                if !unhex_into(&r.okey, &mut okey) {
                    return Err(Error::usage(format!(
                        "corrupt order key in a key record of {}",
                        self.table.table
                    )));
                }
                let now = found.get(okey.as_slice()).copied();
                let same = match (&wanted, now) {
                    (Some(w), Some(n)) => is_hex_of(w, n),
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    mismatches.push(Mismatch {
                        table: self.table.table.clone(),
                        key: r.key_json,
                        expected: wanted,
                        found: now.map(|d| hex(d)),
                        expected_copies: None,
                        found_copies: None,
                    });
                }
            }
            Ok(mismatches)
        })
    }
}

/// A chunk of key records and the query that reads their rows, or the end.
type Chunk = (KeyChunks, Result<Option<(Vec<KeyRecord>, KeyedFetch)>>);

/// The next chunk of key records and its query, built on the pool.
fn read_chunk(
    mut chunks: KeyChunks,
    table: Arc<TableRestore>,
) -> tokio::sync::oneshot::Receiver<Chunk> {
    on_pool(move || {
        let chunk = chunks.next_records().map(|records| {
            records.map(|mut records| {
                let fetch =
                    KeyedFetch::new(&table, &table.columns, &mut records, true, RowOrder::Any);
                (records, fetch)
            })
        });
        (chunks, chunk)
    })
}

/// The target's current rows for a chunk's query, in one batch.
async fn current_rows(
    client: &Client,
    table: &TableRestore,
    query: &str,
) -> Result<Option<RowBatch>> {
    let at = || format!("checking rows of {}", table.table);
    let stream = client.copy_out(query).await.context(at)?;
    let mut stream = std::pin::pin!(stream);
    let mut decoder = CopyDecoder::new(table.columns.len());
    while let Some(piece) = stream.next().await {
        decoder.push(&piece.context(at)?)?;
    }
    Ok(decoder.finish()?)
}
