//! The resolved, validated description of one run of each command; no clap types.
//!
//! `cli` turns command-line flags into these structs (resolving connection strings, parsing table
//! names), and the conductors take them as given, so the library can be driven by tests and other
//! programs without a command line. One struct per command, all here: [`VerifySettings`] (verify,
//! and the comparison inside recover), [`BaselineSettings`], [`RecoverSettings`],
//! [`ApplySettings`], [`CheckSettings`], [`StatusSettings`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::shape::TableName;
use crate::source::{ConnInfo, Role};

/// Which tables to compare, and which of their rows and columns.
#[derive(Clone, Debug, Default)]
pub struct TableFilter {
    /// Exactly these tables; each must exist on some source.
    pub tables: Option<Vec<TableName>>,
    /// Only tables of these schemas.
    pub schemas: Option<Vec<String>>,
    /// `--exclude-tables`: tables matching any of these are left out (pg_dump's `-T`).
    pub exclude_tables: Vec<NamePattern>,
    /// `--exclude-schema`: tables of schemas matching any of these are left out (`-N`).
    pub exclude_schemas: Vec<NamePattern>,
    /// `--where`: per table, a predicate every source's reads of it apply; rows it does not
    /// accept are out of scope (neither compared nor restored).
    pub rows: BTreeMap<TableName, String>,
    /// `--exclude-columns`: per table, columns left out of the comparison.
    pub exclude_columns: BTreeMap<TableName, Vec<String>>,
    /// `--map-column`: per table, `(old, new)`: the base's column `old` is compared with `new`
    /// on the other sources.
    pub map_columns: BTreeMap<TableName, Vec<(String, String)>>,
    /// `--all-tables`: against a baseline of some tables, compare every table anyway (those it
    /// lacks are reported `table_absent`).
    pub all_tables: bool,
}

impl TableFilter {
    /// What this filter asks of one table's plan (see [`crate::plan::narrowed`]).
    pub fn narrowing(&self, name: &TableName) -> crate::plan::Narrowing {
        crate::plan::Narrowing {
            excluded: self.exclude_columns.get(name).cloned().unwrap_or_default(),
            mapped: self.map_columns.get(name).cloned().unwrap_or_default(),
            rows: self.rows.get(name).cloned(),
        }
    }

    /// Whether `name` is selected: named or in a named schema, and not excluded.
    pub fn accepts(&self, name: &TableName) -> bool {
        let table_ok = self.tables.as_ref().is_none_or(|t| t.contains(name));
        let schema_ok = self
            .schemas
            .as_ref()
            .is_none_or(|s| s.contains(&name.schema));
        table_ok && schema_ok && self.excluded_by(name).is_none()
    }

    /// The flag and pattern that exclude `name`, if one does.
    pub fn excluded_by(&self, name: &TableName) -> Option<String> {
        let schema = self
            .exclude_schemas
            .iter()
            .find(|p| p.matches_schema(&name.schema))
            .map(|p| format!("--exclude-schema {}", p.text));
        let table = || {
            self.exclude_tables
                .iter()
                .find(|p| p.matches_table(name))
                .map(|p| format!("--exclude-tables {}", p.text))
        };
        schema.or_else(table)
    }

    /// Refuses a filter that contradicts itself: a `--tables` table that an exclusion removes.
    pub fn check(&self) -> crate::error::Result<()> {
        for name in self.tables.iter().flatten() {
            if let Some(by) = self.excluded_by(name) {
                return Err(crate::error::Error::usage(format!(
                    "--tables names {name}, which {by} excludes"
                ))
                .with_hint("drop the table from --tables or narrow the exclusion"));
            }
        }
        Ok(())
    }

    /// Whether the filter leaves any table, row or column out.
    pub fn narrows(&self) -> bool {
        self.tables.is_some() || self.schemas.is_some() || !self.scope().is_empty()
    }

