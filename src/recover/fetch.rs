//! Reading the differing rows again, by key, from a source's snapshot.
//!
//! The merge recorded every differing key in `keys/<table>.jsonl`, in key order; the writers and
//! `apply`'s guard read them back in chunks and ask the source for just those rows, on the session
//! that still holds the snapshot the comparison read. Only differing rows are read twice, never
//! the matching ones. Text COPY output goes into the SQL scripts as it comes; binary output feeds
//! the Parquet writer and the guard's digests.
//!
//! A chunk's keys travel as one array literal per key column and are joined to the table
//! (`JOIN unnest(...)`): no temporary table (a hot standby allows none), one parse of the keys,
//! and a plan chosen with the exact number of keys. The chunk is sorted, so its first and last keys
//! bound the scan when the index orders the key as the records do; the planner then merges the
//! keys with one range scan where they are dense and probes the index per key where they are
//! sparse. Hash joins are left out ([`NO_HASH_JOIN`]): one would read the whole table for every
//! chunk.

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::error::{Context, Result};
use crate::key::render::push_quoted_array_item;
use crate::recovery::keys::{KeyChunks, KeyRecord};
use crate::recovery::plan::TableRestore;
use crate::shape::{quote_ident, TableName};
use crate::sql::qualified_list;
use postgres_protocol::escape::escape_literal;

/// Set around fetches by key (then [`RESET_HASH_JOIN`]): a hash join reads the whole table once
/// per chunk, which over many chunks costs far more than probing or merging; parallel workers
/// would compete for the cores the run's own streams use. Merge joins are switched per chunk by
/// [`JoinChoice`].
pub const NO_HASH_JOIN: &str = "SET enable_hashjoin = off; SET max_parallel_workers_per_gather = 0";
pub const RESET_HASH_JOIN: &str = "RESET enable_hashjoin; RESET max_parallel_workers_per_gather; \
     RESET enable_mergejoin; RESET enable_indexscan";

/// A chunk's span may hold this many rows per key and still be merged rather than probed. A
/// probe costs about four times a row of a range scan on cached data (measured: 20 k keys, 2.7 µs
/// per probe and 0.6 µs per scanned row), but the planner prices probes as random page reads and
/// merges spans twenty times wider than pay; so the choice is made here, from its row estimate.
const MERGE_ROWS_PER_KEY: f64 = 3.0;

/// Streams the rows of every chunk of `keys` (`COPY ... TO STDOUT [(FORMAT binary)]`, see
/// [`KeyedFetch`]), handing each piece of output to `sink`, and `None` after each query's output
/// (a binary COPY stream per query, with its own header and trailer).
pub async fn copy_keys(
    client: &Client,
    table: &TableRestore,
    cols: &[String],
    mut keys: KeyChunks,
    binary: bool,
    mut sink: impl FnMut(Option<Bytes>) -> Result<()>,
) -> Result<()> {
    let at = || format!("reading rows of {} by key", table.table);
    client.batch_execute(NO_HASH_JOIN).await.context(at)?;
    let mut join = JoinChoice::default();
    while let Some(mut records) = keys.next_records()? {
        let fetch = KeyedFetch::new(table, cols, &mut records, binary, RowOrder::Key);
        let copy = join.prepare(client, &fetch).await.context(at)?;
        copy_out(client, &copy, at, &mut sink).await?;
    }
    client.batch_execute(RESET_HASH_JOIN).await.context(at)
}

