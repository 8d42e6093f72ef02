//! One COPY per source, read into digested batches: the I/O half of comparing a range.
//!
//! A reader task runs the range's `COPY (SELECT … ORDER BY key) TO STDOUT (FORMAT binary)`, cuts
//! the stream into byte-bounded [`RowBatch`]es and hands each to the rayon pool for digesting; it
//! passes the pending results, in order, through a bounded channel, so reading, hashing and
//! merging overlap while at most [`QUEUE_DEPTH`] batches per source are in memory. Used by the
//! verify of a range (`range_diff`) and by a baseline's capture of one source.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::CopyOutStream;

use crate::error::{Context, Error, Result};
use crate::hash::digest::{digest_batch, DigestBatch, RowCodec};
use crate::key::range::KeyRange;
use crate::plan::TablePlan;
use crate::pool::on_pool;
use crate::rows::batch::{CopyDecoder, RowBatch};
use crate::shape::ValueError;
use crate::source::tapped_copy::TappedCopy;
use crate::source::throttle::RateLimit;
use crate::source::Session;

/// Batches per source waiting to be merged (hashing or hashed).
pub(crate) const QUEUE_DEPTH: usize = 4;

/// What a reader passes to the merge.
pub(crate) enum Item {
    Batch(oneshot::Receiver<Result<DigestBatch, ValueError>>),
    Failed(Error),
    End,
}

/// The COPY statement of one range on source `source` (its index in the plan); `flag` adds a
/// trailing boolean column (the target's `--changed-after` predicate), which the digest leaves
/// out. The table's `--where` predicate narrows every range alike.
pub fn copy_query(plan: &TablePlan, source: usize, range: &KeyRange, flag: Option<&str>) -> String {
    let keys = plan.key_exprs();
    let filter = plan.where_clause(range.predicate(&keys).as_deref());
    let flag = flag.map(|f| format!(", ({f}) IS TRUE")).unwrap_or_default();
    format!(
        "COPY (SELECT {}{flag} FROM {}{filter} ORDER BY {}) TO STDOUT (FORMAT binary)",
        plan.select_list_on(source),
        plan.name.sql(),
        keys.join(", ")
    )
}

pub(crate) type Reader = mpsc::Receiver<Item>;

pub(crate) async fn start_reader(
    client: &Session,
    plan: &TablePlan,
    source: usize,
    range: &KeyRange,
    codec: Arc<RowCodec>,
    batch_bytes: usize,
    flag: Option<&str>,
) -> Result<Reader> {
    let ncols = codec.kinds.len() + usize::from(flag.is_some());
    start_query(
        client,
        &copy_query(plan, source, range, flag),
        codec,
        ncols,
        batch_bytes,
    )
    .await
}

/// Starts a reader over any binary COPY of `ncols` columns whose leading ones `codec` reads: off
/// the session's socket when it can be tapped (see [`crate::source::socket`]), else through
/// tokio-postgres.
pub(crate) async fn start_query(
    session: &Session,
    query: &str,
    codec: Arc<RowCodec>,
    ncols: usize,
    batch_bytes: usize,
) -> Result<Reader> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let batcher = Batcher {
        decoder: CopyDecoder::with_capacity(ncols, batch_bytes),
        codec,
        batch_bytes,
        tx,
        rate: session.rate().cloned(),
    };
    let diverted = session
        .divert()
        .await
        .map_err(|e| e.context("starting COPY"))?;
    crate::log!(2, "sql: {query}");
    if let Some(socket) = diverted {
        let copy = TappedCopy::start(socket, query)
            .await
            .map_err(|e| e.context("starting COPY"))?;
        tokio::spawn(read_tapped(copy, batcher));
        return Ok(rx);
    }
    let stream = session
        .copy_out(query)
        .await
        .context(|| "starting COPY".into())?;
    tokio::spawn(read_stream(stream, batcher));
    Ok(rx)
}

/// Rows of one COPY on their way to the hashing pool, in batches of about `batch_bytes`.
struct Batcher {
    decoder: CopyDecoder,
    codec: Arc<RowCodec>,
    batch_bytes: usize,
    tx: mpsc::Sender<Item>,
    /// `--max-rate`: each batch is paid for before it goes on.
    rate: Option<Arc<RateLimit>>,
}

impl Batcher {
    /// Sends the complete rows off to be digested once they fill a batch; `false` when the
    /// receiving side is gone.
    async fn cut(&mut self) -> bool {
        if self.decoder.complete_bytes() < self.batch_bytes {
            return true;
        }
        let batch = self.decoder.take_batch().expect("complete rows");
        if let Some(rate) = &self.rate {
            rate.take(batch.byte_len()).await;
        }
        let pending = digest_on_pool(self.codec.clone(), batch);
        self.tx.send(Item::Batch(pending)).await.is_ok()
    }

    async fn fail(self, error: Error) {
        let _ = self.tx.send(Item::Failed(error)).await;
    }

    /// Sends the last rows and the end of the stream.
    async fn finish(self) {
        let last = match self.decoder.finish() {
            Ok(last) => last,
            Err(e) => {
                let _ = self.tx.send(Item::Failed(e.into())).await;
                return;
            }
        };
        if let Some(batch) = last {
            let pending = digest_on_pool(self.codec, batch);
            let _ = self.tx.send(Item::Batch(pending)).await;
        }
        let _ = self.tx.send(Item::End).await;
    }
}

/// Reads one COPY stream of tokio-postgres to its end.
async fn read_stream(stream: CopyOutStream, mut batcher: Batcher) {
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let pushed = chunk
            .map_err(Error::pg)
            .and_then(|c| batcher.decoder.push(&c).map_err(Error::from));
        if let Err(e) = pushed {
            return batcher.fail(e).await;
        }
        if !batcher.cut().await {
            return;
        }
    }
    batcher.finish().await;
}

/// Reads one COPY off a tapped session to its end (giving the socket back there).
async fn read_tapped(mut copy: TappedCopy, mut batcher: Batcher) {
    loop {
        match copy.feed(&mut batcher.decoder).await {
            Err(e) => return batcher.fail(e).await,
            Ok(more) => {
                if !batcher.cut().await {
                    return;
                }
                if !more {
                    break;
                }
            }
        }
    }
    batcher.finish().await;
}

/// The next digested batch of a source, `None` at its end (or when the table is absent there).
pub(crate) async fn next_batch(reader: &mut Option<Reader>) -> Result<Option<DigestBatch>> {
    let Some(rx) = reader else { return Ok(None) };
    match rx.recv().await {
        Some(Item::Batch(pending)) => {
            let batch = pending
                .await
                .map_err(|_| Error::internal("the hashing pool dropped a batch"))??;
            Ok(Some(batch))
        }
        Some(Item::End) => Ok(None),
        Some(Item::Failed(e)) => Err(e),
        None => Err(Error::internal(
            "a reader stopped without finishing its stream",
        )),
    }
}

/// Hands a batch to the rayon pool and returns where its digests will arrive.
fn digest_on_pool(
    codec: Arc<RowCodec>,
    rows: RowBatch,
) -> oneshot::Receiver<Result<DigestBatch, ValueError>> {
    on_pool(move || digest_batch(&codec, rows))
}
