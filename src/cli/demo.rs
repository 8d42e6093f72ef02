//! `pgsalvage demo`: the whole story on a throwaway local cluster, in one command.
//!
//! It starts a private PostgreSQL cluster (see [`crate::cluster`]), creates a shop database as the
//! "backup", copies it as the "primary" and damages the copy the way a failed migration does
//! (deleted rows, nulled columns, a stray column, plus legitimate new orders), then runs the real
//! `verify` on the two and prints the result. The cluster is removed when the demo ends.

use std::path::PathBuf;

use clap::Args;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::settings::VerifySettings;
use crate::source::conninfo::{resolve, ProcessEnv};
use crate::source::Role;

const SCHEMA: &str = include_str!("../../fixtures/demo/schema.sql");
const DAMAGE: &str = include_str!("../../fixtures/demo/damage.sql");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Orders in the demo database (customers are a tenth, order items three times as many).
    #[arg(long, default_value_t = 20_000)]
    pub rows: u64,

    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write the findings CSV to this file.
    #[arg(long, value_name = "FILE")]
    pub findings: Option<PathBuf>,
}

pub fn run(args: &DemoArgs) -> Result<i32> {
    eprintln!("starting a throwaway PostgreSQL cluster...");
    let cluster = Cluster::start().map_err(cluster_error)?;
    eprintln!(
        "creating the backup (app_backup, {} orders) and the damaged primary (app_primary)...",
        args.rows
    );
    cluster.create_db("app_backup").map_err(cluster_error)?;
    cluster
        .psql(
            "app_backup",
            &SCHEMA.replace(":rows", &args.rows.to_string()),
        )
        .map_err(cluster_error)?;
    cluster
        .psql(
            "postgres",
            "CREATE DATABASE app_primary TEMPLATE app_backup",
        )
        .map_err(cluster_error)?;
    cluster.psql("app_primary", DAMAGE).map_err(cluster_error)?;
    eprintln!(
        "running: pgsalvage verify --base {} --target {}\n",
        cluster.url("app_backup"),
        cluster.url("app_primary")
    );
    let base = resolve(&cluster.url("app_backup"), &ProcessEnv)?;
    let target = resolve(&cluster.url("app_primary"), &ProcessEnv)?;
    let mut settings = VerifySettings::new(vec![(Role::Base, base), (Role::Target, target)]);
    settings.json = args.json.clone();
    settings.findings_csv = args.findings.clone();
    let reporter = super::reporter_for(false);
    let report = super::runtime()?.block_on(crate::pipeline::verify(&settings, reporter))?;
    let code = super::finish(&report, &settings, false)?;
    print_examples(&report);
    Ok(code)
}

fn print_examples(report: &crate::report::VerifyReport) {
    println!("\nfirst differing rows:");
    for f in report.findings.iter().take(8) {
        let cols = if f.columns.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.columns.join(", "))
        };
        println!("  {:<20} {:<10} key {}{cols}", f.table, f.kind, f.key.get());
    }
}

fn cluster_error(e: crate::cluster::ClusterError) -> Error {
    Error::source(e.to_string())
}
