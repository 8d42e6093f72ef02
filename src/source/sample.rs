//! Sampling a table's keys to cut it into ranges of similar size.
//!
//! The sample comes from one source (the base, or the first that has the table) through
//! `TABLESAMPLE SYSTEM`, which reads a few random pages instead of the table; its keys are read in
//! binary like the rows themselves and turned into [`KeyBound`]s: typed SQL literals for the
//! servers and order keys for the client. The sample only decides where ranges are cut; rows outside
//! the sampled span fall into the open head and tail ranges, so a poor sample costs balance, never
//! correctness.
//!
//! Sampling reads the table, so it happens in a [`visit`](super::visit) of its own that ends once
//! the table is cut: planning holds no lock for longer than it samples one table. A table never
//! analyzed is sized from its files in the same visit (pg_relation_size takes the table's lock too).

use futures_util::StreamExt;
use tokio_postgres::Client;

use super::visit::{self, Patience};
use super::{Session, Source};
use crate::error::{Context, Error, Result};
use crate::key::encode::encode_key_part;
use crate::key::range::{pick_boundaries, KeyBound, KeyRange};
use crate::key::render::render_text;
use crate::plan::TablePlan;
use crate::rows::batch::{CopyDecoder, RowBatch};

/// Keys sampled per range wanted: enough that the boundaries are evenly spread.
const SAMPLE_PER_RANGE: u64 = 32;

/// Cuts tables of one source into ranges, on one session reused from table to table.
pub struct Planner<'a> {
    source: &'a Source,
    session: Option<Session>,
    jobs: usize,
}

impl<'a> Planner<'a> {
    pub fn new(source: &'a Source, jobs: usize) -> Self {
        Planner {
            source,
            session: None,
            jobs,
        }
    }

    /// `plan`'s ranges and row estimate (see [`ranges`]); a failure drops the session, so the
    /// next table starts on a new one.
    pub async fn cut(
        &mut self,
        plan: &TablePlan,
        patience: &Patience<'_>,
    ) -> Result<(Vec<KeyRange>, u64)> {
        if self.session.is_none() {
            self.session = Some(self.source.worker().await?);
        }
        let session = self.session.as_ref().expect("connected");
        let cut = ranges(self.source, session, plan, self.jobs, patience).await;
        if cut.is_err() {
            self.session = None;
        }
        cut
    }
}

/// The key ranges of one table read from one source, sized and sampled in one visit of it, with
/// the row estimate they were cut by (sized from the files when the table was never analyzed).
pub async fn ranges(
    source: &Source,
    session: &Session,
    plan: &TablePlan,
    jobs: usize,
    patience: &Patience<'_>,
) -> Result<(Vec<KeyRange>, u64)> {
    if !plan.est_unknown && crate::plan::ranges_for(plan.est_rows, jobs) <= 1 {
        return Ok((crate::key::range::plan(Vec::new()), plan.est_rows));
    }
    visit::enter_all(
        &[source.stop(session)],
        &plan.name,
        " to sample it",
        patience,
    )
    .await?;
    let cut = size_and_sample(session, plan, jobs).await;
    let left = match &cut {
        Ok(_) => visit::leave(session).await,
        Err(_) => session.batch_execute("ROLLBACK").await.map_err(Error::pg),
    };
    let (bounds, est_rows) = cut?;
    left.map_err(|e| e.context(format!("ending the sampling of {}", plan.name)))?;
    Ok((crate::key::range::plan(bounds), est_rows))
}

async fn size_and_sample(
    client: &Client,
    plan: &TablePlan,
    jobs: usize,
) -> Result<(Vec<KeyBound>, u64)> {
    let mut est_rows = plan.est_rows;
    if plan.est_unknown {
        est_rows = est_rows.max(size_rows(client, plan).await?);
    }
    let want = crate::plan::ranges_for(est_rows, jobs);
    Ok((boundaries(client, plan, est_rows, want).await?, est_rows))
}