/// Streams the rows of a keyless table's records, read by their place (`ctid`, see
/// [`KeyRecord::ctid`]) in the session's snapshot, the one the comparison found them in, as text
/// COPY for a script. Every record must find its row: one gone from its place means the table
/// was rewritten since the comparison, and the recovery would be short of it.
pub async fn copy_places(
    client: &Client,
    table: &TableRestore,
    cols: &[String],
    mut keys: KeyChunks,
    mut sink: impl FnMut(Option<Bytes>) -> Result<()>,
) -> Result<()> {
    let at = || format!("reading rows of {} (keyless) by their place", table.table);
    let name = TableName::new(&table.schema, &table.name);
    crate::source::visit::hold_snapshot_files(client, &name)
        .await
        .context(at)?;
    while let Some(records) = keys.next_records()? {
        let copy = places_query(table, cols, &records, false)?;
        let mut rows = 0usize;
        // Text COPY ends every row with a newline and escapes the ones inside values.
        let mut counted = |piece: Option<Bytes>| {
            if let Some(bytes) = &piece {
                rows += bytes.iter().filter(|&&b| b == b'\n').count();
            }
            sink(piece)
        };
        copy_out(client, &copy, at, &mut counted).await?;
        if rows != records.len() {
            return Err(crate::error::Error::source(format!(
                "{}: {} of {} rows compared were not where the comparison read them",
                table.table,
                records.len() - rows.min(records.len()),
                records.len()
            ))
            .with_hint("the table was rewritten (VACUUM FULL, CLUSTER) since the comparison: run recover again"));
        }
    }
    Ok(())
}

/// `COPY (SELECT cols FROM table WHERE ctid = ANY ('{..}'::tid[])) TO STDOUT`: the rows of a
/// chunk of a keyless table's records, by place (a TID scan: no index, no table scan).
pub fn places_query(
    table: &TableRestore,
    cols: &[String],
    records: &[KeyRecord],
    binary: bool,
) -> Result<String> {
    let mut tids = Vec::with_capacity(records.len());
    for r in records {
        let tid = r.ctid.as_deref().ok_or_else(|| {
            crate::error::Error::usage(format!(
                "a key record of the keyless table {} has no ctid",
                table.table
            ))
        })?;
        // A tid prints as `(block,line)`: digits, comma and parentheses only.
        if !tid
            .bytes()
            .all(|b| b.is_ascii_digit() || b"(),".contains(&b))
        {
            return Err(crate::error::Error::usage(format!(
                "corrupt ctid {tid:?} in a key record of {}",
                table.table
            )));
        }
        tids.push(format!("\"{tid}\""));
    }
    Ok(format!(
        "COPY (SELECT {} FROM {} AS t WHERE t.ctid = ANY ('{{{}}}'::tid[])) TO STDOUT{}",
        qualified_list("t", cols),
        TableName::new(&table.schema, &table.name).sql(),
        tids.join(","),
        if binary { " (FORMAT binary)" } else { "" }
    ))
}

/// The fetch of one chunk of records by key:
/// `COPY (SELECT t.cols FROM table t JOIN unnest(keys) g ON t.key = g.key [AND span]) TO STDOUT`.
#[derive(Debug)]
pub struct KeyedFetch {
    /// `COPY (SELECT t.cols FROM table t JOIN unnest(keys) AS g(..) ON t.key = g.key`: the key
    /// arrays, the bulk of the text, built once.
    head: String,
    /// `) TO STDOUT [(FORMAT binary)]`.
    tail: &'static str,
    /// When the chunk's span bounds a scan: the `EXPLAIN` of that scan, and the bounds that make
    /// the join a merge over it.
    span: Option<(String, String)>,
    /// For [`RowOrder::Any`] on a one-column key: `COPY (SELECT t.cols FROM table t WHERE t.key =
    /// ANY(keys)`, the probe as one bitmap scan (see [`JoinChoice`]).
    any: Option<String>,
    keys: usize,
}

/// The order a fetch must return its rows in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOrder {
    /// The records' key order (the scripts and Parquet files are written in it).
    Key,
    /// Any: the reader matches rows to records by key (the guard). A one-column key is then
    /// probed with one bitmap scan, which visits the heap in page order: 15-25 % less server time
    /// than a probe per key in key order (measured: 20 k keys, 61 against 72 ms on rows inserted
    /// by the same transaction, 34 against 46 ms on committed ones).
    Any,
}

