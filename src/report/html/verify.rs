//! The page of a verify (or recover) report: totals, then one card per table, failed and
//! differing tables first, each with bars of its counts, the strip of where in its key space the
//! differences lie, the divergent columns with sample values, schema differences and errors.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::{arr, capped, esc, n, text_of, MAX_ROWS, MAX_TABLES};
use crate::report::human::{grouped, natural_cmp};

/// Findings listed per table card.
const PER_TABLE: usize = 20;
const TWO_WAY: [&str; 3] = ["missing", "extra", "divergent"];

pub fn body(report: &Value, notes: &[String]) -> String {
    let mut out = String::new();
    header(&mut out, report, notes);
    let tables = reading_order(arr(&report["tables"]));
    let findings = findings_by_table(report);
    let scale = bar_scale(&tables);
    let _ = write!(
        out,
        "<h2>Tables <span class=\"count\">{}</span></h2>\
         <label><input type=\"checkbox\" id=\"show-identical\" checked> show identical tables</label>",
        tables.len()
    );
    for t in tables.iter().take(MAX_TABLES) {
        let name = t["table"].as_str().unwrap_or_default();
        let listed = findings.get(name).map(Vec::as_slice).unwrap_or_default();
        table_card(&mut out, t, listed, scale);
    }
    capped(
        &mut out,
        tables.len(),
        MAX_TABLES,
        "tables (failed and differing ones first)",
    );
    if report["findings_truncated"].as_bool() == Some(true) {
        out.push_str(
            "<p class=\"capped\">The run listed only the first differing rows (--max-findings); the counts are exact.</p>",
        );
    }
    out
}

fn header(out: &mut String, report: &Value, notes: &[String]) {
    let verdict = report["verdict"].as_str().unwrap_or("unknown");
    let t = &report["totals"];
    let _ = write!(
        out,
        "<h1>pgsalvage verify <span class=\"verdict {v}\" id=\"verdict\">{V}</span></h1><div class=\"totals\">",
        v = esc(verdict),
        V = esc(&verdict.to_uppercase())
    );
    for (key, label) in [
        ("tables", "tables"),
        ("tables_differing", "differing"),
        ("tables_failed", "not verified"),
        ("missing", "missing rows"),
        ("extra", "extra rows"),
        ("divergent", "divergent rows"),
        ("schema_differences", "schema differences"),
    ] {
        let _ = write!(
            out,
            "<div id=\"total-{key}\" data-n=\"{}\"><b>{}</b>{label}</div>",
            n(&t[key]),
            grouped(n(&t[key]))
        );
    }
    out.push_str("</div>");
    if let Some(sources) = report["sources"].as_object() {
        out.push_str("<table class=\"counts\">");
        for (role, s) in sources {
            let _ = write!(
                out,
                "<tr><th>{}</th><td>{}</td><td>PostgreSQL {}</td><td>snapshot at {}</td></tr>",
                esc(role),
                esc(&text_of(&s["connection"])),
                esc(&text_of(&s["server_version"])),
                esc(&text_of(&s["taken_at"]))
            );
        }
        out.push_str("</table>");
    }
    if !notes.is_empty() {
        out.push_str("<section id=\"recovery\"><h2>Recovery</h2><ul>");
        for line in notes {
            let _ = write!(out, "<li>{}</li>", esc(line));
        }
        out.push_str("</ul></section>");
    }
    let errors = arr(&report["errors"]);
    if !errors.is_empty() {
        out.push_str("<section id=\"errors\"><h2>Errors</h2><ul>");
        for e in errors.iter().take(MAX_ROWS) {
            let table = e["table"].as_str().map(|t| format!("{}: ", esc(t)));
            let _ = write!(
                out,
                "<li>{}{}</li>",
                table.unwrap_or_default(),
                esc(&text_of(&e["message"]))
            );
        }
        out.push_str("</ul>");
        capped(out, errors.len(), MAX_ROWS, "errors");
        out.push_str("</section>");
    }
}

/// Failed, then differing, then identical tables; natural name order in each group.
fn reading_order(tables: &[Value]) -> Vec<&Value> {
    let rank = |t: &Value| match t["status"].as_str() {
        Some("error") => 0,
        Some("differences") => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Value> = tables.iter().collect();
    ordered.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| {
            natural_cmp(
                a["table"].as_str().unwrap_or_default(),
                b["table"].as_str().unwrap_or_default(),
            )
        })
    });
    ordered
}