    /// The `--where` predicate of a table, if any.
    pub fn rows_of(&self, name: &TableName) -> Option<&str> {
        self.rows.get(name).map(String::as_str)
    }

    /// The filter as the flags that made it, for messages (and a checkpoint's identity).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.tables {
            let names: Vec<String> = t.iter().map(ToString::to_string).collect();
            parts.push(format!("--tables {}", names.join(",")));
        }
        if let Some(s) = &self.schemas {
            parts.push(format!("--schema {}", s.join(",")));
        }
        for p in &self.exclude_tables {
            parts.push(format!("--exclude-tables {}", p.text));
        }
        for p in &self.exclude_schemas {
            parts.push(format!("--exclude-schema {}", p.text));
        }
        for (t, w) in &self.rows {
            parts.push(format!("--where '{t}:{w}'"));
        }
        for (t, cols) in &self.exclude_columns {
            parts.push(format!("--exclude-columns {t}:{}", cols.join(",")));
        }
        for (t, (old, new)) in self
            .map_columns
            .iter()
            .flat_map(|(t, m)| m.iter().map(move |c| (t, c)))
        {
            parts.push(format!("--map-column {t}:{old}={new}"));
        }
        match parts.is_empty() {
            true => "the whole database".into(),
            false => parts.join(" "),
        }
    }

    /// The error of a run that found no table to work on: never a clean result (issue 18).
    pub fn matched_nothing(&self, sides: &str) -> crate::error::Error {
        crate::error::Error::usage(format!(
            "no table to compare: {} matched no table on {sides}",
            self.describe()
        ))
        .with_hint("a run over zero tables is never reported clean; check the filter, and the database name in the URL (without one, libpq uses the user name)")
    }

    /// The scope as recorded in reports and plan.json.
    pub fn scope(&self) -> Scope {
        let names = |p: &[NamePattern]| p.iter().map(|p| p.text.clone()).collect();
        Scope {
            exclude_tables: names(&self.exclude_tables),
            exclude_schemas: names(&self.exclude_schemas),
            rows: self
                .rows
                .iter()
                .map(|(t, w)| (t.to_string(), w.clone()))
                .collect(),
            exclude_columns: self
                .exclude_columns
                .iter()
                .map(|(t, c)| (t.to_string(), c.clone()))
                .collect(),
            map_columns: self
                .map_columns
                .iter()
                .map(|(t, m)| (t.to_string(), m.iter().cloned().collect()))
                .collect(),
            outside_baseline: Vec::new(),
        }
    }
}

/// A [`TableFilter`] in a file (a shard plan): its flags as given, read back by the same
/// parsers, so a merge scopes its fix-ups as the shards scoped their comparison.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterFile {
    pub tables: Option<Vec<TableName>>,
    pub schemas: Option<Vec<String>>,
    pub exclude_tables: Vec<String>,
    pub exclude_schemas: Vec<String>,
    pub rows: Vec<(TableName, String)>,
    pub exclude_columns: Vec<(TableName, Vec<String>)>,
    pub map_columns: Vec<(TableName, Vec<(String, String)>)>,
}

impl FilterFile {
    pub fn of(filter: &TableFilter) -> FilterFile {
        let texts = |p: &[NamePattern]| p.iter().map(|p| p.text.clone()).collect();
        let pairs = |m: &BTreeMap<TableName, _>| m.clone().into_iter().collect();
        FilterFile {
            tables: filter.tables.clone(),
            schemas: filter.schemas.clone(),
            exclude_tables: texts(&filter.exclude_tables),
            exclude_schemas: texts(&filter.exclude_schemas),
            rows: filter.rows.clone().into_iter().collect(),
            exclude_columns: pairs(&filter.exclude_columns),
            map_columns: filter.map_columns.clone().into_iter().collect(),
        }
    }