/// A row estimate from the size of the table's files (about 100 bytes a row), for tables the
/// planner has no estimate of.
async fn size_rows(client: &Client, plan: &TablePlan) -> Result<u64> {
    let literal = postgres_protocol::escape::escape_literal(&plan.name.sql());
    let sql = format!(
        "SELECT (coalesce(sum(pg_relation_size(relid)), 0) / 100)::int8 \
           FROM pg_partition_tree({literal}::regclass)"
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .context(|| format!("sizing {}", plan.name))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Boundaries that cut `plan`'s table into about `ranges` ranges.
pub async fn boundaries(
    client: &Client,
    plan: &TablePlan,
    est_rows: u64,
    ranges: usize,
) -> Result<Vec<KeyBound>> {
    if ranges <= 1 || !plan.native_order {
        return Ok(Vec::new());
    }
    let want = (ranges as u64 * SAMPLE_PER_RANGE).min(200_000);
    // SYSTEM sampling picks whole pages, so a small percentage of a small table can return
    // nothing: oversample, and retry once with ten times more when too few keys came back.
    let mut percent = (4.0 * want as f64 * 100.0 / est_rows.max(1) as f64).clamp(0.0001, 100.0);
    let mut sample = sample_keys(client, plan, percent).await?;
    if sample.len() < ranges * 4 && percent < 100.0 {
        percent = (percent * 10.0).min(100.0);
        sample = sample_keys(client, plan, percent).await?;
    }
    Ok(pick_boundaries(sample, ranges))
}

async fn sample_keys(client: &Client, plan: &TablePlan, percent: f64) -> Result<Vec<KeyBound>> {
    let keys = plan.key_exprs();
    // No ORDER BY: the boundaries are sorted by order key on the client.
    let query = format!(
        "COPY (SELECT {} FROM {} TABLESAMPLE SYSTEM ({percent:.6})) TO STDOUT (FORMAT binary)",
        keys.join(", "),
        plan.name.sql(),
    );
    let at = || format!("sampling keys of {}", plan.name);
    let rows = read_all(client, &query, plan.nkey)
        .await
        .map_err(|e| e.context(at()))?;
    let mut sample = Vec::new();
    for batch in &rows {
        for row in 0..batch.len() {
            sample.push(bound_of(plan, batch, row)?);
        }
    }
    Ok(sample)
}

/// A sampled key as a boundary: literals typed with the reference's column types.
fn bound_of(plan: &TablePlan, batch: &RowBatch, row: usize) -> Result<KeyBound> {
    let fields = (0..plan.nkey)
        .map(|col| {
            batch
                .field(row, col)
                .ok_or_else(|| Error::internal("NULL in a sampled key"))
        })
        .collect::<Result<Vec<_>>>()?;
    bound_of_fields(plan, &fields)
}

/// A key given as its binary COPY fields, as a boundary.
pub fn bound_of_fields(plan: &TablePlan, fields: &[&[u8]]) -> Result<KeyBound> {
    if fields.len() != plan.nkey {
        return Err(Error::internal("a key with the wrong number of fields"));
    }
    let mut order_key = Vec::new();
    let mut literals = Vec::with_capacity(plan.nkey);
    let mut shown = Vec::with_capacity(plan.nkey);
    for (column, raw) in plan.key_columns.iter().zip(fields) {
        encode_key_part(&column.kind, raw, &mut order_key)?;
        let mut text = String::new();
        render_text(&column.kind, raw, &mut text)?;
        let literal = postgres_protocol::escape::escape_literal(&text);
        literals.push(format!("{literal}::{}", column.type_name));
        shown.push(if column.kind.collatable() {
            literal
        } else {
            text
        });
    }
    let display = if shown.len() == 1 {
        shown.remove(0)
    } else {
        format!("({})", shown.join(", "))
    };
    Ok(KeyBound {
        literals,
        order_key,
        display,
    })
}

/// Runs a binary COPY and keeps every row (only for small results such as samples).
async fn read_all(client: &Client, query: &str, ncols: usize) -> Result<Vec<RowBatch>> {
    let stream = client
        .copy_out(query)
        .await
        .context(|| "starting COPY".into())?;
    let mut stream = std::pin::pin!(stream);
    let mut decoder = CopyDecoder::new(ncols);
    let mut batches = Vec::new();
    while let Some(chunk) = stream.next().await {
        decoder.push(&chunk.context(|| "reading COPY".into())?)?;
        batches.extend(decoder.take_batch());
    }
    batches.extend(decoder.finish()?);
    Ok(batches)
}
