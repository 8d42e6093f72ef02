//! The human summary of a verify report: one line per table, details under it, then the verdict.
//!
//! Written for a person at 3 a.m.: numbers aligned, the differing columns named, schema changes
//! and errors spelled out under their table, and a last line that says in words whether the
//! databases are identical, differ, or could not be fully compared.

use std::fmt::Write;

use super::{TableReport, TableStatus, Verdict, VerifyReport};
use crate::source::Role;

/// Renders the summary.
pub fn summary(report: &VerifyReport) -> String {
    let mut out = String::new();
    let roles: Vec<Role> = report.sources.keys().copied().collect();
    let name_width = report
        .tables
        .iter()
        .map(|t| t.table.len())
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
    for table in &report.tables {
        table_lines(&mut out, table, &roles, name_width);
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

fn table_lines(out: &mut String, t: &TableReport, roles: &[Role], width: usize) {
    let _ = write!(out, "{:<width$}", t.table);
    for role in roles {
        match t.rows.get(role) {
            Some(n) => write!(out, " {n:>12}"),
            None => write!(out, " {:>12}", "-"),
        }
        .expect("writing to a string");
    }
    let time = format!("{:.1}s", t.elapsed_ms as f64 / 1000.0);
    let _ = writeln!(
        out,
        " {:>9} {:>9} {:>9} {time:>8} {:>10}",
        t.missing,
        t.extra,
        t.divergent,
        rate(t.rows_per_sec)
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

fn rate(rows_per_sec: u64) -> String {
    match rows_per_sec {
        r if r >= 1_000_000 => format!("{:.1}M", r as f64 / 1e6),
        r if r >= 1_000 => format!("{:.0}k", r as f64 / 1e3),
        r => r.to_string(),
    }
}

fn verdict_line(r: &VerifyReport) -> String {
    let t = &r.totals;
    let rows = format!(
        "{} missing, {} extra, {} divergent rows",
        t.missing, t.extra, t.divergent
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
