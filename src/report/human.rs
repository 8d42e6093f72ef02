//! The human summary of a verify report: one line per table, details under it, then the verdict.
//!
//! Written for a person at 3 a.m.: the tables that failed or differ first (then the others in
//! natural order: t2 before t10), numbers aligned and grouped (`134,955`), the differing
//! columns named, schema changes and errors spelled out under their table, and a last line that
//! says in words whether the databases are identical, differ, or could not be fully compared.

use std::cmp::Ordering;
use std::fmt::Write;

use super::{TableReport, TableStatus, Verdict, VerifyReport};
use crate::source::Role;

/// What the summary leaves out.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// List only the tables that differ or failed (the verdict still counts them all).
    pub only_differences: bool,
}

/// Renders the summary of every table.
pub fn summary(report: &VerifyReport) -> String {
    summary_with(report, &Options::default())
}

/// The tables in the order people read them: failed, then differing, then identical; each
/// group in natural name order.
pub fn reading_order(tables: &[TableReport]) -> Vec<&TableReport> {
    let mut ordered: Vec<&TableReport> = tables.iter().collect();
    ordered.sort_by(|a, b| {
        status_rank(a.status)
            .cmp(&status_rank(b.status))
            .then_with(|| natural_cmp(&a.table, &b.table))
    });
    ordered
}

fn status_rank(status: TableStatus) -> u8 {
    match status {
        TableStatus::Error => 0,
        TableStatus::Differences => 1,
        TableStatus::Identical => 2,
    }
}

/// Compares names with their runs of digits as numbers: `t2` < `t10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (ta, tb) = (da.trim_start_matches('0'), db.trim_start_matches('0'));
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then(ta.cmp(tb))
                    .then(da.len().cmp(&db.len()));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// `134955` as `134,955`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count as a person reads it: `512 B`, `64.0 KiB`-style steps written as PostgreSQL
/// does (`kB`, `MB`, `GB`, 1024-fold), one decimal: `1.2 GB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Renders the summary.
pub fn summary_with(report: &VerifyReport, options: &Options) -> String {
    let mut out = String::new();
    let roles: Vec<Role> = report.sources.keys().copied().collect();
    let shown: Vec<&TableReport> = reading_order(&report.tables)
        .into_iter()
        .filter(|t| !options.only_differences || t.status != TableStatus::Identical)
        .collect();
    let name_width = shown
        .iter()
        .map(|t| shown_name(t).len())
        .max()
        .unwrap_or(5)
        .clamp(5, 48);
    let _ = write!(out, "{:<name_width$}", "table");
    for role in &roles {
        let _ = write!(out, " {:>12}", format!("{role} rows"));
    }
    let _ = writeln!(
        out,
        " {:>9} {:>9} {:>9} {:>8} {:>10}",
        "missing", "extra", "divergent", "time", "rows/s"
    );
    for table in &shown {
        table_lines(&mut out, table, &roles, name_width);
    }
    let hidden = report.tables.len() - shown.len();
    if hidden > 0 {
        let _ = writeln!(
            out,
            "({hidden} identical tables not listed: --only-differences)"
        );
    }
    value_lines(&mut out, report, &roles);
    let _ = writeln!(out, "{}", verdict_line(report));
    out
}

/// `--show-values`: one line per differing column of each shown row,
/// `public.orders [42] status: 'shipped' → 'pending'`.
fn value_lines(out: &mut String, report: &VerifyReport, roles: &[Role]) {
    for f in &report.findings {
        let Some(values) = &f.values else { continue };
        for (column, by_role) in values {
            let shown: Vec<String> = roles
                .iter()
                .filter_map(|r| by_role.get(r).map(|v| (r, v)))
                .map(|(r, v)| match roles.len() {
                    3 => format!("{r} {}", shown_value(v)),
                    _ => shown_value(v),
                })
                .collect();
            let _ = writeln!(
                out,
                "  {} {} {column}: {}",
                f.table,
                f.key.get(),
                shown.join(" → ")
            );
        }
    }
}

