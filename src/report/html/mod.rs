//! `--html`: a report as one self-contained page, for the people who look rather than read.
//!
//! The page is rendered from the report's JSON form (a `serde_json::Value`), whichever command
//! made it, so `pgsalvage report r.json --html` gives the page the run would have given. One
//! file, nothing fetched: inline CSS, inline SVG for the key-space strips and the lock-wait
//! graph, and a few lines of inline script (a switch to show identical tables, and a guard that
//! writes any script error into the page, where a person and the tests see it).
//!
//! Templates are plain functions writing into a `String`; every text that comes from a report
//! (table and column names, values, SQL, errors) goes through [`esc`], names can hold `<`,
//! quotes and newlines. Listings are capped ([`MAX_TABLES`], [`MAX_ROWS`]) so a diff of millions
//! of rows still makes a page of a few hundred kilobytes, and the page says where it cut.

mod incident;
mod verify;

use std::fmt::Write;

use serde_json::Value;

/// Tables shown in detail; the rest (identical ones first to go) are counted.
pub const MAX_TABLES: usize = 300;
/// Rows of any one listing (sample values, keys, sections of check and status).
pub const MAX_ROWS: usize = 200;

/// Renders a report (verify or recover's comparison, check, status) as a page; `notes` are
/// lines shown under the title (recover: what the recovery does and its fix-ups).
pub fn render(report: &Value, notes: &[String]) -> Result<String, String> {
    let format = report["format"].as_str().unwrap_or_default();
    let (kind, body) = match format.split('/').next().unwrap_or_default() {
        "pgsalvage.verify" => ("verify", verify::body(report, notes)),
        "pgsalvage.check" => ("check", incident::check_body(report)),
        "pgsalvage.status" => ("status", incident::status_body(report)),
        _ => {
            return Err(format!(
                "not a verify, recover, check or status report (format {:?})",
                format
            ))
        }
    };
    Ok(page(kind, report, &body))
}

/// Escapes text for HTML element content and quoted attribute values; control characters
/// (a newline in a table name) are shown as escapes so a name stays on one line.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text that keeps its lines (SQL, DDL) inside a `<pre>`.
pub fn esc_block(text: &str) -> String {
    text.lines().map(esc).collect::<Vec<_>>().join("\n")
}

/// A JSON value as a short text: strings bare, others as compact JSON, cut at 300 characters.
pub fn text_of(v: &Value) -> String {
    let full = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match full.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &full[..at]),
        None => full,
    }
}

pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

pub fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn page(kind: &str, report: &Value, body: &str) -> String {
    let verdict = report["verdict"].as_str().unwrap_or("unknown");
    let mut out = String::with_capacity(body.len() + 8192);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pgsalvage {kind}: {verdict}</title><style>{CSS}</style><script>{GUARD}</script></head>\
         <body class=\"{kind}\" data-verdict=\"{verdict}\">\
         <div id=\"js-errors\" hidden></div>",
        kind = esc(kind),
        verdict = esc(verdict),
    );
    out.push_str(body);
    provenance(&mut out, report);
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

/// The footer: which pgsalvage made the report, from which command line, when, how long.
fn provenance(out: &mut String, report: &Value) {
    let tool = &report["tool"];
    let timings = &report["timings"];
    out.push_str("<footer><h2>About this report</h2><dl>");
    if tool.is_object() {
        let _ = write!(
            out,
            "<dt>made by</dt><dd>pgsalvage {} (commit {}, built {})</dd>",
            esc(&text_of(&tool["version"])),
            esc(&text_of(&tool["commit"])),
            esc(&text_of(&tool["build_date"]))
        );
    }
    let args: Vec<String> = arr(&report["command_line"]).iter().map(text_of).collect();
    if !args.is_empty() {
        let _ = write!(
            out,
            "<dt>command line</dt><dd><code>{}</code></dd>",
            esc(&args.join(" "))
        );
    }
    if let Some(at) = timings["started_at"].as_str() {
        let _ = write!(out, "<dt>started</dt><dd>{}</dd>", esc(at));
    }
    let elapsed = timings["elapsed_ms"]
        .as_u64()
        .or(report["elapsed_ms"].as_u64());
    if let Some(ms) = elapsed {
        let _ = write!(out, "<dt>took</dt><dd>{}</dd>", seconds(ms));
    }
    let phases: Vec<String> = arr(&timings["phases"])
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                esc(&text_of(&p["name"])),
                seconds(n(&p["elapsed_ms"]))
            )
        })
        .collect();
    if !phases.is_empty() {
        let _ = write!(out, "<dt>phases</dt><dd>{}</dd>", phases.join(" · "));
    }
    out.push_str("</dl></footer>");
}

