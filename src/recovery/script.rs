//! Restore and undo scripts: psql-runnable SQL with bulk data in `COPY ... FROM STDIN` blocks.
//!
//! Each table section loads its rows into a temporary table with one `COPY` and changes the real
//! table with one statement (`INSERT ... ON CONFLICT (key) DO UPDATE`, `UPDATE ... FROM`,
//! `DELETE ... USING`), so a million restored rows apply in seconds. The data lines are the
//! server's own text COPY output for those rows, copied byte for byte, so every value is exactly
//! what the source holds in every type without pgsalvage re-rendering it; identifiers are quoted
//! by postgres-protocol. The format is also what `apply` reads back: one statement per line
//! ending in `;`, `COPY` data up to a `\.` line, comments with `--`, psql meta-commands with `\`.

use std::io::Write;

use crate::error::{Error, Result};
use crate::shape::quote_ident;
use crate::sql::{key_match, list, qualified_list};

/// A script being written.
pub struct Script<W: Write> {
    out: W,
}

impl<W: Write> Script<W> {
    pub fn new(out: W) -> Self {
        Script { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn put(&mut self, text: &str) -> Result<()> {
        self.out
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("writing a script", e))
    }

    /// Comment lines (each line of `text` prefixed with `-- `).
    pub fn comment(&mut self, text: &str) -> Result<()> {
        for line in text.lines() {
            // A carriage return would end the comment for psql: control characters are shown
            // escaped, so nothing in a name or a value can leave the comment.
            let shown: String = line
                .chars()
                .map(|c| match c.is_control() {
                    true => format!("\\u{{{:04x}}}", c as u32),
                    false => c.to_string(),
                })
                .collect();
            self.put(&format!("-- {shown}\n"))?;
        }
        Ok(())
    }

    /// The session set-up every script starts with, and `BEGIN`.
    pub fn begin(&mut self) -> Result<()> {
        self.put(
            "\\set ON_ERROR_STOP on\n\
             SET client_encoding = 'UTF8';\n\
             SET standard_conforming_strings = on;\n\
             SET DateStyle = 'ISO, MDY';\n\
             SET IntervalStyle = 'postgres';\n\
             SET TimeZone = 'UTC';\n\
             BEGIN;\n",
        )
    }

    pub fn commit(&mut self) -> Result<()> {
        self.put("COMMIT;\n")
    }

    pub fn statement(&mut self, sql: &str) -> Result<()> {
        debug_assert!(!sql.contains('\n'), "statements stay on one line");
        self.put(sql)?;
        self.put(";\n")
    }

    /// A temporary table shaped like `cols` of `table`, dropped at commit.
    pub fn temp_table(&mut self, temp: &str, table_sql: &str, cols: &[String]) -> Result<()> {
        self.statement(&format!(
            "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {table_sql} WITH NO DATA",
            quote_ident(temp),
            list(cols)
        ))
    }

    pub fn copy_begin(&mut self, temp: &str, cols: &[String]) -> Result<()> {
        self.put(&format!(
            "COPY {} ({}) FROM STDIN;\n",
            quote_ident(temp),
            list(cols)
        ))
    }

    /// Text COPY data as the server produced it (complete lines).
    pub fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        self.out
            .write_all(data)
            .map_err(|e| Error::io("writing a script", e))
    }

    pub fn copy_end(&mut self) -> Result<()> {
        self.put("\\.\n")
    }

