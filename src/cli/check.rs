//! `pgsalvage check`: flags → [`CheckSettings`], then the run, its text and its exit status.

use clap::Args;

use super::args::{OutputArgs, ScopeArgs, TargetArgs};
use super::runtime;
use crate::check::{check, CheckSettings};
use crate::error::Result;
use crate::source::conninfo::{resolve, ProcessEnv};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// The known-good schema (a restored pre-migration backup). With it, check also reports
    /// schema drift, NOT NULL and unique rules the target lost, and which missing parents the
    /// base can restore.
    #[arg(
        long,
        env = "PGSALVAGE_BASE",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Sources"
    )]
    pub base: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub html: super::report::HtmlArgs,

    /// List at most this many keys per finding (counts stay exact).
    #[arg(
        long,
        default_value_t = 1000,
        value_name = "N",
        help_heading = "Output"
    )]
    pub max_keys: usize,

    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Name the rows of a table in findings by these columns (its primary key otherwise, and
    /// without one the rule's columns): --key public.events=tenant_id,event_id (repeatable).
    #[arg(long, value_name = "TABLE=COLS", help_heading = "What to compare")]
    pub key: Vec<String>,
}

impl CheckArgs {
    pub fn settings(&self) -> Result<CheckSettings> {
        self.output.check()?;
        self.html.check()?;
        let target =
            resolve(&self.target.target, &ProcessEnv).map_err(|e| e.context("--target"))?;
        let base = self
            .base
            .as_deref()
            .map(|b| resolve(b, &ProcessEnv).map_err(|e| e.context("--base")))
            .transpose()?;
        Ok(CheckSettings {
            target,
            base,
            filter: self.scope.filter()?,
            keys: super::parse_keys(&self.key)?,
            max_keys: self.max_keys,
            json: self.output.json.clone(),
        })
    }
}

pub fn run(args: &CheckArgs) -> Result<i32> {
    let settings = args.settings()?;
    let report = runtime()?.block_on(check(&settings))?;
    if let Some(path) = &settings.json {
        report.write_json(path)?;
    }
    if let Some(path) = &args.html.html {
        super::report::write_check_html(&report, path)?;
    }
    args.output.print(&report.human());
    Ok(report.exit_code)
}
