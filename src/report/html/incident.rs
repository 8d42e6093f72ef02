//! The pages of `check` and `status`: their verdict and totals, each finding section as a
//! capped table, drift's DDL and status's advice as SQL blocks, and status's lock waits drawn as
//! a graph (who waits for whom, the session at the head of each chain on the left).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use super::{arr, capped, esc, esc_block, n, text_of, MAX_ROWS};
use crate::report::human::grouped;

pub fn check_body(report: &Value) -> String {
    let mut out = String::new();
    title(&mut out, "check", report);
    totals(&mut out, &report["totals"]);
    for (key, label) in [
        ("not_validated", "Constraints not validated"),
        ("orphans", "Orphans under foreign keys"),
        ("parent_restores", "Parents the base can restore"),
        ("sequences", "Sequences behind their columns"),
        ("not_null", "NULLs where the base is NOT NULL"),
        ("duplicates", "Duplicates under a lost unique index"),
        (
            "drift",
            "Schema drift (and the DDL that puts the base's version back)",
        ),
    ] {
        section(&mut out, label, arr(&report[key]), key);
    }
    out
}

pub fn status_body(report: &Value) -> String {
    let mut out = String::new();
    title(&mut out, "status", report);
    let server = &report["server"];
    let _ = write!(
        out,
        "<p>{} · PostgreSQL {} · {} · at {}</p>",
        esc(&text_of(&server["connection"])),
        esc(&text_of(&server["server_version"])),
        if server["in_recovery"].as_bool() == Some(true) {
            "standby"
        } else {
            "primary"
        },
        esc(&text_of(&server["time"]))
    );
    section(&mut out, "Notable", arr(&report["notable"]), "notable");
    lock_graph(&mut out, arr(&report["lock_waits"]));
    let waits: Vec<Value> = arr(&report["lock_waits"]).iter().map(flat_wait).collect();
    section(&mut out, "Lock waits", &waits, "lock_waits");
    for (key, label) in [
        ("migrations", "Migration tables"),
        ("running_ddl", "Running DDL"),
        ("long_transactions", "Long transactions"),
        ("invalid_indexes", "Invalid indexes"),
    ] {
        section(&mut out, label, arr(&report[key]), key);
    }
    let replication = &report["replication"];
    section(
        &mut out,
        "Replicas",
        arr(&replication["replicas"]),
        "replicas",
    );
    if replication["standby"].is_object() {
        section(
            &mut out,
            "Standby",
            std::slice::from_ref(&replication["standby"]),
            "standby",
        );
    }
    section(
        &mut out,
        "Replication slots",
        arr(&replication["slots"]),
        "slots",
    );
    section(&mut out, "Errors", arr(&report["errors"]), "errors");
    out
}

fn title(out: &mut String, command: &str, report: &Value) {
    let verdict = report["verdict"].as_str().unwrap_or("unknown");
    let _ = write!(
        out,
        "<h1>pgsalvage {command} <span class=\"verdict {}\" id=\"verdict\">{}</span></h1>",
        esc(verdict),
        esc(&verdict.to_uppercase())
    );
}

fn totals(out: &mut String, totals: &Value) {
    let Some(fields) = totals.as_object() else {
        return;
    };
    out.push_str("<div class=\"totals\">");
    for (key, v) in fields {
        let _ = write!(
            out,
            "<div id=\"total-{k}\" data-n=\"{}\"><b>{}</b>{}</div>",
            n(v),
            grouped(n(v)),
            esc(&key.replace('_', " ")),
            k = esc(key)
        );
    }
    out.push_str("</div>");
}