    /// Inserts the temp table's rows; a row that exists meanwhile is overwritten with them.
    pub fn insert_from(
        &mut self,
        table_sql: &str,
        temp: &str,
        cols: &[String],
        key: &[String],
        overriding: bool,
        scope: Option<&str>,
    ) -> Result<()> {
        let set: Vec<String> = cols
            .iter()
            .filter(|c| !key.contains(c))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
            .collect();
        let conflict = if set.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!(
                "DO UPDATE SET {}{}",
                set.join(", "),
                in_scope(" WHERE", table_sql, scope)
            )
        };
        let overriding = if overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        self.statement(&format!(
            "INSERT INTO {table_sql} AS t ({}){overriding} SELECT {} FROM {} ON CONFLICT ({}) {conflict}",
            list(cols),
            list(cols),
            quote_ident(temp),
            list(key)
        ))
    }

    /// Sets `set` columns of the rows whose key is in the temp table.
    pub fn update_from(
        &mut self,
        table_sql: &str,
        temp: &str,
        set: &[String],
        key: &[String],
        scope: Option<&str>,
    ) -> Result<()> {
        if set.is_empty() {
            return Ok(());
        }
        let assign: Vec<String> = set
            .iter()
            .map(|c| format!("{0} = s.{0}", quote_ident(c)))
            .collect();
        self.statement(&format!(
            "UPDATE {table_sql} AS t SET {} FROM {} AS s WHERE {}{}",
            assign.join(", "),
            quote_ident(temp),
            key_match(key),
            in_scope(" AND", table_sql, scope)
        ))
    }

    /// Deletes the rows whose key is in the temp table.
    pub fn delete_using(
        &mut self,
        table_sql: &str,
        temp: &str,
        key: &[String],
        scope: Option<&str>,
    ) -> Result<()> {
        self.statement(&format!(
            "DELETE FROM {table_sql} AS t USING {} AS s WHERE {}{}",
            quote_ident(temp),
            key_match(key),
            in_scope(" AND", table_sql, scope)
        ))
    }
}

impl<W: Write> Script<W> {
    /// Inserts the temp table's rows as they are: copies of a keyless table's rows, which no
    /// key could find already there.
    pub fn insert_copies(
        &mut self,
        table_sql: &str,
        temp: &str,
        cols: &[String],
        overriding: bool,
    ) -> Result<()> {
        let overriding = if overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        self.statement(&format!(
            "INSERT INTO {table_sql} ({}){overriding} SELECT {} FROM {}",
            list(cols),
            list(cols),
            quote_ident(temp)
        ))
    }

    /// Deletes, for every row of the temp table, one copy of it from a keyless table: as many
    /// copies of each content as the temp table holds, whichever physical rows they are (equal
    /// copies are interchangeable). Rows are matched on their text form over `cols` (each type's
    /// output is exact for its value, floats included at `extra_float_digits` 3, and needs no
    /// equality operator, which json or point lack), compared in byte order.
    pub fn delete_copies(
        &mut self,
        table_sql: &str,
        temp: &str,
        cols: &[String],
        scope: Option<&str>,
    ) -> Result<()> {
        self.statement("SET LOCAL extra_float_digits = 3")?;
        let row = |alias: &str| format!("ROW({})::text COLLATE \"C\"", qualified_list(alias, cols));
        self.statement(&format!(
            "DELETE FROM {table_sql} WHERE ctid = ANY (ARRAY(\
             SELECT c.ctid FROM (\
             SELECT t.ctid, row_number() OVER (PARTITION BY s.pgsalvage_row) AS pgsalvage_n, s.pgsalvage_copies \
             FROM {table_sql} AS t JOIN (\
             SELECT {} AS pgsalvage_row, count(*) AS pgsalvage_copies FROM {} AS s GROUP BY 1\
             ) AS s ON {} = s.pgsalvage_row{}\
             ) AS c WHERE c.pgsalvage_n <= c.pgsalvage_copies))",
            row("s"),
            quote_ident(temp),
            row("t"),
            in_scope(" WHERE", table_sql, scope)
        ))
    }
}

/// `<joiner> EXISTS (…)`: the row `t` lies within the table's `--where` predicate, so restore
/// and undo touch no row outside it. The predicate is evaluated on its own copy of the table
/// (matched by ctid), where its bare column names cannot be ambiguous with the loaded rows'.
fn in_scope(joiner: &str, table_sql: &str, scope: Option<&str>) -> String {
    match scope {
        Some(p) => format!(
            "{joiner} EXISTS (SELECT FROM {table_sql} AS w WHERE w.ctid = t.ctid AND ({p}))"
        ),
        None => String::new(),
    }
}

