//! One table without a key: read whole from every source and compared as a multiset of rows.
//!
//! verify reads the sources in step through a [`Matcher`] (`pipeline::matching`): each streams
//! `COPY (SELECT columns FROM table)` in the unit's visit, in a fixed scan order, digested on the
//! pool like any range's rows; a row content every source has shown is the same row and is only
//! added to the trees, and the copies left waiting (with their values) or let go of into the
//! [`Spill`] (digest and place: the row's position in its stream) are counted partition by
//! partition ([`multiset::count`]), each copy present on some sources only becoming a finding.
//! A finding's key is the row's values, from the window or, for a row the window let go of,
//! read again at its place in the same visit with its digest checked.
//!
//! recover reads the rows with their `ctid` instead, every copy of each source into a spill of
//! its own, since a restore needs each row's count on the target and where its copies lie; the
//! rows behind the findings are then read back by `ctid` in the same visit (the snapshot keeps
//! them where they were), their digests checked against the ones compared.

use std::collections::BTreeMap;

use super::matching::{DigestSet, HeldRows, Matcher};
use super::readers::{next_batch, start_query};
use super::spill::Spill;
use super::RunContext;
use crate::classify::Finding;
use crate::compare::multiset::{self, ctid_text, Copy, Differing};
use crate::compare::tally::RangeTally;
use crate::error::{Error, Result};
use crate::hash::digest::{Digest, DigestBatch};
use crate::plan::TablePlan;
use crate::pool::{off_runtime, on_pool};
use crate::source::Session;

/// What one source's copies may hold in memory before they go to disk.
const SPILL_MEMORY: usize = 16 << 20;

/// The partitions counted at once hold about this much (more passes past it).
const COUNT_MEMORY: u64 = 32 << 20;

/// Row values longer than this are elided in a keyless row's key.
const KEY_VALUE_CHARS: usize = 200;

/// Compares the keyless table `table` across the sources whose sessions are `clients`.
pub async fn diff_table(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
) -> Result<(RangeTally, Vec<Finding>)> {
    let run = &ctx.tables[table];
    let plan = &run.plan;
    let sources = clients.len();
    let bits = partition_bits(plan.est_rows, sources);
    let mut tally = RangeTally::new(plan, sources, run.tree_bits);
    tally.strip = None;
    let all_present = plan.codecs.iter().all(Option::is_some);
    if ctx.capture.is_none() && all_present && aligned(ctx, clients, table).await? {
        return diff_matched(ctx, clients, table, bits, tally).await;
    }
    // A recovery guards each row by the target's count of it, which matching forgets; a table
    // some source lacks has nothing to match; sources in unrelated orders would not meet in
    // the window, and their differing rows are found again cheaper by ctid than by a rescan.
    let spills = read_each(ctx, clients, table, bits).await?;
    let mut kept = Vec::new();
    for p in 0..(1usize << bits) {
        let total: u64 = spills.iter().flatten().map(|s| s.bytes_in(p)).sum();
        let sub_bits = passes_bits(total);
        for sub in 0..(1usize << sub_bits) {
            let copies = read_partition(spills.iter().flatten(), p, sub, sub_bits)?;
            let (t, differing) = count_on_pool(copies, sources, tally).await?;
            tally = t;
            if differing.is_empty() {
                continue;
            }
            let keys = keys_by_ctid(ctx, clients, table, &differing).await?;
            let found = findings(ctx, table, &differing, &keys, &mut tally);
            if ctx.keeps_findings() {
                kept.extend(found.iter().cloned());
            }
            let _ = ctx.findings.send(found).await;
        }
    }
    Ok((tally, kept))
}

async fn count_on_pool(
    copies: Vec<Copy>,
    sources: usize,
    tally: RangeTally,
) -> Result<(RangeTally, Vec<Differing>)> {
    on_pool(move || count_copies(copies, sources, tally))
        .await
        .map_err(|_| Error::internal("the hashing pool dropped a count"))
}