pub fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Says so when a listing shows fewer than it has.
pub fn capped(out: &mut String, total: usize, shown: usize, what: &str) {
    if total > shown {
        let _ = write!(
            out,
            "<p class=\"capped\">Showing the first {shown} of {total} {what}; the JSON report has them all.</p>"
        );
    }
}

const CSS: &str = "
:root{--missing:#d62728;--extra:#1f77b4;--divergent:#ff7f0e;--ok:#2ca02c;--muted:#666;--line:#ddd}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;color:#222}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:20px 0 8px}h3{font-size:15px;margin:0}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}pre{background:#f6f6f6;padding:8px;overflow:auto;white-space:pre-wrap}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;color:#fff;font-weight:600}
.verdict.identical,.verdict.clean{background:var(--ok)}.verdict.differences,.verdict.problems,.verdict.notable{background:var(--missing)}
.verdict.incomplete{background:#7f3fbf}
.totals{display:flex;gap:16px;flex-wrap:wrap;margin:12px 0}.totals div{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:110px}
.totals b{display:block;font-size:20px}
.table{border:1px solid var(--line);border-radius:6px;margin:10px 0;padding:10px 12px}
.table.identical{opacity:.75}.table.error{border-color:#7f3fbf}.table.differences{border-left:5px solid var(--missing)}
.badge{font-size:12px;border-radius:3px;padding:1px 6px;margin-left:8px;color:#fff;background:var(--muted)}
.badge.differences{background:var(--missing)}.badge.error{background:#7f3fbf}.badge.identical{background:var(--ok)}
.counts{border-collapse:collapse;margin:6px 0}.counts td,.counts th{padding:2px 10px 2px 0;text-align:left}
.bar{height:12px;border-radius:2px;display:inline-block;vertical-align:middle;min-width:2px}
.bar.missing,.bar.lost,.bar.damaged{background:var(--missing)}.bar.extra,.bar.new_on_target{background:var(--extra)}
.bar.divergent,.bar.conflict{background:var(--divergent)}.bar.other{background:#9467bd}
.strip{display:block;margin:6px 0 2px}.strip-label{font-size:12px;color:var(--muted)}
table.list{border-collapse:collapse;width:100%}table.list th,table.list td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
.scroll{overflow:auto}.capped{color:#a15c00;font-style:italic}.count{color:var(--muted);font-weight:400}
.arrow{color:var(--muted);padding:0 6px}.null{color:var(--muted);font-style:italic}
#js-errors{background:#fee;border:1px solid #c00;color:#900;padding:8px;white-space:pre-wrap}
footer{margin-top:32px;border-top:1px solid var(--line);color:var(--muted);font-size:12px}footer dt{font-weight:600}footer dd{margin:0 0 6px}
body.hide-identical .table.identical{display:none}
";

/// Runs first: any script error, or console.error, is written into the page.
const GUARD: &str = "
window.pgsalvageErrors=[];
function pgsalvageError(msg){window.pgsalvageErrors.push(msg);var e=document.getElementById('js-errors');
if(e){e.hidden=false;e.textContent+=msg+'\\n';}}
window.addEventListener('error',function(e){pgsalvageError('script error: '+e.message);});
(function(){var c=console.error;console.error=function(){pgsalvageError('console.error: '+Array.prototype.join.call(arguments,' '));c.apply(console,arguments);};})();
";

/// The switch for identical tables; marks the page as rendered.
const SCRIPT: &str = "
(function(){
var box=document.getElementById('show-identical');
if(box){var apply=function(){document.body.classList.toggle('hide-identical',!box.checked);};box.addEventListener('change',apply);apply();}
var shown=document.querySelectorAll('.table').length;
document.documentElement.setAttribute('data-rendered','yes');
document.documentElement.setAttribute('data-tables-shown',String(shown));
var errs=document.getElementById('js-errors');
if(window.pgsalvageErrors.length&&!errs.textContent){errs.hidden=false;errs.textContent=window.pgsalvageErrors.join('\\n');}
})();
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_keeps_names_on_one_line() {
        assert_eq!(
            esc("a<b>&\"c\"'d'\nx"),
            "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;\\nx"
        );
        assert_eq!(
            esc_block("SELECT 1;\nSELECT '<'"),
            "SELECT 1;\nSELECT &#39;&lt;&#39;"
        );
        assert_eq!(text_of(&serde_json::json!([1, "a"])), "[1,\"a\"]");
        assert!(text_of(&Value::String("x".repeat(400))).ends_with('…'));
    }

    #[test]
    fn an_unknown_report_is_refused() {
        let err = render(&serde_json::json!({"format": "other/1"}), &[]).unwrap_err();
        assert!(err.contains("not a verify"), "{err}");
    }
}
