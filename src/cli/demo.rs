//! `pgsalvage demo`: the whole story on a throwaway local cluster, in one command.
//!
//! It starts a private PostgreSQL cluster (see [`crate::cluster`]), creates a shop database as the
//! "backup", copies it as the "primary" and damages the copy the way a failed migration does
//! (deleted rows, nulled columns, a stray column, plus legitimate new orders), then runs the real
//! `verify` on the two and prints the result. Before the damage it takes a `--rows` baseline of
//! the primary (the nightly baseline) and afterwards compares the primary with it; `check` shows
//! the constraint the migration dropped and the children it orphaned. Then it writes a recovery
//! (rows and fix-ups), applies it, and verifies and checks again. The cluster is removed when the
//! demo ends.

use std::path::PathBuf;

use clap::Args;

use crate::apply::{apply, ApplySettings};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::recover::{recover, RecoverSettings};
use crate::settings::RestoreSpec;
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
    let rt = super::runtime()?;
    let dir = tempfile::tempdir().map_err(|e| Error::io("creating a directory", e))?;
    let nightly = take_nightly(&rt, &cluster, dir.path())?;
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
    let report = rt.block_on(crate::verify(&settings, reporter.clone()))?;
    reporter.finish();
    super::finish(&report, &settings, &super::Shown::plain())?;
    print_examples(&report);
    against_nightly(&rt, &nightly, &settings)?;
    run_check(&rt, &settings)?;
    let code = recover_and_apply(&rt, &cluster, settings.clone(), dir.path())?;
    run_check(&rt, &settings)?;
    Ok(code)
}

/// The nightly baseline of the primary, taken before the migration.
fn take_nightly(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    dir: &std::path::Path,
) -> Result<PathBuf> {
    let out = dir.join("baseline-nightly");
    eprintln!(
        "running (before the migration): pgsalvage baseline --source {} --out {} --rows",
        cluster.url("app_primary"),
        out.display()
    );
    let settings = crate::settings::BaselineSettings {
        source: resolve(&cluster.url("app_primary"), &ProcessEnv)?,
        out: out.clone(),
        rows: true,
        force: false,
        filter: Default::default(),
        keys: Default::default(),
        jobs: 2,
        batch_bytes: 1024 * 1024,
        live: Default::default(),
        max_snapshot_age: None,
    };
    let manifest = rt.block_on(crate::baseline::take::take(
        &settings,
        super::reporter_for(true),
    ))?;
    let text = super::baseline::summary(&manifest, &out);
    println!("{}", text.lines().last().unwrap_or_default());
    Ok(out)
}

/// What changed on the primary since last night's baseline, without any backup.
fn against_nightly(
    rt: &tokio::runtime::Runtime,
    nightly: &std::path::Path,
    verify: &VerifySettings,
) -> Result<()> {
    eprintln!(
        "\nrunning: pgsalvage verify --base {} --target {}\n",
        nightly.display(),
        verify.sources[1].1
    );
    let mut settings = VerifySettings::new(vec![verify.sources[1].clone()]);
    settings.baselines = vec![(Role::Base, nightly.to_path_buf())];
    let report = rt.block_on(crate::verify(&settings, super::reporter_for(true)))?;
    super::finish(&report, &settings, &super::Shown::plain())?;
    Ok(())
}

/// Constraints, orphans, sequences and schema drift of the primary against the backup.
fn run_check(rt: &tokio::runtime::Runtime, verify: &VerifySettings) -> Result<()> {
    eprintln!(
        "\nrunning: pgsalvage check --base {} --target {}\n",
        verify.sources[0].1, verify.sources[1].1
    );
    let settings = crate::check::CheckSettings {
        target: verify.sources[1].1.clone(),
        base: Some(verify.sources[0].1.clone()),
        filter: Default::default(),
        keys: Default::default(),
        max_keys: 5,
        json: None,
    };
    let report = rt.block_on(crate::check::check(&settings))?;
    print!("{}", report.human());
    Ok(())
}

/// The rest of the story: write a recovery (keeping the primary's extra rows, which two sources
/// cannot tell from damage), apply it, and verify again.
fn recover_and_apply(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    mut verify: VerifySettings,
    dir: &std::path::Path,
) -> Result<i32> {
    let out = dir.join("recovery");
    eprintln!("\nrunning: pgsalvage recover ... --out {}", out.display());
    verify.json = None;
    verify.findings_csv = None;
    verify.restore = Some(RestoreSpec {
        no_delete: true,
        ..RestoreSpec::default()
    });
    let settings = RecoverSettings {
        verify: verify.clone(),
        out: out.clone(),
        parquet: false,
        force: false,
    };
    let outcome = rt.block_on(recover(&settings, super::reporter_for(true)))?;
    for line in outcome
        .plan
        .summary
        .iter()
        .chain(&outcome.plan.fixups.summary)
    {
        println!("  {line}");
    }
    eprintln!(
        "running: pgsalvage apply {} --target {}",
        out.display(),
        cluster.url("app_primary")
    );
    let target = verify.sources[1].1.clone();
    let applied = rt.block_on(apply(&ApplySettings {
        dir: out,
        target,
        dry_run: false,
        skip_changed: false,
        lock_wait: std::time::Duration::from_secs(60),
    }))?;
    println!(
        "applied; re-verified {} keys, {} not as planned",
        applied.reverified_keys,
        applied.reverify_mismatches.len()
    );
    eprintln!("running: pgsalvage verify again\n");
    verify.restore = None;
    let report = rt.block_on(crate::verify(&verify, super::reporter_for(true)))?;
    super::finish(&report, &verify, &super::Shown::plain())?;
    println!("(the extra rows left are the primary's legitimate new orders, kept by default,\n and the column the migration added)");
    Ok(report.exit_code)
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
