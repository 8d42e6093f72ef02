//! `--html`, `pgsalvage report`, `completions` and `man`: the outputs people reach for besides
//! the text summary and the JSON.
//!
//! Every page is rendered from a report's JSON form ([`crate::report::html`]), so a page made
//! at the end of a run and one made later by `pgsalvage report r.json --html` are the same page.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::report::html;

/// `--html FILE` (verify, recover, check, status).
#[derive(Debug, Args)]
pub struct HtmlArgs {
    /// Write the report as one self-contained HTML page to this file (no network needed to
    /// view it): differing tables first, where in each table's key space the damage lies, the
    /// divergent columns with sample values, schema drift; long listings capped.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub html: Option<PathBuf>,
}

impl HtmlArgs {
    /// Checks that `--html` can be written, before any work.
    pub fn check(&self) -> Result<()> {
        match &self.html {
            Some(path) if crate::report::is_stdout(path) => {
                Err(Error::usage("--html writes a file, not standard output")
                    .with_hint("name a file, e.g. --html report.html"))
            }
            Some(path) => crate::report::check_writable(path, "--html"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON report written by --json of verify, recover, check or status.
    #[arg(value_name = "REPORT.json")]
    pub json: PathBuf,

    /// Write the page to this file.
    #[arg(long, value_name = "FILE", required = true)]
    pub html: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (verify, recover, …); the main page when left out.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// `pgsalvage report r.json --html out.html`.
pub fn run(args: &ReportArgs) -> Result<i32> {
    let html_args = HtmlArgs {
        html: Some(args.html.clone()),
    };
    html_args.check()?;
    let text =
        std::fs::read_to_string(&args.json).map_err(|e| Error::io(args.json.display(), e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!("{}: not a JSON report: {e}", args.json.display()))
            .with_hint("pass a file written by --json of verify, recover, check or status")
    })?;
    // A recover report carries its fix-ups: the page lists them as recover's own page does.
    let fixups: Vec<String> = value["fixups"]["summary"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| line.as_str().map(str::to_string))
        .collect();
    let page = html::render(&value, &fixups)
        .map_err(|e| Error::usage(format!("{}: {e}", args.json.display())))?;
    write_page(&args.html, &page)?;
    eprintln!("wrote {}", args.html.display());
    Ok(0)
}

/// `--html` of verify.
pub fn write_verify_html(report: &impl Serialize, path: &Path) -> Result<()> {
    write_html(report, &[], path)
}

/// `--html` of recover: the comparison, with what the recovery does and its fix-ups.
pub fn write_recover_html(report: &impl Serialize, fixups: &[String], path: &Path) -> Result<()> {
    write_html(report, fixups, path)
}

pub fn write_check_html(report: &impl Serialize, path: &Path) -> Result<()> {
    write_html(report, &[], path)
}

pub fn write_status_html(report: &impl Serialize, path: &Path) -> Result<()> {
    write_html(report, &[], path)
}

fn write_html(report: &impl Serialize, notes: &[String], path: &Path) -> Result<()> {
    let mut value = serde_json::to_value(report)
        .map_err(|e| Error::internal(format!("a report as JSON: {e}")))?;
    crate::report::provenance::stamp(&mut value);
    let page = html::render(&value, notes).map_err(Error::internal)?;
    write_page(path, &page)
}

fn write_page(path: &Path, page: &str) -> Result<()> {
    use std::io::Write as _;
    let mut file = crate::staging::temp_beside(path)?;
    file.write_all(page.as_bytes())
        .map_err(|e| Error::io(path.display(), e))?;
    file.persist(path)
        .map_err(|e| Error::io(path.display(), e.error))?;
    Ok(())
}

/// `pgsalvage completions SHELL`.
pub fn completions(args: &CompletionsArgs) -> Result<i32> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "pgsalvage", &mut std::io::stdout());
    Ok(0)
}

/// `pgsalvage man [COMMAND]`.
pub fn man(args: &ManArgs) -> Result<i32> {
    let mut cmd = super::Cli::command();
    cmd.build();
    let page = match &args.command {
        None => cmd,
        Some(name) => {
            let found = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                Error::usage(format!("no command named {name:?}"))
                    .with_hint("pgsalvage --help lists the commands")
            })?;
            {
                // One page per run of the command: the leak is of a few bytes, once.
                let title: &'static str = Box::leak(format!("pgsalvage-{name}").into_boxed_str());
                found.name(title)
            }
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Error::io("rendering the man page", e))?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)
        .map_err(|e| Error::io("standard output", e))?;
    Ok(0)
}