    /// The filter again; an error names a pattern that no longer parses.
    pub fn filter(&self) -> crate::error::Result<TableFilter> {
        let bad = |e: String| crate::error::Error::usage(format!("the shard plan's filter: {e}"));
        Ok(TableFilter {
            tables: self.tables.clone(),
            schemas: self.schemas.clone(),
            exclude_tables: self
                .exclude_tables
                .iter()
                .map(|t| NamePattern::table(t).map_err(bad))
                .collect::<crate::error::Result<_>>()?,
            exclude_schemas: self
                .exclude_schemas
                .iter()
                .map(|t| NamePattern::schema(t).map_err(bad))
                .collect::<crate::error::Result<_>>()?,
            rows: self.rows.iter().cloned().collect(),
            exclude_columns: self.exclude_columns.iter().cloned().collect(),
            map_columns: self.map_columns.iter().cloned().collect(),
            all_tables: false,
        })
    }
}

/// What a run left out or narrowed, as the JSON report and plan.json record it (every field
/// empty for a run over whole tables, and then omitted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// `--exclude-tables` patterns, as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tables: Vec<String>,
    /// `--exclude-schema` patterns, as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_schemas: Vec<String>,
    /// `--where`: table → predicate.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rows: BTreeMap<String, String>,
    /// `--exclude-columns`: table → columns.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exclude_columns: BTreeMap<String, Vec<String>>,
    /// `--map-column`: table → {base's name: the other sources' name}.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map_columns: BTreeMap<String, BTreeMap<String, String>>,
    /// Verify against a baseline of some tables: the tables the other side has that the
    /// baseline does not hold, left out (unless `--all-tables`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside_baseline: Vec<String>,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        self == &Scope::default()
    }
}

/// A name pattern as pg_dump's `-t`/`-T`/`-n`/`-N` read one: `*` matches any run of characters,
/// `?` one character, an unquoted `.` separates schema from table, unquoted letters fold to lower
/// case, and inside double quotes every character is itself (`""` is a quote). A table pattern
/// without a schema matches tables of `public`, as `--tables` reads a bare name (pg_dump: the
/// search path, `public` by default). Other regular-expression characters match themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern {
    /// The pattern as given, for messages and reports.
    pub text: String,
    schema: Option<Vec<Glob>>,
    name: Vec<Glob>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Glob {
    Any,
    One,
    Char(char),
}

impl NamePattern {
    /// A table pattern: `table` or `schema.table`.
    pub fn table(text: &str) -> std::result::Result<NamePattern, String> {
        let mut parts = glob_parts(text)?;
        let name = parts.pop().unwrap_or_default();
        let schema = match parts.len() {
            0 => "public".chars().map(Glob::Char).collect(),
            1 => parts.pop().unwrap_or_default(),
            _ => {
                return Err(format!(
                    "{text:?}: too many dotted names (write schema.table)"
                ))
            }
        };
        Ok(NamePattern {
            text: text.to_string(),
            schema: Some(schema),
            name,
        })
    }

    /// A schema pattern.
    pub fn schema(text: &str) -> std::result::Result<NamePattern, String> {
        let mut parts = glob_parts(text)?;
        match parts.len() {
            1 => Ok(NamePattern {
                text: text.to_string(),
                schema: None,
                name: parts.pop().unwrap_or_default(),
            }),
            _ => Err(format!(
                "{text:?}: a schema pattern has no dot (quote it: \"a.b\")"
            )),
        }
    }

    pub fn matches_table(&self, table: &TableName) -> bool {
        let schema_ok = self.schema.as_ref().is_none_or(|s| glob(s, &table.schema));
        schema_ok && glob(&self.name, &table.name)
    }

    pub fn matches_schema(&self, schema: &str) -> bool {
        glob(&self.name, schema)
    }
}

