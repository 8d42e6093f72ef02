//! Reading the differing rows again, by key, from a source's snapshot.
//!
//! The merge recorded every differing key as typed literals in `keys/<table>.jsonl`; the writers
//! read them back in chunks and ask the source for just those rows (`WHERE key IN (...)`, through
//! the primary key index), on the session that still holds the snapshot the comparison read. Only
//! differing rows are read twice, never the matching ones. Text COPY output goes into the SQL
//! scripts as it comes; binary output feeds the Parquet writer.

use std::io::BufRead;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::classify::Action;
use crate::error::{Context, Error, Result};
use crate::pipeline::findings::KeyRecord;
use crate::sink::sql::select_list;

/// Keys per fetch query: large enough to amortize the round trip, small enough for the planner
/// to use the key index.
const KEYS_PER_QUERY: usize = 500;

/// Calls `each` with every record of a table's key file (none when the table has no file).
pub fn for_each_record(path: &Path, mut each: impl FnMut(KeyRecord) -> Result<()>) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| Error::io(path.display(), e))?;
        let record: KeyRecord = serde_json::from_str(&line)
            .map_err(|e| Error::usage(format!("{}: corrupt key record: {e}", path.display())))?;
        each(record)?;
    }
    Ok(())
}

/// Reads a table's key file lazily, a chunk of keys with the wanted actions at a time, so the
/// keys of a large difference never sit in memory all at once.
pub struct KeyChunks {
    lines: Option<std::io::Lines<std::io::BufReader<std::fs::File>>>,
    actions: Vec<Action>,
    class: Option<crate::classify::Class>,
    path: std::path::PathBuf,
    chunk: usize,
}

impl KeyChunks {
    pub fn open(path: &Path, actions: &[Action]) -> Result<KeyChunks> {
        let lines = match std::fs::File::open(path) {
            Ok(f) => Some(std::io::BufReader::new(f).lines()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        Ok(KeyChunks {
            lines,
            actions: actions.to_vec(),
            class: None,
            path: path.to_path_buf(),
            chunk: KEYS_PER_QUERY,
        })
    }

    /// Only records of this class.
    pub fn of_class(mut self, class: crate::classify::Class) -> Self {
        self.class = Some(class);
        self
    }

    /// Chunks of `n` records instead of one query's worth.
    pub fn with_chunk(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// The next chunk of records, `None` at the end.
    pub fn next_records(&mut self) -> Result<Option<Vec<KeyRecord>>> {
        let mut chunk = Vec::new();
        let Some(lines) = self.lines.as_mut() else {
            return Ok(None);
        };
        for line in lines.by_ref() {
            let line = line.map_err(|e| Error::io(self.path.display(), e))?;
            let record: KeyRecord = serde_json::from_str(&line).map_err(|e| {
                Error::usage(format!("{}: corrupt key record: {e}", self.path.display()))
            })?;
            if self.actions.contains(&record.action) && self.class.is_none_or(|c| c == record.class)
            {
                chunk.push(record);
                if chunk.len() >= self.chunk {
                    break;
                }
            }
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// `(k1, k2) IN ((..), (..))` or `k IN (..)` for a chunk of keys.
pub fn key_filter(key: &[String], keys: &[Vec<String>]) -> String {
    let lhs = match key {
        [one] => crate::shape::quote_ident(one),
        many => format!("({})", select_list(many)),
    };
    let tuples: Vec<String> = keys
        .iter()
        .map(|k| {
            if k.len() == 1 {
                k[0].clone()
            } else {
                format!("({})", k.join(", "))
            }
        })
        .collect();
    format!("{lhs} IN ({})", tuples.join(", "))
}

/// Streams `COPY (SELECT cols FROM table WHERE key IN chunk) TO STDOUT [(FORMAT binary)]` for
/// every chunk of `keys`, handing each piece of output to `sink`, and `None` after each query's
/// output (a binary COPY stream per query, with its own header and trailer).
pub async fn copy_keys(
    client: &Client,
    table_sql: &str,
    cols: &[String],
    key: &[String],
    mut keys: KeyChunks,
    binary: bool,
    mut sink: impl FnMut(Option<Bytes>) -> Result<()>,
) -> Result<()> {
    while let Some(records) = keys.next_records()? {
        let literals: Vec<Vec<String>> = records.into_iter().map(|r| r.key).collect();
        copy_chunk(client, table_sql, cols, key, &literals, binary, &mut sink).await?;
    }
    Ok(())
}

/// One fetch query for one chunk of keys.
pub async fn copy_chunk(
    client: &Client,
    table_sql: &str,
    cols: &[String],
    key: &[String],
    literals: &[Vec<String>],
    binary: bool,
    sink: &mut impl FnMut(Option<Bytes>) -> Result<()>,
) -> Result<()> {
    let format = if binary { " (FORMAT binary)" } else { "" };
    let query = format!(
        "COPY (SELECT {} FROM {table_sql} WHERE {}) TO STDOUT{format}",
        select_list(cols),
        key_filter(key, literals)
    );
    let at = || format!("reading rows of {table_sql} by key");
    copy_out(client, &query, at, sink).await
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
    use super::key_filter;

    #[test]
    fn filters_single_and_composite_keys() {
        let one = vec!["id".to_string()];
        assert_eq!(
            key_filter(
                &one,
                &[vec!["'1'::bigint".into()], vec!["'2'::bigint".into()]]
            ),
            "\"id\" IN ('1'::bigint, '2'::bigint)"
        );
        let two = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            key_filter(&two, &[vec!["1".into(), "'x'".into()]]),
            "(\"a\", \"b\") IN ((1, 'x'))"
        );
    }
}
