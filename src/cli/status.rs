//! `pgsalvage status`: flags → [`StatusSettings`], one read-only look at the target, the summary
//! printed and the JSON written.

use clap::Args;

use super::args::{OutputArgs, TargetArgs};
use super::runtime;
use crate::error::Result;
use crate::incident::{status, StatusSettings, Thresholds};
use crate::source::conninfo::{resolve, ProcessEnv};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The database to look at: a primary or a standby. The session is read-only; sessions and
    /// locks are those of this database, replication is the cluster's.
    #[command(flatten)]
    pub target: TargetArgs,

    /// List (and count as notable) transactions open longer than this.
    #[arg(
        long,
        default_value_t = 300,
        value_name = "SECONDS",
        help_heading = "Thresholds"
    )]
    pub long_after: u64,

    /// Replication lag in time (replica replay lag; a standby's last replayed commit while WAL
    /// waits to be replayed) beyond this is notable.
    #[arg(
        long,
        default_value_t = 60,
        value_name = "SECONDS",
        help_heading = "Thresholds"
    )]
    pub lag_after: u64,

    /// Replication lag in bytes, or WAL kept by an inactive slot, beyond this is notable:
    /// a size with a unit (16MB, 512kB, 1GB; 1024-fold, as PostgreSQL counts) or bare bytes.
    #[arg(
        long,
        default_value = "16MB",
        value_name = "SIZE",
        value_parser = super::args::parse_size,
        help_heading = "Thresholds"
    )]
    pub lag_bytes: u64,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub html: super::report::HtmlArgs,
}

impl StatusArgs {
    pub fn settings(&self) -> Result<StatusSettings> {
        self.output.check()?;
        self.html.check()?;
        let target =
            resolve(&self.target.target, &ProcessEnv).map_err(|e| e.context("--target"))?;
        let mut settings = StatusSettings::new(target);
        settings.thresholds = Thresholds {
            long_after_secs: self.long_after,
            lag_after_secs: self.lag_after,
            lag_bytes: self.lag_bytes,
        };
        Ok(settings)
    }
}

pub fn run(args: &StatusArgs) -> Result<i32> {
    let settings = args.settings()?;
    let report = runtime()?.block_on(status(&settings))?;
    if let Some(path) = &args.output.json {
        report.write_json(path)?;
    }
    if let Some(path) = &args.html.html {
        super::report::write_status_html(&report, path)?;
    }
    args.output.print(&crate::incident::human::summary(&report));
    for e in &report.errors {
        eprintln!("error: {}: {}", e.section, e.message);
        if let Some(hint) = &e.hint {
            eprintln!("  hint: {hint}");
        }
    }
    Ok(report.exit_code)
}
