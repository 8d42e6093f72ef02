//! Flag groups shared by several commands, declared once and flattened into each
//! (`#[command(flatten)]`), so `--target`, `--json`, `-q`, `--jobs` read and validate the same
//! everywhere.
//!
//! Connection flags never show their environment value in `--help` (`hide_env_values`): a URL in
//! `PGSALVAGE_TARGET` may hold a password. Keep passwords in `PGPASSWORD`, `~/.pgpass` or a
//! `passfile=` instead.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
use crate::settings::{LiveLimits, NamePattern, TableFilter};
use crate::shape::TableName;

/// `--target`: the database a command looks at or changes.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The target database: the side under suspicion, e.g. the primary after a failed
    /// migration.
    ///
    /// A libpq connection URI (postgresql://user@host:port/db?sslmode=require) or key=value
    /// string; missing parts come from PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, and
    /// passwords from PGPASSWORD or ~/.pgpass.
    #[arg(
        long,
        env = "PGSALVAGE_TARGET",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Sources"
    )]
    pub target: String,
}

/// `--tables` and `--schema`: which tables a command covers.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Only these tables (schema.table, comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "TABLES",
        help_heading = "What to compare"
    )]
    pub tables: Vec<String>,

    /// Only tables in these schemas (comma-separated).
    #[arg(
        long = "schema",
        value_delimiter = ',',
        value_name = "SCHEMA",
        help_heading = "What to compare"
    )]
    pub schemas: Vec<String>,

    /// Leave out the tables matching PATTERN (repeatable), as pg_dump's -T: `*` and `?`
    /// wildcards, schema.table (a bare name is in public), letters folded to lower case unless
    /// double-quoted. A pattern matching nothing is fine; a --tables table it matches is an error.
    #[arg(long, value_name = "PATTERN", help_heading = "What to compare")]
    pub exclude_tables: Vec<String>,

    /// Leave out the tables of schemas matching PATTERN (repeatable), as pg_dump's -N.
    #[arg(long, value_name = "PATTERN", help_heading = "What to compare")]
    pub exclude_schema: Vec<String>,
}

impl ScopeArgs {
    pub fn filter(&self) -> Result<TableFilter> {
        let mut filter = super::table_filter(&self.tables, &self.schemas)?;
        let pattern = |flag: &str, r: std::result::Result<NamePattern, String>| {
            r.map_err(|e| Error::usage(format!("invalid {flag} {e}")))
        };
        for p in &self.exclude_tables {
            filter
                .exclude_tables
                .push(pattern("--exclude-tables", NamePattern::table(p))?);
        }
        for p in &self.exclude_schema {
            filter
                .exclude_schemas
                .push(pattern("--exclude-schema", NamePattern::schema(p))?);
        }
        filter.check()?;
        Ok(filter)
    }
}

/// `--where`, `--exclude-columns`, `--map-column`: which rows and columns of a table are
/// compared (verify, recover, baseline).
#[derive(Debug, Args)]
pub struct NarrowArgs {
    /// Compare only the rows of a table that a predicate accepts, on every source alike:
    /// --where "public.orders:created_at >= '2026-01-01'" (repeatable, one per table).
    /// Rows outside it are out of scope: not compared, not restored, not deleted.
    #[arg(
        long = "where",
        value_name = "TABLE:PREDICATE",
        help_heading = "What to compare"
    )]
    pub where_rows: Vec<String>,

    /// Leave these columns out of the comparison: --exclude-columns public.orders:note,updated_at
    /// (repeatable). Key columns cannot be left out.
    #[arg(long, value_name = "TABLE:COLS", help_heading = "What to compare")]
    pub exclude_columns: Vec<String>,

    /// A column renamed by the migration: --map-column public.orders:old_name=new_name compares
    /// the base's `old_name` with `new_name` on the other sources (and restores into
    /// `new_name`). Repeatable.
    #[arg(long, value_name = "TABLE:OLD=NEW", help_heading = "What to compare")]
    pub map_column: Vec<String>,
}

