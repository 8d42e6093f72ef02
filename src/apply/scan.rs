//! One scan of a table on the target inside apply's transaction, its rows worked on the pool.
//!
//! The guard of keyless rows and the re-verify of written rows both read a table's rows once,
//! as binary COPY, digest them on the rayon pool and fold what each batch yields in order. The
//! scan keeps a few batches in flight, so memory is a few batches, not the table.

use std::collections::VecDeque;

use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::error::{Context, Error, Result};
use crate::pool::on_pool;
use crate::rows::batch::{CopyDecoder, RowBatch};

/// Bytes of rows per job, and jobs in flight.
const BATCH_BYTES: usize = 1 << 20;
const IN_FLIGHT: usize = 3;

type Job<T> = tokio::sync::oneshot::Receiver<Result<T>>;

/// Streams `query` (a binary `COPY ... TO STDOUT` of `ncols` columns), runs `work` on the pool
/// for each batch of rows, and hands each result, in order, to `fold`. `at` names the scan in
/// errors.
pub async fn scan_on_pool<T, W>(
    client: &Client,
    query: &str,
    ncols: usize,
    at: impl Fn() -> String,
    work: W,
    mut fold: impl FnMut(T),
) -> Result<()>
where
    T: Send + 'static,
    W: Fn(RowBatch) -> Result<T> + Clone + Send + 'static,
{
    let start = |rows: RowBatch| -> Job<T> {
        let work = work.clone();
        on_pool(move || work(rows))
    };
    let stream = client.copy_out(query).await.context(&at)?;
    let mut stream = std::pin::pin!(stream);
    let mut decoder = CopyDecoder::with_capacity(ncols, BATCH_BYTES);
    let mut jobs = VecDeque::new();
    while let Some(piece) = stream.next().await {
        decoder
            .push(&piece.context(&at)?)
            .map_err(|e| Error::from(e).context(at()))?;
        if decoder.complete_bytes() >= BATCH_BYTES {
            if let Some(batch) = decoder.take_batch() {
                jobs.push_back(start(batch));
            }
            while jobs.len() > IN_FLIGHT {
                fold(finished(jobs.pop_front().expect("a job")).await?);
            }
        }
    }
    if let Some(batch) = decoder.finish().map_err(|e| Error::from(e).context(at()))? {
        jobs.push_back(start(batch));
    }
    for job in jobs {
        fold(finished(job).await?);
    }
    Ok(())
}

async fn finished<T>(job: Job<T>) -> Result<T> {
    job.await
        .map_err(|_| Error::internal("the pool dropped a job"))?
}
