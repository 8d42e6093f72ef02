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
        // A keyless table has no key to cut: it is read whole (see `pipeline::keyless`).
        if plan.keyless() {
            return Ok((crate::key::range::plan(Vec::new()), plan.est_rows));
        }
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
    let regclass = crate::sql::regclass(&plan.name);
    let sql = format!(
        "SELECT (coalesce(sum(pg_relation_size(relid)), 0) / 100)::int8 \
           FROM pg_partition_tree({regclass})"
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
    let (mut pages, keep) = sampling(want, est_rows);
    let mut sample = sample_keys(client, plan, pages, keep).await?;
    // A small table can still return too few keys from so few pages: once more, ten times wider.
    if sample.len() < ranges * 4 && pages < 100.0 {
        pages = (pages * 10.0).min(100.0);
        sample = sample_keys(client, plan, pages, 1.0).await?;
    }
    Ok(pick_boundaries(sample, ranges))
}

/// Rows a heap page holds, at least, for sizing samples: few enough that wide rows do not leave
/// the sample short of pages.
const ROWS_PER_PAGE: f64 = 50.0;

/// The percentage of pages to sample and the fraction of their rows to keep, for `want` keys.
/// SYSTEM sampling reads whole pages, and keys of one page are neighbours: boundaries drawn from
/// a few pages are as uneven as those pages are few. So about `want` pages are read (not `want`
/// rows, which would be a few pages), and a server-side filter keeps about `4 × want` of their
/// keys, spread over all of them, so the client holds a bounded sample.
fn sampling(want: u64, est_rows: u64) -> (f64, f64) {
    let est = est_rows.max(1) as f64;
    let pages = (want as f64 * ROWS_PER_PAGE * 100.0 / est).clamp(0.0001, 100.0);
    let rows_read = est * pages / 100.0;
    let keep = (4.0 * want as f64 / rows_read).min(1.0);
    (pages, keep)
}

async fn sample_keys(
    client: &Client,
    plan: &TablePlan,
    percent: f64,
    keep: f64,
) -> Result<Vec<KeyBound>> {
    let keys = plan.key_exprs();
    let thin = format!("random() < {keep:.8}");
    let filter = plan.where_clause((keep < 1.0).then_some(thin.as_str()));
    // No ORDER BY: the boundaries are sorted by order key on the client.
    let query = format!(
        "COPY (SELECT {} FROM {} TABLESAMPLE SYSTEM ({percent:.6}){filter}) TO STDOUT (FORMAT binary)",
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

#[cfg(test)]
mod sampling_tests {
    use super::sampling;

    #[test]
    fn samples_read_many_pages_and_keep_a_bounded_share_of_their_keys() {
        // 1e6 rows, 160 keys wanted: 160 pages' worth (0.8 %), of whose 8000 rows 640 are kept.
        let (pages, keep) = sampling(160, 1_000_000);
        assert!((pages - 0.8).abs() < 1e-9, "{pages}");
        assert!((keep - 0.08).abs() < 1e-9, "{keep}");
        // A small table is read whole, 640 of its keys kept; a tiny one keeps every key.
        assert_eq!(sampling(160, 5_000), (100.0, 0.128));
        assert_eq!(sampling(160, 500), (100.0, 1.0));
        // A huge one: a small share of pages, and of keys.
        let (pages, keep) = sampling(131_072, 1_000_000_000);
        assert!(pages < 1.0 && keep < 0.1, "{pages} {keep}");
    }
}