/// Splits a pattern at unquoted dots into globs, folding unquoted letters to lower case.
fn glob_parts(text: &str) -> std::result::Result<Vec<Vec<Glob>>, String> {
    let mut parts = vec![Vec::new()];
    let mut chars = text.trim().chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("one part");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                part.push(Glob::Char('"'));
            }
            ('"', _) => quoted = !quoted,
            ('.', false) => parts.push(Vec::new()),
            ('*', false) => part.push(Glob::Any),
            ('?', false) => part.push(Glob::One),
            (c, false) => part.extend(c.to_lowercase().map(Glob::Char)),
            (c, true) => part.push(Glob::Char(c)),
        }
    }
    if quoted {
        return Err(format!("{text:?}: unterminated double quote"));
    }
    match parts.iter().any(Vec::is_empty) {
        true => Err(format!("{text:?}: an empty name")),
        false => Ok(parts),
    }
}

/// Whether the whole of `text` matches `pattern`.
fn glob(pattern: &[Glob], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // Classic backtracking over the last `*`: linear in practice, never exponential.
    let (mut p, mut t, mut star) = (0, 0, None);
    while t < text.len() {
        match pattern.get(p) {
            Some(Glob::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Glob::One) => (p, t) = (p + 1, t + 1),
            Some(Glob::Char(c)) if *c == text[t] => (p, t) = (p + 1, t + 1),
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    (p, t) = (sp + 1, st + 1);
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|g| *g == Glob::Any)
}

pub use crate::source::throttle::LiveLimits;

/// One `verify` run.
/// `--keyless-window`'s default: memory for a keyless table's copies waiting for their match.
pub const KEYLESS_WINDOW: usize = 48 << 20;

#[derive(Clone, Debug)]
pub struct VerifySettings {
    /// The sources: base first, target last, the replica between them in a three-way run.
    pub sources: Vec<(Role, ConnInfo)>,
    pub filter: TableFilter,
    /// `--key` overrides: key columns per table.
    pub keys: HashMap<TableName, Vec<String>>,
    /// Worker sessions per source.
    pub jobs: usize,
    /// Bytes of COPY data per batch handed to the hashing pool.
    pub batch_bytes: usize,
    /// `--keyless-window`: memory for a keyless table's copies waiting for their match (see
    /// `pipeline::matching`); past it they go to disk.
    pub keyless_window: usize,
    /// Findings kept for the JSON report; counts stay exact beyond it.
    pub max_findings: usize,
    /// `--show-values N`: the first N divergent rows of each table carry their values.
    pub show_values: usize,
    pub findings_csv: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Set for recover runs: what to restore, and where the per-key records go.
    pub restore: Option<RestoreSpec>,
    /// Sides given as baseline directories instead of databases (`--base DIR`, `--target DIR`).
    pub baselines: Vec<(Role, PathBuf)>,
    pub live: LiveLimits,
    /// `--checkpoint`: where finished ranges are recorded and resumed from (verify only).
    pub checkpoint: Option<PathBuf>,
    /// `--plan DIR --shard i`: this run reads one shard of a shard plan.
    pub shard: Option<ShardRun>,
    /// `--narrow`: read keys and server-side row hashes first, full rows only where they differ.
    pub narrow: bool,
}

/// One shard of a sharded comparison: the plan, which shard, and the snapshots a
/// `snapshot hold` keeps for it (without them, each source exports its own).
#[derive(Clone, Debug)]
pub struct ShardRun {
    pub plan: std::sync::Arc<crate::plan::shards::ShardPlan>,
    pub index: usize,
    pub held: Option<BTreeMap<Role, crate::source::SnapshotInfo>>,
}

/// One `baseline` run: a source read into a baseline directory.
#[derive(Clone, Debug)]
pub struct BaselineSettings {
    pub source: ConnInfo,
    pub out: PathBuf,
    /// `--rows`: also store every row's key and digest.
    pub rows: bool,
    /// `--force`: replace an existing baseline at `out`.
    pub force: bool,
    pub filter: TableFilter,
    pub keys: HashMap<TableName, Vec<String>>,
    pub jobs: usize,
    pub batch_bytes: usize,
    pub live: LiveLimits,
    /// `--max-snapshot-age`: move to a new snapshot once the current one is this old.
    pub max_snapshot_age: Option<Duration>,
}

/// What a recover run restores. Its file form is what a recover shard records, so the merge
/// writes the recovery the shards were asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreSpec {
    /// `--columns`: on divergent rows of these tables, restore only these columns.
    #[serde(with = "by_table")]
    pub columns: HashMap<TableName, Vec<String>>,
    /// Keep extra rows (listed, not deleted): recover's default with two sources, unless
    /// `--delete-extra`.
    pub no_delete: bool,
    /// `--new-on-target delete`: three-way rows only the target holds are deleted.
    pub delete_new_on_target: bool,
    /// `--changed-after`: per table, a predicate on the target's rows marking legitimate writes
    /// after the replica; those rows are kept, never overwritten.
    #[serde(with = "by_table")]
    pub changed_after: HashMap<TableName, String>,
    /// `--on-conflict`: what to do with three-way conflicts.
    pub on_conflict: crate::classify::ConflictPolicy,
    /// Directory receiving `keys/<table index>.jsonl`, one record per differing key.
    #[serde(skip)]
    pub keys_dir: PathBuf,
    /// `--orphans`: rows referencing parents no source has.
    pub orphans: OrphanPolicy,
}

