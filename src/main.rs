//! The pgsalvage binary: parse the command line, run, exit with the answer.

use clap::Parser;

fn main() {
    let cli = pgsalvage::cli::Cli::parse();
    std::process::exit(pgsalvage::cli::run(cli));
}
