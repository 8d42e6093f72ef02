//! `pgsalvage check`: flags → [`CheckSettings`], then the run, its text and its exit status.

use std::path::PathBuf;

use clap::Args;

use super::{runtime, table_filter};
use crate::check::{check, CheckSettings};
use crate::error::Result;
use crate::source::conninfo::{resolve, ProcessEnv};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The database to check, e.g. the primary after a failed migration.
    ///
    /// A libpq connection URI or key=value string; missing parts come from PGHOST, PGPORT,
    /// PGUSER, PGDATABASE, PGSSLMODE and passwords from PGPASSWORD or ~/.pgpass.
    #[arg(
        long,
        env = "PGSALVAGE_TARGET",
        value_name = "URL",
        help_heading = "Sources"
    )]
    pub target: String,

    /// The known-good schema (a restored pre-migration backup). With it, check also reports
    /// schema drift, NOT NULL and unique rules the target lost, and which missing parents the
    /// base can restore.
    #[arg(
        long,
        env = "PGSALVAGE_BASE",
        value_name = "URL",
        help_heading = "Sources"
    )]
    pub base: Option<String>,

    /// Write the full report as JSON (schema pgsalvage.check/1) to this file.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub json: Option<PathBuf>,

    /// List at most this many keys per finding (counts stay exact).
    #[arg(
        long,
        default_value_t = 1000,
        value_name = "N",
        help_heading = "Output"
    )]
    pub max_keys: usize,

    /// Print only the verdict line (and errors).
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,

    /// Check only these tables (schema.table, comma-separated); foreign keys are still followed
    /// to their parents wherever they are.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "TABLES",
        help_heading = "What to check"
    )]
    pub tables: Vec<String>,

    /// Check only tables in these schemas (comma-separated).
    #[arg(
        long = "schema",
        value_delimiter = ',',
        value_name = "SCHEMA",
        help_heading = "What to check"
    )]
    pub schemas: Vec<String>,
}

impl CheckArgs {
    pub fn settings(&self) -> Result<CheckSettings> {
        let target = resolve(&self.target, &ProcessEnv).map_err(|e| e.context("--target"))?;
        let base = self
            .base
            .as_deref()
            .map(|b| resolve(b, &ProcessEnv).map_err(|e| e.context("--base")))
            .transpose()?;
        Ok(CheckSettings {
            target,
            base,
            filter: table_filter(&self.tables, &self.schemas)?,
            max_keys: self.max_keys,
            json: self.json.clone(),
        })
    }
}

pub fn run(args: &CheckArgs) -> Result<i32> {
    let settings = args.settings()?;
    let report = runtime()?.block_on(check(&settings))?;
    if let Some(path) = &settings.json {
        report.write_json(path)?;
    }
    let text = report.human();
    if args.quiet {
        println!("{}", text.lines().last().unwrap_or_default());
    } else {
        print!("{text}");
    }
    Ok(report.exit_code)
}