/// verify's way: the sources matched as they stream ([`read_matched`]), the copies left
/// counted, the differing rows' keys made from the values the window kept (read again by their
/// place in the stream only for those the window had to let go of).
async fn diff_matched(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    bits: u8,
    mut tally: RangeTally,
) -> Result<(RangeTally, Vec<Finding>)> {
    let sources = clients.len();
    let (spill, mut held) = read_matched(ctx, clients, table, bits, &mut tally).await?;
    // The differing contents are at most what the window held, or the damage (once it
    // overflowed): kept until their keys are known.
    let mut differing = Vec::new();
    for p in 0..spill.partitions() {
        let sub_bits = passes_bits(spill.bytes_in(p));
        for sub in 0..(1usize << sub_bits) {
            let copies = read_partition([&spill], p, sub, sub_bits)?;
            let (counted, found) = count_on_pool(copies, sources, tally).await?;
            tally = counted;
            differing.extend(found);
        }
    }
    drop(spill);
    let mut keys = BTreeMap::new();
    let mut wanted: BTreeMap<usize, BTreeMap<u64, Digest>> = BTreeMap::new();
    let codecs = &ctx.tables[table].plan.codecs;
    for d in &differing {
        let (source, place) = d.sample();
        match held.remove(&d.digest) {
            Some(row) => {
                let kinds = &codecs[source].as_ref().expect("present").kinds;
                keys.insert(d.digest, row_json(kinds, stored_fields(&row))?);
            }
            // Let go of when the window overflowed: read again by place.
            None => {
                wanted
                    .entry(source)
                    .or_default()
                    .insert(ordinal_of(&place), d.digest);
            }
        }
    }
    drop(held);
    for (source, rows) in wanted {
        let read = keys_by_ordinal(ctx, &clients[source], table, source, &rows).await;
        keys.extend(read.map_err(|e| e.context(at(ctx, table, source)))?);
    }
    let found = findings(ctx, table, &differing, &keys, &mut tally);
    let kept = match ctx.keeps_findings() {
        true => found.clone(),
        false => Vec::new(),
    };
    if !found.is_empty() {
        let _ = ctx.findings.send(found).await;
    }
    Ok((tally, kept))
}

/// Tables at least this large are probed before matching (below, a window overflow costs little).
const PROBE_FROM_ROWS: u64 = 1_000_000;

/// Rows of the first source a probe reads; the others read twice as many.
const PROBE_ROWS: u64 = 20_000;