fn findings_by_table(report: &Value) -> HashMap<&str, Vec<&Value>> {
    let mut by_table: HashMap<&str, Vec<&Value>> = HashMap::new();
    for f in arr(&report["findings"]) {
        let table = f["table"].as_str().unwrap_or_default();
        let list = by_table.entry(table).or_default();
        if list.len() < PER_TABLE {
            list.push(f);
        }
    }
    by_table
}

/// The classes a table's bars show: three-way classes when it has them, else the two-way ones.
fn bar_classes(t: &Value) -> Vec<(String, u64)> {
    let classes = t["classes"].as_object();
    let three_way: Vec<(String, u64)> = classes
        .into_iter()
        .flatten()
        .filter(|(c, _)| !TWO_WAY.contains(&c.as_str()))
        .map(|(c, v)| (c.clone(), n(v)))
        .collect();
    match three_way.is_empty() {
        true => TWO_WAY.iter().map(|c| (c.to_string(), n(&t[*c]))).collect(),
        false => three_way,
    }
}

/// The largest count any bar shows: bars are drawn to one scale across tables.
fn bar_scale(tables: &[&Value]) -> u64 {
    tables
        .iter()
        .flat_map(|t| bar_classes(t).into_iter().map(|(_, v)| v))
        .max()
        .unwrap_or(0)
        .max(1)
}

fn table_card(out: &mut String, t: &Value, findings: &[&Value], scale: u64) {
    let name = t["table"].as_str().unwrap_or_default();
    let status = t["status"].as_str().unwrap_or("unknown");
    let _ = write!(
        out,
        "<div class=\"table {s}\" data-table=\"{n}\"><h3><code>{n}</code><span class=\"badge {s}\">{s}</span></h3>",
        s = esc(status),
        n = esc(name)
    );
    let rows: Vec<String> = t["rows"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(role, v)| format!("{} {} rows", esc(role), grouped(n(v))))
        .collect();
    let _ = write!(
        out,
        "<div class=\"strip-label\">{} · {} rows/s · {}</div>",
        rows.join(" · "),
        grouped(n(&t["rows_per_sec"])),
        super::seconds(n(&t["elapsed_ms"]))
    );
    out.push_str("<table class=\"counts\">");
    for (class, count) in bar_classes(t) {
        let width = match count {
            0 => 0.0,
            c => (c as f64 / scale as f64 * 100.0).max(0.5),
        };
        let color = match class.as_str() {
            "missing" | "lost" | "damaged" | "extra" | "new_on_target" | "divergent"
            | "conflict" => class.as_str(),
            _ => "other",
        };
        let bar = match count {
            0 => String::new(),
            _ => format!("<span class=\"bar {color}\" style=\"width:{width:.1}%\"></span>"),
        };
        let _ = write!(
            out,
            "<tr><th>{label}</th><td class=\"n {c}\" data-class=\"{c}\" data-n=\"{count}\">{shown}</td>\
             <td style=\"width:320px\">{bar}</td></tr>",
            label = esc(&class.replace('_', " ")),
            c = esc(&class),
            shown = grouped(count),
        );
    }
    out.push_str("</table>");
    strip(out, &t["damage_map"]);
    divergent_columns(out, t);
    listed(out, findings);
    schema_differences(out, t);
    for e in arr(&t["errors"]).iter().take(PER_TABLE) {
        let _ = write!(out, "<p class=\"error\">error: {}</p>", esc(&text_of(e)));
    }
    out.push_str("</div>");
}