impl NarrowArgs {
    /// Adds the flags to `filter`.
    pub fn narrow(&self, filter: &mut TableFilter) -> Result<()> {
        for spec in &self.where_rows {
            let (table, predicate) = table_and_rest(spec, "--where", "'public.t:id > 1000'")?;
            if predicate.contains(['\n', '\r']) {
                return Err(Error::usage(format!(
                    "--where for {table}: write the predicate on one line"
                )));
            }
            if filter.rows.insert(table.clone(), predicate).is_some() {
                return Err(Error::usage(format!("--where names {table} twice"))
                    .with_hint("join the predicates with AND"));
            }
        }
        let excluded = super::parse_table_columns(&self.exclude_columns, "--exclude-columns", ':')?;
        filter.exclude_columns.extend(excluded);
        for spec in &self.map_column {
            let (table, rest) = table_and_rest(spec, "--map-column", "public.t:old_name=new_name")?;
            let (old, new) = rest
                .split_once('=')
                .map(|(o, n)| (o.trim().to_string(), n.trim().to_string()))
                .filter(|(o, n)| !o.is_empty() && !n.is_empty())
                .ok_or_else(|| {
                    Error::usage(format!("invalid --map-column \"{spec}\""))
                        .with_hint("write --map-column public.t:old_name=new_name")
                })?;
            filter
                .map_columns
                .entry(table)
                .or_default()
                .push((old, new));
        }
        Ok(())
    }
}

/// `schema.table:rest`, split at the first colon outside double quotes.
fn table_and_rest(spec: &str, flag: &str, example: &str) -> Result<(TableName, String)> {
    let mut quoted = false;
    let colon = spec.char_indices().find(|&(_, c)| {
        quoted ^= c == '"';
        c == ':' && !quoted
    });
    let usage = || {
        Error::usage(format!("invalid {flag} \"{spec}\""))
            .with_hint(format!("write {flag} {example}"))
    };
    let (i, _) = colon.ok_or_else(usage)?;
    let rest = spec[i + 1..].trim();
    if rest.is_empty() {
        return Err(usage());
    }
    Ok((super::parse_table(&spec[..i])?, rest.to_string()))
}

/// `--jobs` and the hidden batch size: how hard a command reads its sources.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Worker sessions per source; each reads one key range at a time.
    #[arg(
        long,
        short = 'j',
        default_value_t = 4,
        value_name = "N",
        value_parser = at_least_one,
        help_heading = "Performance"
    )]
    pub jobs: usize,

    /// COPY data per hashing batch (bounds memory per worker), e.g. 1MB, 512kB, or bytes. The
    /// default is the command's own: a baseline reads one source, so the same memory holds
    /// batches twice as large as a verify's.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Performance")]
    pub batch_size: Option<u64>,

    /// Memory for matching a table without a key as its sources stream (rows every source has
    /// shown leave it at once), e.g. 48MB (the default). Copies that do not fit go to disk and
    /// are counted from there; rows behind differences among them are read again.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Performance")]
    pub keyless_window: Option<u64>,

    /// The longest a key range waits for its table's lock (held by a DDL or a LOCK TABLE) before
    /// it is left unverified, e.g. 60s, 5m. Reads never queue in front of a waiting DDL: each
    /// lock request gives up within a second and is retried.
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = parse_duration, help_heading = "Live primary")]
    pub lock_wait: Duration,

    /// Read at most this much COPY data per second from each source, e.g. 50MB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Live primary")]
    pub max_rate: Option<u64>,

    /// Pause while a replica of a source lags more than this (pg_stat_replication.replay_lag),
    /// e.g. 10s.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, help_heading = "Live primary")]
    pub max_lag: Option<Duration>,

    /// Pause while more than N other sessions of a source are active.
    #[arg(long, value_name = "N", help_heading = "Live primary")]
    pub max_active: Option<u32>,

    /// Pause while this file exists (touch it to pause a run, remove it to go on).
    #[arg(long, value_name = "PATH", help_heading = "Live primary")]
    pub pause_file: Option<PathBuf>,
}

impl WorkArgs {
    /// The live-primary limits as settings.
    pub fn live(&self) -> Result<LiveLimits> {
        Ok(LiveLimits {
            lock_wait: self.lock_wait,
            max_rate: self.max_rate,
            max_lag: self.max_lag,
            max_active: self.max_active,
            pause_file: self.pause_file.clone(),
        })
    }

    /// The batch size in bytes, `default_kib` unless given.
    pub fn batch_bytes(&self, default_kib: usize) -> usize {
        let bytes = self.batch_size.map_or(default_kib * 1024, |b| b as usize);
        bytes.max(4 * 1024)
    }
}