impl KeyedFetch {
    /// The fetch of `records`, which it sorts by key.
    pub fn new(
        table: &TableRestore,
        cols: &[String],
        records: &mut [KeyRecord],
        binary: bool,
        order: RowOrder,
    ) -> KeyedFetch {
        records.sort_unstable_by(|a, b| a.okey.cmp(&b.okey));
        let arrays = key_arrays(table, records);
        let from = TableName::new(&table.schema, &table.name).sql();
        let select = qualified_list("t", cols);
        let head = join_head(table, &select, &from, &arrays);
        let any = any_probe(table, order, &select, &from, &arrays);
        let span = span_bounds(table, records, &from);
        KeyedFetch {
            head,
            tail: if binary {
                ") TO STDOUT (FORMAT binary)"
            } else {
                ") TO STDOUT"
            },
            span,
            any,
            keys: records.len(),
        }
    }

    /// The COPY that probes the key index once per key.
    fn probe(&self) -> String {
        format!("{}{}", self.any.as_ref().unwrap_or(&self.head), self.tail)
    }

    /// The COPY that merges the keys with one scan of the span `bounds`.
    fn bounded(&self, bounds: &str) -> String {
        format!("{} AND {bounds}{}", self.head, self.tail)
    }

    /// When the span bounds a scan: its `EXPLAIN`, and the COPY that merges the keys with it.
    #[cfg(test)]
    fn merge(&self) -> Option<(&str, String)> {
        let (explain, bounds) = self.span.as_ref()?;
        Some((explain, self.bounded(bounds)))
    }
}

/// One array literal per key column, `'{...}'::type[]`, of the records' key values in order.
fn key_arrays(table: &TableRestore, records: &[KeyRecord]) -> Vec<String> {
    table
        .key_types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let values = records.iter().map(|r| r.key_text[i].as_str());
            format!("{}::{ty}[]", escape_literal(&array_literal(values)))
        })
        .collect()
}

/// `COPY (SELECT t.cols FROM table t JOIN unnest(keys) AS g(k0, ..) ON t.key = g.k0 ..`.
fn join_head(table: &TableRestore, select: &str, from: &str, arrays: &[String]) -> String {
    let names: Vec<String> = (0..table.key.len()).map(|i| format!("k{i}")).collect();
    let on: Vec<String> = table
        .key
        .iter()
        .zip(&names)
        .map(|(k, g)| format!("t.{} = g.{g}", quote_ident(k)))
        .collect();
    format!(
        "COPY (SELECT {select} FROM {from} t JOIN unnest({}) AS g({}) ON {}{}",
        arrays.join(", "),
        names.join(", "),
        on.join(" AND "),
        in_scope(table)
    )
}

/// For [`RowOrder::Any`] on a one-column key: the `= ANY(keys)` probe (see [`KeyedFetch::any`]).
fn any_probe(
    table: &TableRestore,
    order: RowOrder,
    select: &str,
    from: &str,
    arrays: &[String],
) -> Option<String> {
    match (order, table.key.as_slice()) {
        // The array goes in through a one-row subquery (an InitPlan): given the constant,
        // the planner estimates every element's selectivity (about 7 ms per 20 k keys,
        // a tenth of the fetch), and the bitmap scan is chosen by `JoinChoice` anyway. The
        // outer cast makes `(SELECT …)` an array expression: bare, `ANY((SELECT …))` would
        // compare the key with the subquery's one row, an array, and fail to resolve.
        (RowOrder::Any, [k]) => Some(format!(
            "COPY (SELECT {select} FROM {from} t WHERE t.{} = ANY((SELECT {})::{}[]){}",
            quote_ident(k),
            arrays[0],
            table.key_types[0],
            in_scope(table)
        )),
        _ => None,
    }
}

/// ` AND (predicate)` of a table read within a `--where`: a row outside it is out of scope, read
/// as absent by recover, the guard and the re-verify alike.
pub fn in_scope(table: &TableRestore) -> String {
    table
        .rows
        .as_ref()
        .map(|p| format!(" AND ({p})"))
        .unwrap_or_default()
}