/// An array of objects as a table: one column per field, nested rows as their count, lists of
/// SQL as blocks; capped at [`MAX_ROWS`].
fn section(out: &mut String, label: &str, rows: &[Value], id: &str) {
    if rows.is_empty() {
        return;
    }
    let mut columns: Vec<&str> = Vec::new();
    for row in rows.iter().take(MAX_ROWS) {
        for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let _ = write!(
        out,
        "<section id=\"{}\"><h2>{} <span class=\"count\">{}</span></h2><div class=\"scroll\"><table class=\"list\"><tr>",
        esc(id),
        esc(label),
        rows.len()
    );
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", esc(&c.replace('_', " ")));
    }
    out.push_str("</tr>");
    for row in rows.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for c in &columns {
            let _ = write!(out, "<td>{}</td>", cell(c, &row[*c]));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div>");
    capped(out, rows.len(), MAX_ROWS, "rows");
    out.push_str("</section>");
}

fn cell(column: &str, v: &Value) -> String {
    match v {
        Value::Object(o) if o.contains_key("rows") => {
            let keys: Vec<String> = arr(&v["keys"]).iter().take(10).map(text_of).collect();
            let more = match arr(&v["keys"]).len() > 10 || v["keys_truncated"] == true {
                true => ", …",
                false => "",
            };
            format!(
                "{} rows <code>{}{more}</code>",
                grouped(n(&v["rows"])),
                esc(&keys.join(", "))
            )
        }
        Value::Array(items) if matches!(column, "ddl" | "advice") => {
            let lines: Vec<String> = items.iter().map(text_of).collect();
            format!("<pre>{}</pre>", esc_block(&lines.join("\n")))
        }
        Value::String(s) if column == "query" || column == "definition" => {
            format!("<code>{}</code>", esc(&text_of(&Value::String(s.clone()))))
        }
        other => esc(&text_of(other)),
    }
}

/// A lock wait as one flat row: the waiter's pid and query, what it waits for, its blockers.
fn flat_wait(w: &Value) -> Value {
    let blockers: Vec<String> = arr(&w["blockers"])
        .iter()
        .map(|b| {
            let holds: Vec<String> = arr(&b["holds"]).iter().map(text_of).collect();
            format!("pid {} ({})", text_of(&b["pid"]), holds.join(", "))
        })
        .collect();
    serde_json::json!({
        "waiter": format!("pid {}", text_of(&w["waiter"]["pid"])),
        "query": w["waiter"]["query"],
        "mode": w["mode"],
        "object": w["object"],
        "blocked_by": blockers.join("; "),
    })
}

/// Who waits for whom, as an SVG graph: a session's column is how deep it sits in its chain
/// (the sessions that wait for nobody on the left), an arrow from each waiter to each blocker.
fn lock_graph(out: &mut String, waits: &[Value]) {
    if waits.is_empty() {
        return;
    }
    let mut edges: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut label: BTreeMap<i64, String> = BTreeMap::new();
    let mut edge_label: BTreeMap<(i64, i64), String> = BTreeMap::new();
    for w in waits.iter().take(MAX_ROWS) {
        let waiter = w["waiter"]["pid"].as_i64().unwrap_or(0);
        label.insert(waiter, node_text(&w["waiter"]));
        for b in arr(&w["blockers"]) {
            let blocker = b["pid"].as_i64().unwrap_or(0);
            label.entry(blocker).or_insert_with(|| node_text(b));
            edges.insert((waiter, blocker));
            edge_label.insert((waiter, blocker), text_of(&w["mode"]));
        }
    }
    let depth = depths(&label, &edges);
    let mut columns: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for (pid, d) in &depth {
        columns.entry(*d).or_default().push(*pid);
    }
    let (node_w, node_h, gap_x, gap_y) = (220.0, 44.0, 90.0, 16.0);
    let mut at: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for (d, pids) in &columns {
        for (i, pid) in pids.iter().enumerate() {
            let x = 10.0 + *d as f64 * (node_w + gap_x);
            let y = 10.0 + i as f64 * (node_h + gap_y);
            at.insert(*pid, (x, y));
        }
    }
    let width = 20.0 + columns.len() as f64 * (node_w + gap_x);
    let tallest = columns.values().map(Vec::len).max().unwrap_or(1) as f64;
    let height = 20.0 + tallest * (node_h + gap_y);
    let _ = write!(
        out,
        "<section id=\"lock-graph\"><h2>Lock waits: who blocks whom</h2>\
         <svg width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"lock-wait graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" fill=\"#666\"/></marker></defs>"
    );
    for (waiter, blocker) in &edges {
        let ((wx, wy), (bx, by)) = (at[waiter], at[blocker]);
        let (x1, y1) = (wx, wy + node_h / 2.0);
        let (x2, y2) = match bx < wx {
            true => (bx + node_w, by + node_h / 2.0),
            false => (bx, by + node_h / 2.0),
        };
        let _ = write!(
            out,
            "<line class=\"edge\" x1=\"{x1:.0}\" y1=\"{y1:.0}\" x2=\"{x2:.0}\" y2=\"{y2:.0}\" stroke=\"#666\" marker-end=\"url(#arrow)\"><title>pid {waiter} waits for pid {blocker}: {}</title></line>",
            esc(&edge_label[&(*waiter, *blocker)])
        );
    }
    for (pid, (x, y)) in &at {
        let waits_for_none = !edges.iter().any(|(w, _)| w == pid);
        let fill = if waits_for_none { "#fde0dd" } else { "#f0f0f0" };
        let _ = write!(
            out,
            "<g class=\"node\" data-pid=\"{pid}\"><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{node_w}\" height=\"{node_h}\" rx=\"4\" fill=\"{fill}\" stroke=\"#999\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" font-weight=\"600\">pid {pid}{}</text>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" font-family=\"monospace\">{}</text></g>",
            x + 8.0,
            y + 17.0,
            if waits_for_none { " (blocks others)" } else { "" },
            x + 8.0,
            y + 34.0,
            esc(&label[pid])
        );
    }
    out.push_str("</svg></section>");
}

fn node_text(session: &Value) -> String {
    let query = text_of(&session["query"]).replace(char::is_whitespace, " ");
    match query.char_indices().nth(30) {
        Some((i, _)) => format!("{}…", &query[..i]),
        None => query,
    }
}

/// Each session's depth: 0 for one waiting for nobody, else one more than the deepest session
/// it waits for (a cycle, a deadlock about to be broken, is cut where it closes).
fn depths(nodes: &BTreeMap<i64, String>, edges: &BTreeSet<(i64, i64)>) -> BTreeMap<i64, usize> {
    fn visit(
        pid: i64,
        edges: &BTreeSet<(i64, i64)>,
        memo: &mut BTreeMap<i64, usize>,
        path: &mut Vec<i64>,
    ) -> usize {
        if let Some(d) = memo.get(&pid) {
            return *d;
        }
        if path.contains(&pid) {
            return 0;
        }
        path.push(pid);
        let d = edges
            .iter()
            .filter(|(w, _)| *w == pid)
            .map(|(_, b)| visit(*b, edges, memo, path) + 1)
            .max()
            .unwrap_or(0);
        path.pop();
        memo.insert(pid, d);
        d
    }
    let mut memo = BTreeMap::new();
    for pid in nodes.keys() {
        visit(*pid, edges, &mut memo, &mut Vec::new());
    }
    memo
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lock_chain_is_drawn_head_first() {
        let session = |pid: i64, q: &str| json!({"pid": pid, "query": q});
        let waits = [
            json!({"waiter": session(2, "ALTER TABLE t <x>"), "mode": "AccessExclusiveLock",
                   "blockers": [ { "pid": 1, "query": "SELECT 1", "holds": ["AccessShareLock"] } ]}),
            json!({"waiter": session(3, "SELECT * FROM t"), "mode": "AccessShareLock",
                   "blockers": [ { "pid": 2, "query": "ALTER TABLE t <x>", "holds": [] } ]}),
        ];
        let mut out = String::new();
        lock_graph(&mut out, &waits);
        assert_eq!(out.matches("class=\"edge\"").count(), 2, "{out}");
        assert_eq!(out.matches("class=\"node\"").count(), 3, "{out}");
        assert!(out.contains("pid 1 (blocks others)"), "{out}");
        assert!(out.contains("ALTER TABLE t &lt;x&gt;"), "{out}");
        assert!(!out.contains("<x>"), "{out}");
    }
}