/// Maps keyed by table, in files: JSON keys are strings, so as (table, value) pairs in name order.
mod by_table {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::shape::TableName;

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &HashMap<TableName, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(&TableName, &V)> = map.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<HashMap<TableName, V>, D::Error> {
        Ok(Vec::<(TableName, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// What recover does with orphans nothing restores (rows whose parent no source has).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrphanPolicy {
    /// Listed, with both choices written commented out.
    #[default]
    Keep,
    /// Deleted (undo puts them back as they were).
    Delete,
    /// Their reference set NULL where its columns allow it (undo sets it back).
    SetNull,
}

impl VerifySettings {
    /// Defaults for the given sources (used by tests and the demo).
    pub fn new(sources: Vec<(Role, ConnInfo)>) -> Self {
        VerifySettings {
            sources,
            filter: TableFilter::default(),
            keys: HashMap::new(),
            jobs: 4,
            batch_bytes: 1024 * 1024,
            keyless_window: KEYLESS_WINDOW,
            max_findings: 10_000,
            show_values: 0,
            findings_csv: None,
            json: None,
            restore: None,
            baselines: Vec::new(),
            live: LiveLimits::default(),
            checkpoint: None,
            shard: None,
            narrow: false,
        }
    }
}

/// One `recover` run.
#[derive(Clone, Debug)]
pub struct RecoverSettings {
    /// The comparison; its `restore` spec says what to restore.
    pub verify: VerifySettings,
    pub out: PathBuf,
    pub parquet: bool,
    /// Replace an existing `--out` directory.
    pub force: bool,
}

/// One `apply` run.
#[derive(Clone, Debug)]
pub struct ApplySettings {
    pub dir: PathBuf,
    pub target: ConnInfo,
    pub dry_run: bool,
    pub skip_changed: bool,
    /// `--lock-wait`: how long apply tries for its tables' locks before it gives up, changing
    /// nothing.
    pub lock_wait: Duration,
}

/// One `check` run.
#[derive(Clone, Debug)]
pub struct CheckSettings {
    pub target: ConnInfo,
    pub base: Option<ConnInfo>,
    pub filter: TableFilter,
    /// `--key` overrides: the columns that name a table's rows in findings.
    pub keys: HashMap<TableName, Vec<String>>,
    /// Keys listed per finding (counts stay exact).
    pub max_keys: usize,
    pub json: Option<PathBuf>,
}

/// What to look at and what counts as notable.
#[derive(Clone, Debug)]
pub struct StatusSettings {
    pub target: ConnInfo,
    pub thresholds: Thresholds,
    /// How long a read may wait for a lock before the section is given up.
    pub lock_timeout: Duration,
}

impl StatusSettings {
    pub fn new(target: ConnInfo) -> Self {
        StatusSettings {
            target,
            thresholds: Thresholds::default(),
            lock_timeout: Duration::from_secs(2),
        }
    }
}

/// What counts as long or lagging.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// A transaction open longer than this is listed and notable.
    pub long_after_secs: u64,
    /// Replication lag (or a standby's replay age while behind) beyond this is notable.
    pub lag_after_secs: u64,
    /// Replication lag, or WAL kept by an inactive slot, beyond this many bytes is notable.
    pub lag_bytes: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            long_after_secs: 300,
            lag_after_secs: 60,
            lag_bytes: 16 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, name: &str) -> TableName {
        TableName::new(schema, name)
    }

    #[test]
    fn table_patterns_read_like_pg_dump() {
        let p = |s: &str| NamePattern::table(s).unwrap();
        assert!(p("audit_*").matches_table(&t("public", "audit_log")));
        assert!(p("audit_*").matches_table(&t("public", "audit_")));
        assert!(
            !p("audit_*").matches_table(&t("app", "audit_log")),
            "bare = public"
        );
        assert!(p("*.audit_?").matches_table(&t("app", "audit_1")));
        assert!(!p("*.audit_?").matches_table(&t("app", "audit_12")));
        assert!(p("App.Orders").matches_table(&t("app", "orders")), "folded");
        assert!(!p("App.Orders").matches_table(&t("App", "Orders")));
        assert!(p(r#""App"."Orders""#).matches_table(&t("App", "Orders")));
        // Inside quotes, * ? and . are themselves.
        assert!(p(r#"public."a*.b""#).matches_table(&t("public", "a*.b")));
        assert!(!p(r#"public."a*.b""#).matches_table(&t("public", "axx.b")));
        assert!(p(r##""say ""hi""""##).matches_table(&t("public", r#"say "hi""#)));
        assert!(p("*").matches_table(&t("public", "x")));
        assert!(p("a*b*c").matches_table(&t("public", "aXbYbZc")));
        assert!(!p("a*b*c").matches_table(&t("public", "aXbYbZ")));
        assert!(p("a.b").matches_table(&t("a", "b")));
        assert!(NamePattern::table("a.b.c").is_err());
        assert!(NamePattern::table("a.").is_err());
        assert!(NamePattern::table("\"open").is_err());
    }

    #[test]
    fn schema_patterns_match_whole_schema_names() {
        let p = |s: &str| NamePattern::schema(s).unwrap();
        assert!(p("staging*").matches_schema("staging_2024"));
        assert!(!p("staging").matches_schema("staging_2024"));
        assert!(p(r#""Stage.1""#).matches_schema("Stage.1"));
        assert!(NamePattern::schema("a.b").is_err());
    }

    #[test]
    fn exclusions_take_tables_out_and_contradictions_are_refused() {
        let mut f = TableFilter {
            exclude_tables: vec![NamePattern::table("*.log_*").unwrap()],
            exclude_schemas: vec![NamePattern::schema("scratch").unwrap()],
            ..TableFilter::default()
        };
        assert!(f.accepts(&t("public", "orders")));
        assert!(!f.accepts(&t("app", "log_2024")));
        assert!(!f.accepts(&t("scratch", "orders")));
        assert_eq!(
            f.excluded_by(&t("scratch", "x")).as_deref(),
            Some("--exclude-schema scratch")
        );
        assert!(f.check().is_ok(), "an exclusion matching nothing is fine");
        f.tables = Some(vec![t("public", "orders"), t("app", "log_1")]);
        let err = f.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "--tables names app.log_1, which --exclude-tables *.log_* excludes"
        );
        assert!(f.describe().contains("--exclude-schema scratch"));
        let scope = f.scope();
        assert_eq!(scope.exclude_tables, ["*.log_*"]);
        assert!(!scope.is_empty());
        assert!(TableFilter::default().scope().is_empty());
    }
}