/// When the key's span bounds a scan: the `EXPLAIN` of the scan over the sorted records' span,
/// and its bounds.
fn span_bounds(
    table: &TableRestore,
    records: &[KeyRecord],
    from: &str,
) -> Option<(String, String)> {
    match (table.key_spans, records.first(), records.last()) {
        (true, Some(first), Some(last)) => {
            // Sorted by the order key, whose first column leads: the span of that column.
            let k = quote_ident(&table.key[0]);
            let bounds = format!("t.{k} >= {} AND t.{k} <= {}", first.key[0], last.key[0]);
            let explain = format!("EXPLAIN SELECT 1 FROM {from} t WHERE {bounds}");
            Some((explain, bounds))
        }
        _ => None,
    }
}

/// Per chunk, one merge over its span or a probe of the key index per key, whichever reads less
/// (see [`MERGE_ROWS_PER_KEY`]); remembers the session's settings to change them only when needed.
#[derive(Debug, Default)]
pub struct JoinChoice {
    /// `enable_mergejoin` and `enable_indexscan` as last set.
    set: Option<(bool, bool)>,
}

impl JoinChoice {
    /// Sets the session up for `fetch` and returns the COPY to run.
    pub async fn prepare(
        &mut self,
        client: &Client,
        fetch: &KeyedFetch,
    ) -> std::result::Result<String, tokio_postgres::Error> {
        // Unbounded, a merge would scan the index from its first key: probe.
        let mut merging = None;
        if let Some((explain, bounds)) = &fetch.span {
            let plan = client.query(explain.as_str(), &[]).await?;
            let rows = plan
                .first()
                .and_then(|top| estimated_rows(&top.get::<_, String>(0)));
            if rows.is_some_and(|rows| rows <= MERGE_ROWS_PER_KEY * fetch.keys as f64) {
                merging = Some(fetch.bounded(bounds));
            }
        }
        // An unordered probe is a bitmap scan only with plain index scans off (the planner
        // prices the two alike at these sizes).
        let wanted = (merging.is_some(), merging.is_some() || fetch.any.is_none());
        if self.set != Some(wanted) {
            let on_off = |on: bool| if on { "on" } else { "off" };
            client
                .batch_execute(&format!(
                    "SET enable_mergejoin = {}; SET enable_indexscan = {}",
                    on_off(wanted.0),
                    on_off(wanted.1)
                ))
                .await?;
            self.set = Some(wanted);
        }
        Ok(merging.unwrap_or_else(|| fetch.probe()))
    }
}