/// `--json`, `-q`, `--no-progress`: what a command prints and writes.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the full report as JSON to this file, or to standard output with `-` (the text
    /// summary then goes to standard error). Its schema is named in its "format" field.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub json: Option<PathBuf>,

    /// Print only the verdict line (and errors); no progress bars.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,

    /// Do not draw progress bars.
    #[arg(long, help_heading = "Output")]
    pub no_progress: bool,
}

/// The findings' outputs of a comparison's report: shared by verify and merge.
#[derive(Debug, Args)]
pub struct ListingArgs {
    /// Write one CSV line per differing row (table,key,kind,columns) to this file.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub findings: Option<PathBuf>,

    /// List at most this many differing rows in the JSON report (counts stay exact).
    #[arg(
        long,
        default_value_t = 10_000,
        value_name = "N",
        help_heading = "Output"
    )]
    pub max_findings: usize,
}

impl ListingArgs {
    /// Puts them into `settings`, once `--findings` is known to be writable.
    pub fn apply(&self, settings: &mut crate::settings::VerifySettings) -> Result<()> {
        if let Some(path) = &self.findings {
            crate::report::check_writable(path, "--findings")?;
        }
        settings.max_findings = self.max_findings;
        settings.findings_csv = self.findings.clone();
        Ok(())
    }
}

impl OutputArgs {
    /// What draws progress: bars on a terminal, plain lines with `--no-progress` or off a
    /// terminal (messages and waits are never dropped), nothing with `-q`.
    pub fn reporter(&self) -> std::sync::Arc<dyn crate::progress::Reporter> {
        // With -v the log shares standard error: plain lines keep both readable.
        let lines = self.no_progress || crate::log::enabled(1);
        match (self.quiet, lines) {
            (true, _) => super::reporter_for(true),
            (false, true) => std::sync::Arc::new(super::bars::Lines::default()),
            (false, false) => super::reporter_for(false),
        }
    }

    /// Whether progress bars stay off.
    pub fn silent(&self) -> bool {
        self.quiet || self.no_progress
    }

    /// Checks that `--json` can be written, before any work.
    pub fn check(&self) -> Result<()> {
        match &self.json {
            Some(path) => crate::report::check_writable(path, "--json"),
            None => Ok(()),
        }
    }

    /// Prints a command's text, or only its last line (the verdict) with `-q`.
    pub fn print(&self, text: &str) {
        print_text(text, self.quiet, self.json.as_deref());
    }
}

/// Prints a summary (or its last line when `quiet`) to standard output, or to standard error
/// when the JSON report takes standard output.
pub fn print_text(text: &str, quiet: bool, json: Option<&std::path::Path>) {
    let text = match quiet {
        true => format!("{}\n", text.lines().last().unwrap_or_default()),
        false => text.to_string(),
    };
    match json.is_some_and(crate::report::is_stdout) {
        true => eprint!("{text}"),
        false => print!("{text}"),
    }
}

/// A duration: a number with a unit (ms, s, min or m, h), or bare seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let (n, unit) = number_and_unit(text, "a duration (e.g. 500ms, 30s, 5m, 1h)")?;
    let secs = match unit {
        "" | "s" | "sec" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A size: a number with a unit (B, kB, MB, GB, as PostgreSQL counts them: 1024-fold; KiB, MiB,
/// GiB alike), or bare bytes.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let (n, unit) = number_and_unit(text, "a size (e.g. 512kB, 50MB, 1GB)")?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use kB, MB or GB)"
            ))
        }
    };
    match (n * scale as f64) as u64 {
        0 => Err(format!("{text:?} is zero")),
        bytes => Ok(bytes),
    }
}

/// `"50MB"` as `(50.0, "MB")`; `what` names the expected form in the error.
fn number_and_unit<'a>(text: &'a str, what: &str) -> std::result::Result<(f64, &'a str), String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    match number.parse() {
        Ok(n) => Ok((n, unit.trim())),
        Err(_) => Err(format!("{text:?} is not {what}")),
    }
}

fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_size};
    use std::time::Duration;

    #[test]
    fn durations_and_sizes_read_with_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5 weeks")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("is not a duration"));
        assert_eq!(parse_size("50MB"), Ok(50 << 20));
        assert_eq!(parse_size("512kB"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0MB").unwrap_err().contains("zero"));
        assert!(parse_size("10 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
    }
}