/// Statements and COPY blocks of a script written by [`Script`], in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Statement(String),
    /// `COPY temp (cols) FROM STDIN` and where in the script its data lines lie (each line
    /// ending in `\n`, the `\.` end not included): a recovery of millions of rows is streamed
    /// from the file when its COPY runs, never held in memory.
    Copy {
        statement: String,
        data: std::ops::Range<u64>,
    },
}

/// Reads a script back (for `apply`): skips comments, meta-commands and blank lines.
pub fn parse_script(script: impl std::io::BufRead) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut lines = Lines {
        script,
        line: Vec::new(),
        offset: 0,
    };
    while lines.next()? {
        let line_text = std::str::from_utf8(&lines.line)
            .map_err(|_| Error::usage("restore script is not UTF-8"))?;
        let trimmed = line_text.trim_end_matches('\n');
        if trimmed.is_empty() || trimmed.starts_with("--") || trimmed.starts_with('\\') {
            continue;
        }
        let statement = trimmed
            .strip_suffix(';')
            .ok_or_else(|| {
                Error::usage(format!(
                    "restore script: a statement does not end in ';': {}",
                    truncate(trimmed)
                ))
            })?
            .to_string();
        if statement.starts_with("COPY ") && statement.ends_with(" FROM STDIN") {
            let start = lines.offset;
            let end = loop {
                let before = lines.offset;
                if !lines.next()? {
                    return Err(Error::usage(
                        "restore script: COPY data without its \\. end",
                    ));
                }
                if lines.line == b"\\.\n" || lines.line == b"\\." {
                    break before;
                }
            };
            steps.push(Step::Copy {
                statement,
                data: start..end,
            });
        } else {
            steps.push(Step::Statement(statement));
        }
    }
    Ok(steps)
}

/// A script's lines, one at a time, with the offset where the next one starts.
struct Lines<R> {
    script: R,
    line: Vec<u8>,
    offset: u64,
}

impl<R: std::io::BufRead> Lines<R> {
    /// Reads the next line into `line`; false at the end.
    fn next(&mut self) -> Result<bool> {
        self.line.clear();
        let n = self
            .script
            .read_until(b'\n', &mut self.line)
            .map_err(|e| Error::io("reading the restore script", e))?;
        self.offset += n as u64;
        Ok(n > 0)
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_parses_back() {
        let mut s = Script::new(Vec::new());
        let cols = vec!["id".to_string(), "na\"me".to_string()];
        let key = vec!["id".to_string()];
        s.comment("public.t: 2 inserts\nsecond line").unwrap();
        s.begin().unwrap();
        s.temp_table("pgsalvage_0_ins", "\"public\".\"t\"", &cols)
            .unwrap();
        s.copy_begin("pgsalvage_0_ins", &cols).unwrap();
        s.copy_data(b"1\tx;\n2\t\\\\.\n").unwrap();
        s.copy_end().unwrap();
        s.insert_from(
            "\"public\".\"t\"",
            "pgsalvage_0_ins",
            &cols,
            &key,
            false,
            None,
        )
        .unwrap();
        s.commit().unwrap();
        let text = s.into_inner();
        let steps = parse_script(&text[..]).unwrap();
        assert_eq!(steps.len(), 10, "{steps:#?}");
        assert_eq!(steps[5], Step::Statement("BEGIN".into()));
        let Step::Copy { statement, data } = &steps[7] else {
            panic!("{:?}", steps[7]);
        };
        assert_eq!(
            statement,
            "COPY \"pgsalvage_0_ins\" (\"id\", \"na\"\"me\") FROM STDIN"
        );
        assert_eq!(
            &text[data.start as usize..data.end as usize],
            b"1\tx;\n2\t\\\\.\n"
        );
        assert_eq!(
            steps[8],
            Step::Statement(
                "INSERT INTO \"public\".\"t\" AS t (\"id\", \"na\"\"me\") SELECT \"id\", \"na\"\"me\" FROM \"pgsalvage_0_ins\" ON CONFLICT (\"id\") DO UPDATE SET \"na\"\"me\" = EXCLUDED.\"na\"\"me\"".into()
            )
        );
    }
}