/// A value as a person reads it: quoted like SQL, NULL bare, control characters escaped.
fn shown_value(v: &Option<String>) -> String {
    let Some(text) = v else {
        return "NULL".into();
    };
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The table's name as listed: a keyless table says so (its counts are copies of rows).
fn shown_name(t: &TableReport) -> String {
    match t.keyless {
        true => format!("{} (keyless)", t.table),
        false => t.table.clone(),
    }
}

fn table_lines(out: &mut String, t: &TableReport, roles: &[Role], width: usize) {
    let _ = write!(out, "{:<width$}", shown_name(t));
    for role in roles {
        match t.rows.get(role) {
            Some(n) => write!(out, " {:>12}", grouped(*n)),
            None => write!(out, " {:>12}", "-"),
        }
        .expect("writing to a string");
    }
    let time = format!("{:.1}s", t.elapsed_ms as f64 / 1000.0);
    let _ = writeln!(
        out,
        " {:>9} {:>9} {:>9} {time:>8} {:>10}",
        grouped(t.missing),
        grouped(t.extra),
        grouped(t.divergent),
        grouped(t.rows_per_sec)
    );
    let three_way: Vec<String> = t
        .classes
        .iter()
        .filter(|(c, _)| !matches!(**c, "missing" | "extra" | "divergent"))
        .map(|(c, n)| format!("{} {n}", c.replace('_', " ")))
        .collect();
    if !three_way.is_empty() {
        let _ = writeln!(out, "    classes: {}", three_way.join(", "));
    }
    if !t.divergent_columns.is_empty() {
        let cols: Vec<String> = t
            .divergent_columns
            .iter()
            .map(|c| format!("{} ({})", c.column, c.rows))
            .collect();
        let _ = writeln!(out, "    divergent columns: {}", cols.join(", "));
    }
    for d in &t.schema_differences {
        let column = d
            .column
            .as_deref()
            .map(|c| format!("column {c}: "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    schema ({}): {column}{} → {} on {}",
            d.kind, d.expected, d.found, d.source
        );
    }
    if let Some(spans) = &t.spans {
        span_lines(out, spans);
    }
    if let Some(note) = &t.key_note {
        let _ = writeln!(out, "    note: {note}");
    }
    for e in &t.errors {
        let _ = writeln!(out, "    error: {e}");
    }
}

/// The differing key spans of a comparison with a baseline, the first few spelled out.
fn span_lines(out: &mut String, spans: &super::SpansOut) {
    if spans.count == 0 {
        return;
    }
    let how = if spans.exact_keys {
        "rows named exactly"
    } else {
        "rows not named: the baseline has no --rows"
    };
    let _ = writeln!(out, "    changed key spans: {} ({how})", spans.count);
    for span in spans.listed.iter().take(5) {
        let end = |k: &Option<Box<serde_json::value::RawValue>>, open: &str| {
            k.as_ref().map_or(open.to_string(), |k| k.get().to_string())
        };
        let rows: Vec<String> = span.rows.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(
            out,
            "      [{}, {}): {} rows",
            end(&span.from, "start"),
            end(&span.to, "end"),
            rows.join(" / ")
        );
    }
    if spans.count > 5 {
        let _ = writeln!(out, "      … {} more (see --json)", spans.count - 5);
    }
}

fn verdict_line(r: &VerifyReport) -> String {
    let t = &r.totals;
    let rows = format!(
        "{} missing, {} extra, {} divergent rows",
        grouped(t.missing),
        grouped(t.extra),
        grouped(t.divergent)
    );
    let mut schema = match t.schema_differences {
        0 => String::new(),
        n => format!("; {n} schema difference{}", if n == 1 { "" } else { "s" }),
    };
    if t.changed_spans > 0 {
        let _ = write!(schema, "; {} changed key spans", t.changed_spans);
    }
    match r.verdict {
        Verdict::Identical => format!(
            "verdict: IDENTICAL ({} tables compared, no differences)",
            t.tables
        ),
        Verdict::Differences => format!(
            "verdict: DIFFERENCES in {} of {} tables ({rows}{schema})",
            t.tables_differing, t.tables
        ),
        Verdict::Incomplete => {
            let failed = r
                .tables
                .iter()
                .filter(|t| t.status == TableStatus::Error)
                .count();
            format!(
                "verdict: INCOMPLETE: {failed} of {} tables not fully verified ({rows}{schema} in what was compared)",
                t.tables
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_naturally_and_numbers_read_grouped() {
        let mut names = vec![
            "public.t10",
            "public.t2",
            "public.t1",
            "a",
            "public.t02",
            "b1c",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "a",
                "b1c",
                "public.t1",
                "public.t2",
                "public.t02",
                "public.t10"
            ]
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(134_955), "134,955");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(64 << 10), "64.0 kB");
        assert_eq!(human_size(1_288_490_189), "1.2 GB");
    }
}