/// The key-space strip: the table's rows in key order, left to right, shaded by how many
/// differing keys each part holds.
fn strip(out: &mut String, map: &Value) {
    let buckets: Vec<u64> = arr(&map["buckets"]).iter().map(n).collect();
    let total: u64 = buckets.iter().sum();
    if buckets.is_empty() || total == 0 {
        return;
    }
    let most = buckets.iter().copied().max().unwrap_or(1).max(1);
    let rows = n(&map["rows"]);
    let w = 640.0 / buckets.len() as f64;
    let _ = write!(
        out,
        "<svg class=\"strip\" width=\"640\" height=\"18\" viewBox=\"0 0 640 18\" role=\"img\" aria-label=\"where the differences lie in the key space\"><rect width=\"640\" height=\"18\" fill=\"#eee\"/>"
    );
    for (i, &count) in buckets.iter().enumerate().filter(|(_, c)| **c > 0) {
        let alpha = 0.25 + 0.75 * count as f64 / most as f64;
        let from = rows * i as u64 / buckets.len() as u64;
        let to = rows * (i as u64 + 1) / buckets.len() as u64;
        let _ = write!(
            out,
            "<rect x=\"{:.2}\" width=\"{:.2}\" height=\"18\" fill=\"#d62728\" fill-opacity=\"{alpha:.2}\"><title>rows {} to {} in key order: {} differing keys</title></rect>",
            i as f64 * w,
            w.max(1.0),
            grouped(from),
            grouped(to),
            grouped(count)
        );
    }
    out.push_str("</svg>");
    let mut sorted = buckets.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let (mut held, mut parts) = (0, 0);
    for c in sorted {
        if held * 10 >= total * 9 {
            break;
        }
        held += c;
        parts += 1;
    }
    let shape = if parts * 8 <= buckets.len() {
        "clustered"
    } else {
        "spread"
    };
    let unmapped = match n(&map["unmapped_ranges"]) {
        0 => String::new(),
        u => format!("; {u} ranges read by an earlier run are not placed"),
    };
    let _ = write!(
        out,
        "<div class=\"strip-label\">key space, first key to last: {shape}, 90% of the differing keys in {parts} of {} parts{unmapped}</div>",
        buckets.len()
    );
}

fn divergent_columns(out: &mut String, t: &Value) {
    let cols = arr(&t["divergent_columns"]);
    if cols.is_empty() {
        return;
    }
    let names: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "<code>{}</code> ({})",
                esc(&text_of(&c["column"])),
                grouped(n(&c["rows"]))
            )
        })
        .collect();
    let _ = write!(out, "<p>divergent columns: {}</p>", names.join(", "));
}

/// The first differing keys of the table, with each differing column's values where the run
/// showed them (`--show-values`).
fn listed(out: &mut String, findings: &[&Value]) {
    if findings.is_empty() {
        return;
    }
    out.push_str("<table class=\"list\"><tr><th>key</th><th>kind</th><th>column</th><th>values (base → target)</th></tr>");
    for f in findings {
        let key = esc(&text_of(&f["key"]));
        let kind = esc(&text_of(&f["kind"]));
        match f["values"].as_object() {
            Some(values) if !values.is_empty() => {
                for (column, by_role) in values {
                    let _ = write!(
                        out,
                        "<tr><td><code>{key}</code></td><td>{kind}</td><td><code>{}</code></td><td>{}</td></tr>",
                        esc(column),
                        shown_values(by_role)
                    );
                }
            }
            _ => {
                let cols: Vec<String> = arr(&f["columns"]).iter().map(text_of).collect();
                let _ = write!(
                    out,
                    "<tr><td><code>{key}</code></td><td>{kind}</td><td><code>{}</code></td><td></td></tr>",
                    esc(&cols.join(", "))
                );
            }
        }
    }
    out.push_str("</table>");
}

/// `'shipped' → 'pending'`, in role order (base, replica, target), NULL set apart.
fn shown_values(by_role: &Value) -> String {
    let mut parts = Vec::new();
    for role in ["base", "replica", "target"] {
        let v = &by_role[role];
        if by_role.get(role).is_none() {
            continue;
        }
        let value = match v {
            Value::Null => "<span class=\"null\">NULL</span>".to_string(),
            other => format!("<code>'{}'</code>", esc(&text_of(other))),
        };
        parts.push(format!("<span title=\"{role}\">{value}</span>"));
    }
    parts.join("<span class=\"arrow\">→</span>")
}

fn schema_differences(out: &mut String, t: &Value) {
    let diffs = arr(&t["schema_differences"]);
    if diffs.is_empty() {
        return;
    }
    out.push_str("<ul class=\"schema\">");
    for d in diffs.iter().take(PER_TABLE) {
        let column = d["column"]
            .as_str()
            .map(|c| format!("column <code>{}</code>: ", esc(c)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<li>schema ({}) on {}: {column}{} → {}</li>",
            esc(&text_of(&d["kind"])),
            esc(&text_of(&d["source"])),
            esc(&text_of(&d["expected"])),
            esc(&text_of(&d["found"]))
        );
    }
    out.push_str("</ul>");
}
