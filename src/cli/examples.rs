//! The EXAMPLES sections of `--help` (and of the man pages, which clap_mangen builds from the
//! same text): the command lines an on-call engineer reaches for, one per habit.

pub const TOP: &str = "\
Examples:
  pgsalvage verify --base postgresql://backup/app --target postgresql://primary/app
  pgsalvage verify --base ... --target ... --only-differences --html report.html
  pgsalvage recover --base ... --target ... --out recovery/
  pgsalvage apply recovery/ --target postgresql://primary/app --dry-run
  pgsalvage status --target postgresql://primary/app
  pgsalvage completions bash > /etc/bash_completion.d/pgsalvage
  pgsalvage man | man -l -

Connections follow libpq: URIs or key=value strings, PGHOST, PGPORT, PGUSER, PGDATABASE,
PGPASSWORD, ~/.pgpass. Exit status: 0 identical / nothing found, 1 differences, 2 error or
incomplete.";

pub const VERIFY: &str = "\
Examples:
  # every table of the backup against the primary, a page to share
  pgsalvage verify --base postgresql://backup/app --target postgresql://primary/app \\
                   --html report.html --json report.json
  # two tables, 8 sessions per source, only what differs in the summary
  pgsalvage verify --base ... --target ... --tables public.orders,public.customers -j 8 \\
                   --only-differences
  # what the columns read on each side, for 5 rows per table
  pgsalvage verify --base ... --target ... --show-values 5
  # against last night's baseline, gently on a busy primary
  pgsalvage verify --base baselines/2026-11-24/ --target postgresql://primary/app \\
                   --max-rate 50MB --max-lag 10s";

pub const RECOVER: &str = "\
Examples:
  pgsalvage recover --base postgresql://backup/app --target postgresql://primary/app \\
                    --out recovery/ --html recovery.html
  # three-way, with a paused standby that saw the legitimate writes
  pgsalvage recover --base ... --replica postgresql://replica/app --target ... --out recovery/
  # restore only two columns of damaged orders, as SQL and Parquet
  pgsalvage recover --base ... --target ... --out recovery/ \\
                    --columns public.orders:status,total --format sql,parquet";

pub const APPLY: &str = "\
Examples:
  pgsalvage apply recovery/ --target postgresql://primary/app --dry-run
  pgsalvage apply recovery/ --target postgresql://primary/app --skip-changed --json applied.json";

pub const BASELINE: &str = "\
Examples:
  pgsalvage baseline --source postgresql://primary/app --out baselines/$(date +%F)/ --rows
  pgsalvage baseline --source ... --out ... --max-snapshot-age 30m --max-rate 20MB
  pgsalvage baseline inspect baselines/2026-11-24/";

pub const CHECK: &str = "\
Examples:
  pgsalvage check --target postgresql://primary/app
  pgsalvage check --target ... --base postgresql://backup/app --html check.html";

pub const STATUS: &str = "\
Examples:
  pgsalvage status --target postgresql://primary/app
  pgsalvage status --target ... --lag-bytes 64MB --long-after 120 --html status.html";

pub const REPORT: &str = "\
Examples:
  pgsalvage verify --base ... --target ... --json report.json
  pgsalvage report report.json --html report.html
  pgsalvage report status.json --html status.html";

pub const COMPLETIONS: &str = "\
Examples:
  pgsalvage completions bash > /etc/bash_completion.d/pgsalvage
  pgsalvage completions zsh > \"${fpath[1]}/_pgsalvage\"
  pgsalvage completions fish > ~/.config/fish/completions/pgsalvage.fish";

pub const MAN: &str = "\
Examples:
  pgsalvage man | man -l -
  pgsalvage man verify > pgsalvage-verify.1";