/// The row estimate of a plan's top line: `Index Scan ... (cost=0.43..9.61 rows=1945 width=4)`.
fn estimated_rows(line: &str) -> Option<f64> {
    let rest = &line[line.find(" rows=")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The text of an array of `values` (`{"a","b\\"c"}`): every element quoted, `"` and `\` escaped,
/// so any text reads back as itself.
fn array_literal<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("{");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_quoted_array_item(&mut out, v);
    }
    out.push('}');
    out
}

/// Streams one `COPY ... TO STDOUT` into `sink`, then `None`.
pub async fn copy_out(
    client: &Client,
    copy: &str,
    at: impl Fn() -> String,
    sink: &mut impl FnMut(Option<Bytes>) -> Result<()>,
) -> Result<()> {
    let stream = client.copy_out(copy).await.context(&at)?;
    let mut stream = std::pin::pin!(stream);
    while let Some(piece) = stream.next().await {
        sink(Some(piece.context(&at)?))?;
    }
    sink(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::keys::tests::record;

    fn table(key: &[&str], types: &[&str], spans: bool) -> TableRestore {
        let text = serde_json::json!({
            "index": 0, "table": "public.t", "schema": "public", "name": "t",
            "key": key, "key_types": types, "key_spans": spans,
            "columns": ["a", "b", "v"], "insert_columns": [], "update_columns": [],
            "target_columns": [], "overriding": false, "target_overriding": false,
            "insert": 0, "update": 0, "delete": 0, "keep": 0, "classes": {}, "by_action": {},
            "differing_columns": {}, "insert_order": 0, "delete_order": 0
        });
        serde_json::from_value(text).unwrap()
    }

    #[test]
    fn reads_the_row_estimate_of_a_plan() {
        let line = "Index Only Scan using t_pkey on t  (cost=0.43..9425.61 rows=194509 width=4)";
        assert_eq!(estimated_rows(line), Some(194509.0));
        assert_eq!(
            estimated_rows("Result  (cost=0.00..0.01 rows=1 width=4)"),
            Some(1.0)
        );
        assert_eq!(estimated_rows("no estimate"), None);
    }

    #[test]
    fn array_literals_quote_every_element() {
        let values = [
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "",
            "NULL",
            "{a,b}",
        ];
        assert_eq!(
            array_literal(values.into_iter()),
            r#"{"plain","with \"quotes\"","back\\slash","","NULL","{a,b}"}"#
        );
    }

    #[test]
    fn a_fetch_sorts_its_chunk_and_bounds_the_scan_by_its_first_key() {
        let t = table(&["a", "b"], &["bigint", "text"], true);
        let mut records = vec![
            record(&["20", "x"], &["'20'::bigint", "'x'::text"], "02"),
            record(&["3", "it's"], &["'3'::bigint", "'it''s'::text"], "01"),
        ];
        let f = KeyedFetch::new(&t, &t.columns, &mut records, true, RowOrder::Key);
        assert_eq!(records[0].okey, "01");
        assert_eq!(f.keys, 2);
        let select = "COPY (SELECT t.\"a\", t.\"b\", t.\"v\" FROM \"public\".\"t\" t JOIN \
             unnest('{\"3\",\"20\"}'::bigint[], '{\"it''s\",\"x\"}'::text[]) AS g(k0, k1) \
             ON t.\"a\" = g.k0 AND t.\"b\" = g.k1";
        let bounds = "t.\"a\" >= '3'::bigint AND t.\"a\" <= '20'::bigint";
        assert_eq!(f.probe(), format!("{select}) TO STDOUT (FORMAT binary)"));
        let (explain, merge) = f.merge().unwrap();
        assert_eq!(
            explain,
            format!("EXPLAIN SELECT 1 FROM \"public\".\"t\" t WHERE {bounds}")
        );
        assert_eq!(
            merge,
            format!("{select} AND {bounds}) TO STDOUT (FORMAT binary)")
        );
    }

    #[test]
    fn a_fetch_leaves_the_scan_unbounded_when_the_index_orders_otherwise() {
        let t = table(&["a"], &["text"], false);
        let mut records = vec![record(&["b\\"], &[" E'b\\\\'::text"], "01")];
        let f = KeyedFetch::new(&t, &["a".into()], &mut records, false, RowOrder::Key);
        assert!(f.merge().is_none());
        assert_eq!(
            f.probe(),
            "COPY (SELECT t.\"a\" FROM \"public\".\"t\" t JOIN \
             unnest( E'{\"b\\\\\\\\\"}'::text[]) AS g(k0) ON t.\"a\" = g.k0) TO STDOUT"
        );
    }

    #[test]
    fn an_unordered_fetch_probes_a_one_column_key_with_any_and_joins_a_composite_one() {
        let one = table(&["a"], &["bigint"], true);
        let mut records = vec![
            record(&["7"], &["'7'::bigint"], "02"),
            record(&["5"], &["'5'::bigint"], "01"),
        ];
        let f = KeyedFetch::new(&one, &one.columns, &mut records, true, RowOrder::Any);
        assert_eq!(
            f.probe(),
            "COPY (SELECT t.\"a\", t.\"b\", t.\"v\" FROM \"public\".\"t\" t \
             WHERE t.\"a\" = ANY((SELECT '{\"5\",\"7\"}'::bigint[])::bigint[])) TO STDOUT (FORMAT binary)"
        );
        // The merge over a dense span stays a join: it needs the keys in index order.
        let (_, merge) = f.merge().unwrap();
        assert!(
            merge.contains("JOIN unnest('{\"5\",\"7\"}'::bigint[]) AS g(k0)"),
            "{merge}"
        );
        let two = table(&["a", "b"], &["bigint", "text"], true);
        let mut records = vec![record(&["1", "x"], &["'1'::bigint", "'x'::text"], "01")];
        let f = KeyedFetch::new(&two, &two.columns, &mut records, true, RowOrder::Any);
        assert!(f.probe().contains("JOIN unnest("), "{}", f.probe());
    }
}