/// Whether the sources seem to hold the table's rows in about the same order, so they meet in
/// the matching window: at least half of the first source's first [`PROBE_ROWS`] rows are among
/// the first `2 * PROBE_ROWS` of every other source, in the fixed scan order. A guess about
/// speed only: either way of reading finds exactly the same differences.
async fn aligned(ctx: &RunContext, clients: &[Session], table: usize) -> Result<bool> {
    let plan = &ctx.tables[table].plan;
    if plan.est_rows < PROBE_FROM_ROWS {
        return Ok(true);
    }
    let mut first: Option<DigestSet> = None;
    for (i, client) in clients.iter().enumerate() {
        let limit = if i == 0 { PROBE_ROWS } else { 2 * PROBE_ROWS };
        let read = first_digests(ctx, client, table, i, limit).await;
        let digests = read.map_err(|e| e.context(at(ctx, table, i)))?;
        match &first {
            None => first = Some(digests),
            Some(f) => {
                let shared = f.iter().filter(|d| digests.contains(*d)).count();
                if shared * 2 < f.len() {
                    crate::log!(
                        1,
                        "{}: {} of the first {} rows of {} met early in {}; read by ctid, unmatched",
                        plan.name,
                        shared,
                        f.len(),
                        ctx.roles[0],
                        ctx.roles[i]
                    );
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// The digests of the first `limit` rows of `source` in the fixed scan order.
async fn first_digests(
    ctx: &RunContext,
    client: &Session,
    table: usize,
    source: usize,
    limit: u64,
) -> Result<DigestSet> {
    let mut reader = Some(start_in_order(ctx, client, table, source, Some(limit)).await?);
    let mut out = DigestSet::default();
    while let Some(batch) = next_batch(&mut reader).await? {
        out.extend(batch.digests.iter().copied());
    }
    Ok(out)
}

/// Reads every source into a spill of its own, every copy kept (recover's way).
async fn read_each(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    bits: u8,
) -> Result<Vec<Option<Spill>>> {
    let plan = &ctx.tables[table].plan;
    let reads = clients.iter().enumerate().map(|(i, client)| async move {
        match &plan.codecs[i] {
            Some(_) => read_copies(ctx, client, table, i, bits)
                .await
                .map(Some)
                .map_err(|e| e.context(at(ctx, table, i))),
            None => Ok(None),
        }
    });
    futures_util::future::try_join_all(reads).await
}

/// Reads the sources in step through a [`Matcher`]: copies every source shows go straight into
/// `tally`, the rest into one spill, each copy tagged with its source.
async fn read_matched(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    bits: u8,
    tally: &mut RangeTally,
) -> Result<(Spill, HeldRows)> {
    let mut streams = Vec::with_capacity(clients.len());
    for (i, client) in clients.iter().enumerate() {
        let reader = start_in_order(ctx, client, table, i, None).await;
        let reader = reader.map_err(|e| e.context(at(ctx, table, i)))?;
        streams.push(Stepped::new(i, reader));
    }
    let tags = (0..clients.len() as u8).collect();
    let spill = Spill::new(bits, SPILL_MEMORY * clients.len());
    let mut matcher = Matcher::new(tags, spill, ctx.keyless_window);
    // In step, a few rows at a time from the source that has delivered fewest: sources holding
    // their rows in about the same order meet in a window small enough to stay in cache, and a
    // faster source waits on its channel. Every stream still running holds a batch while the
    // matcher works (off the runtime, until one of them runs out).
    loop {
        for s in streams.iter_mut().filter(|s| !s.done && s.batch.is_none()) {
            s.refill()
                .await
                .map_err(|e| e.context(at(ctx, table, s.source)))?;
            if let (Some(b), 0) = (&s.batch, s.source) {
                ctx.reporter.rows(table, b.len() as u64);
            }
        }
        if streams.iter().all(|s| s.done) {
            break;
        }
        let stepped = off_runtime(|| loop {
            let next = streams
                .iter_mut()
                .filter(|s| !s.done)
                .min_by_key(|s| s.rows)
                .expect("a stream running");
            next.push_step(&mut matcher, tally)?;
            if next.batch.is_none() {
                return Ok(());
            }
        });
        stepped.map_err(|e: std::io::Error| Error::io("writing a keyless table's spill", e))?;
    }
    off_runtime(|| matcher.finish()).map_err(|e| Error::io("writing a keyless table's spill", e))
}

/// Settings that make a scan return a table's rows in the same order each time within the
/// snapshot: from its first block (no synchronized scan joining another mid-table) and in one
/// process (no parallel workers interleaving). Set in the visit's transaction only.
const SCAN_IN_ORDER: &str =
    "SET LOCAL synchronize_seqscans = off; SET LOCAL max_parallel_workers_per_gather = 0";

/// Starts streaming `source`'s rows of the table (the first `limit`) without their `ctid` (a
/// plain scan the server sends without projecting, the way `COPY table TO` does), in the order
/// [`SCAN_IN_ORDER`] fixes: a row's place is its position in the stream.
async fn start_in_order(
    ctx: &RunContext,
    client: &Session,
    table: usize,
    source: usize,
    limit: Option<u64>,
) -> Result<super::readers::Reader> {
    let plan = &ctx.tables[table].plan;
    let codec = plan.codecs[source].clone().expect("present");
    let ncols = codec.kinds.len();
    client
        .batch_execute(SCAN_IN_ORDER)
        .await
        .map_err(Error::pg)?;
    let query = format!(
        "COPY (SELECT {} FROM {}{}{}) TO STDOUT (FORMAT binary)",
        plan.select_list_on(source),
        plan.name.sql(),
        plan.where_clause(None),
        limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
    );
    start_query(client, &query, codec, ncols, ctx.batch_bytes).await
}

/// A row's position in its source's stream, as a place (48 bits, big-endian).
fn place_of(ordinal: u64) -> [u8; 6] {
    let b = ordinal.to_be_bytes();
    b[2..].try_into().expect("6 bytes")
}

fn ordinal_of(place: &[u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(place);
    u64::from_be_bytes(b)
}

/// Rows one source hands the matcher at a time (see [`read_matched`]).
const STEP_ROWS: usize = 256;

/// One source's stream read in steps of [`STEP_ROWS`]; `rows` counts the rows handed on, so
/// the next row's place is `rows`.
struct Stepped {
    source: usize,
    reader: Option<super::readers::Reader>,
    batch: Option<DigestBatch>,
    at: usize,
    rows: u64,
    done: bool,
}

impl Stepped {
    fn new(source: usize, reader: super::readers::Reader) -> Stepped {
        Stepped {
            source,
            reader: Some(reader),
            batch: None,
            at: 0,
            rows: 0,
            done: false,
        }
    }

    async fn refill(&mut self) -> Result<()> {
        self.batch = next_batch(&mut self.reader).await?;
        self.at = 0;
        self.done = self.batch.is_none();
        Ok(())
    }

    /// Hands the matcher the next rows of the current batch.
    fn push_step(&mut self, matcher: &mut Matcher, tally: &mut RangeTally) -> std::io::Result<()> {
        let batch = self.batch.as_ref().expect("a batch");
        let end = (self.at + STEP_ROWS).min(batch.len());
        for r in self.at..end {
            let copy = Copy {
                digest: batch.digests[r],
                source: self.source as u8,
                ctid: place_of(self.rows + (r - self.at) as u64),
            };
            matcher.push(&copy, |arena| stored_row(batch, r, arena), tally)?;
        }
        self.rows += (end - self.at) as u64;
        self.at = end;
        if end == batch.len() {
            self.batch = None;
        }
        Ok(())
    }
}

/// A row's values kept apart from its batch: per column a big-endian `i32` length (-1 for NULL)
/// and the bytes, as binary COPY sends them.
fn stored_row(batch: &DigestBatch, r: usize, out: &mut Vec<u8>) {
    for c in 0..batch.rows.ncols() {
        match batch.rows.field(r, c) {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
}

/// The fields of a [`stored_row`].
fn stored_fields(mut row: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    std::iter::from_fn(move || {
        let (len, rest) = row.split_first_chunk::<4>()?;
        let len = i32::from_be_bytes(*len);
        if len < 0 {
            row = rest;
            return Some(None);
        }
        let (value, rest) = rest.split_at(len as usize);
        row = rest;
        Some(Some(value))
    })
}

fn copies_query(plan: &TablePlan, source: usize) -> String {
    format!(
        "COPY (SELECT {}, ctid FROM {}{}) TO STDOUT (FORMAT binary)",
        plan.select_list_on(source),
        plan.name.sql(),
        plan.where_clause(None)
    )
}

/// Partitions enough that one source's copies of one partition are about a quarter of
/// [`COUNT_MEMORY`] by the table's estimated size.
pub(crate) fn partition_bits(est_rows: u64, sources: usize) -> u8 {
    let bytes = est_rows.saturating_mul((multiset::COPY_BYTES * sources) as u64);
    let mut bits = 0u8;
    while bits < 10 && bytes >> bits > COUNT_MEMORY / 2 {
        bits += 1;
    }
    bits
}

/// The passes over a partition that keep each under [`COUNT_MEMORY`].
pub(crate) fn passes_bits(bytes: u64) -> u8 {
    let mut bits = 0u8;
    while bits < 12 && bytes >> bits > COUNT_MEMORY {
        bits += 1;
    }
    bits
}

/// Streams one source's copy of the table into a spill.
async fn read_copies(
    ctx: &RunContext,
    client: &Session,
    table: usize,
    source: usize,
    bits: u8,
) -> Result<Spill> {
    let plan = &ctx.tables[table].plan;
    let counted = plan.codecs.iter().position(Option::is_some) == Some(source);
    let rows = |n| {
        if counted {
            ctx.reporter.rows(table, n);
        }
    };
    spill_table(
        client,
        plan,
        source,
        source as u8,
        bits,
        ctx.batch_bytes,
        rows,
    )
    .await
}

/// Reads a keyless table whole from `source` (its index in `plan.codecs`) into a spill of
/// `1 << bits` partitions, its copies marked `tag`; `rows` hears how many rows each batch held.
pub(crate) async fn spill_table(
    client: &Session,
    plan: &TablePlan,
    source: usize,
    tag: u8,
    bits: u8,
    batch_bytes: usize,
    rows: impl Fn(u64),
) -> Result<Spill> {
    let codec = plan.codecs[source]
        .clone()
        .expect("the source has the table");
    let ncols = codec.kinds.len();
    let query = copies_query(plan, source);
    let mut reader = Some(start_query(client, &query, codec, ncols + 1, batch_bytes).await?);
    let mut spill = Spill::new(bits, SPILL_MEMORY);
    while let Some(batch) = next_batch(&mut reader).await? {
        let spilled = off_runtime(|| {
            (0..batch.len()).try_for_each(|r| {
                spill.push(&Copy {
                    digest: batch.digests[r],
                    source: tag,
                    ctid: ctid_of(batch.rows.field(r, ncols)),
                })
            })
        });
        spilled.map_err(|e| Error::io("writing a keyless table's spill", e))?;
        rows(batch.len() as u64);
    }
    Ok(spill)
}

/// Reads partition `p`, pass `sub` of `1 << sub_bits`, of every spill.
pub(crate) fn read_partition<'a>(
    spills: impl IntoIterator<Item = &'a Spill>,
    p: usize,
    sub: usize,
    sub_bits: u8,
) -> Result<Vec<Copy>> {
    let spills: Vec<&Spill> = spills.into_iter().collect();
    // Sized ahead (a pass holds about its share of the partition): no doubling past the budget.
    let bytes: u64 = spills.iter().map(|s| s.bytes_in(p)).sum();
    let mut copies =
        Vec::with_capacity((bytes >> sub_bits) as usize / multiset::COPY_BYTES * 9 / 8);
    off_runtime(|| {
        spills
            .iter()
            .try_for_each(|s| s.read(p, sub, sub_bits, &mut copies))
    })
    .map_err(|e| Error::io("reading a keyless table's spill", e))?;
    Ok(copies)
}

fn ctid_of(raw: Option<&[u8]>) -> [u8; 6] {
    raw.and_then(|r| r.try_into().ok()).unwrap_or([0; 6])
}

/// Counts one partition's copies into the tally; returns the row contents that differ.
fn count_copies(
    mut copies: Vec<Copy>,
    sources: usize,
    tally: RangeTally,
) -> (RangeTally, Vec<Differing>) {
    let mut differing = Vec::new();
    // Both callbacks add to the tally; they never run at once.
    let tally = std::cell::RefCell::new(tally);
    multiset::count(
        &mut copies,
        sources,
        |digest, n| {
            let mut tally = tally.borrow_mut();
            let leaf = tally.leaf_of(digest);
            for s in 0..sources {
                for _ in 0..n {
                    tally.add_row(s, leaf, digest);
                }
            }
        },
        |d| {
            let mut tally = tally.borrow_mut();
            let leaf = tally.leaf_of(&d.digest);
            for (s, ctids) in d.ctids.iter().enumerate() {
                for _ in ctids {
                    tally.add_row(s, leaf, &d.digest);
                }
            }
            differing.push(d);
        },
    );
    (tally.into_inner(), differing)
}

/// The findings of the differing copies, keyed by their rows' values read back by `ctid`.
fn findings(
    ctx: &RunContext,
    table: usize,
    differing: &[Differing],
    keys: &BTreeMap<Digest, String>,
    tally: &mut RangeTally,
) -> Vec<Finding> {
    let mut found = Vec::new();
    for d in differing {
        let counts = d.counts();
        for &(k, class) in &d.copies {
            if counts.len() == 3 {
                tally.add_need(class, counts[1] > k, counts[2] > k);
            }
            let f = Finding {
                table,
                class,
                key: keys[&d.digest].clone(),
                order_key: d.order_key(k),
                columns: Vec::new(),
                restore: ctx
                    .capture
                    .map(|spec| Box::new(multiset::restore_copy(d, k, class, spec))),
                values: None,
            };
            tally.add_finding(&f);
            found.push(f);
        }
    }
    found
}

/// The keys of the differing rows, read back by `ctid` from the first source holding a copy.
async fn keys_by_ctid(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    differing: &[Differing],
) -> Result<BTreeMap<Digest, String>> {
    let mut wanted: BTreeMap<usize, Vec<(Digest, [u8; 6])>> = BTreeMap::new();
    for d in differing {
        let (source, ctid) = d.sample();
        wanted.entry(source).or_default().push((d.digest, ctid));
    }
    let mut keys: BTreeMap<Digest, String> = BTreeMap::new();
    for (source, rows) in wanted {
        let read = read_back(ctx, &clients[source], table, source, &rows).await;
        keys.extend(read.map_err(|e| e.context(at(ctx, table, source)))?);
    }
    Ok(keys)
}

/// The keys of rows the window let go of, by their places in `source`'s stream: the table
/// read again in the same visit, in the same order, each wanted row's digest checked.
async fn keys_by_ordinal(
    ctx: &RunContext,
    client: &Session,
    table: usize,
    source: usize,
    rows: &BTreeMap<u64, Digest>,
) -> Result<BTreeMap<Digest, String>> {
    let kinds = &ctx.tables[table].plan.codecs[source]
        .as_ref()
        .expect("present")
        .kinds;
    let mut reader = Some(start_in_order(ctx, client, table, source, None).await?);
    let mut keys = BTreeMap::new();
    let mut ordinal = 0u64;
    while let Some(batch) = next_batch(&mut reader).await? {
        let end = ordinal + batch.len() as u64;
        for (&at, digest) in rows.range(ordinal..end) {
            let r = (at - ordinal) as usize;
            if batch.digests[r] != *digest {
                return Err(moved(&ctx.tables[table].plan.name));
            }
            let fields = (0..batch.rows.ncols()).map(|c| batch.rows.field(r, c));
            keys.insert(*digest, row_json(kinds, fields)?);
        }
        ordinal = end;
    }
    if keys.len() != rows.len() {
        return Err(moved(&ctx.tables[table].plan.name));
    }
    Ok(keys)
}

fn moved(table: &crate::shape::TableName) -> Error {
    Error::internal(format!(
        "rows of {table} were not where the comparison read them when read again"
    ))
    .with_hint(
        "run again; a keyless table must not be rewritten (VACUUM FULL, CLUSTER) while it is read",
    )
}

/// Reads the rows at `rows`' ctids and renders each as a key; the digest read must be the one
/// compared (the snapshot guarantees it unless the table was rewritten, which is an error).
async fn read_back(
    ctx: &RunContext,
    client: &Session,
    table: usize,
    source: usize,
    rows: &[(Digest, [u8; 6])],
) -> Result<BTreeMap<Digest, String>> {
    let plan = &ctx.tables[table].plan;
    let codec = plan.codecs[source]
        .clone()
        .expect("the source has the table");
    let ncols = codec.kinds.len();
    let mut keys = BTreeMap::new();
    for chunk in rows.chunks(5000) {
        let list: Vec<String> = chunk
            .iter()
            .map(|(_, c)| format!("\"{}\"", ctid_text(c)))
            .collect();
        let wanted = format!("ctid = ANY ('{{{}}}'::tid[])", list.join(","));
        let query = format!(
            "COPY (SELECT {}, ctid FROM {}{}) TO STDOUT (FORMAT binary)",
            plan.select_list_on(source),
            plan.name.sql(),
            plan.where_clause(Some(&wanted))
        );
        let mut reader =
            Some(start_query(client, &query, codec.clone(), ncols + 1, ctx.batch_bytes).await?);
        let expected: BTreeMap<[u8; 6], Digest> = chunk.iter().map(|(d, c)| (*c, *d)).collect();
        while let Some(batch) = next_batch(&mut reader).await? {
            for r in 0..batch.len() {
                let ctid = ctid_of(batch.rows.field(r, ncols));
                if expected.get(&ctid) != Some(&batch.digests[r]) {
                    return Err(Error::internal(format!(
                        "the row at ctid {} of {} is not the one compared (was the table rewritten during the run?)",
                        ctid_text(&ctid),
                        plan.name
                    ))
                    .with_hint("run again; a keyless table must not be rewritten (VACUUM FULL, CLUSTER) while it is read"));
                }
                let fields = (0..ncols).map(|c| batch.rows.field(r, c));
                keys.insert(batch.digests[r], row_json(&codec.kinds, fields)?);
            }
        }
    }
    if keys.len()
        != rows
            .iter()
            .map(|(d, _)| d)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    {
        return Err(Error::internal(format!(
            "rows of {} compared could not be read back by ctid (was the table rewritten during the run?)",
            plan.name
        )));
    }
    Ok(keys)
}

/// A keyless row named by all its values: a JSON array, NULL as null, long values elided.
fn row_json<'a>(
    kinds: &[crate::shape::TypeKind],
    fields: impl Iterator<Item = Option<&'a [u8]>>,
) -> Result<String> {
    let mut out = String::from("[");
    for (c, (kind, field)) in kinds.iter().zip(fields).enumerate() {
        if c > 0 {
            out.push(',');
        }
        match field {
            None => out.push_str("null"),
            Some(raw) => {
                let mut value = String::new();
                crate::key::render::render_json(kind, raw, &mut value)?;
                if value.chars().count() > KEY_VALUE_CHARS {
                    let head: String = value.chars().take(KEY_VALUE_CHARS).collect();
                    let elided = format!("{head}… ({} bytes)", raw.len());
                    out.push_str(&serde_json::to_string(&elided).expect("a string"));
                } else {
                    out.push_str(&value);
                }
            }
        }
    }
    out.push(']');
    Ok(out)
}

fn at(ctx: &RunContext, table: usize, source: usize) -> String {
    format!(
        "reading {} (keyless) from {}",
        ctx.tables[table].plan.name, ctx.roles[source]
    )
}
