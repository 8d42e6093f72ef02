//! Issue 22: a CLI that fits people's habits. Completions and man pages, EXAMPLES in --help,
//! --version with the commit, sizes with units, -v logging what runs, the summary ordered for a
//! person (differing tables first, t2 before t10, --only-differences, grouped numbers), and JSON
//! reports that say which pgsalvage made them, from which command line (passwords elided), and
//! how long each phase took.

use serde_json::Value;

use crate::support::*;

#[test]
fn completions_and_man_pages_are_generated() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef pgsalvage"),
        ("fish", "complete -c pgsalvage"),
    ] {
        let out = pgsalvage(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: no {marker}");
        for word in ["verify", "only-differences", "html", "completions"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bad = pgsalvage(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    let man = pgsalvage(&["man"]);
    assert_eq!(man.status.code(), Some(0));
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH pgsalvage 1"),
        "{page}"
    );
    assert!(
        page.contains(".SH NAME") && page.contains("verify"),
        "{page}"
    );
    let verify = text(&pgsalvage(&["man", "verify"]).stdout);
    assert!(verify.contains(".TH pgsalvage-verify 1"), "{verify}");
    assert!(verify.contains("\\-\\-max\\-findings"), "{verify}");
    assert!(verify.contains("Examples:"), "{verify}");
    let none = pgsalvage(&["man", "nosuch"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none.stderr).contains("no command named"));
}

#[test]
fn help_has_examples_and_version_names_the_commit() {
    for cmd in [
        "verify",
        "recover",
        "apply",
        "baseline",
        "check",
        "status",
        "report",
        "completions",
        "man",
    ] {
        let help = text(&pgsalvage(&[cmd, "--help"]).stdout);
        assert!(
            help.contains("Examples:\n") && help.contains("\n  pgsalvage "),
            "{cmd} --help has no examples:\n{help}"
        );
    }
    for cmd in ["verify", "recover", "check", "status"] {
        let help = text(&pgsalvage(&[cmd, "--help"]).stdout);
        assert!(help.contains("--html <FILE>"), "{cmd} lacks --html");
    }
    let version = text(&pgsalvage(&["--version"]).stdout);
    let (_, rest) = version
        .split_once("pgsalvage 0.1.0 (commit ")
        .unwrap_or_else(|| panic!("{version}"));
    let (commit, date) = rest.split_once(", built ").expect("a build date");
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
    let date = date.trim().trim_end_matches(')');
    assert_eq!(date.len(), 10, "{date}");
    assert!(
        date.starts_with("20") && date.as_bytes()[4] == b'-',
        "{date}"
    );
}

#[test]
fn sizes_take_units() {
    let db = fresh_db("habits_sizes");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let out = pgsalvage(&[
        "status",
        "--target",
        &url(&db),
        "--lag-bytes",
        "64MB",
        "--json",
        json.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["thresholds"]["lag_bytes"], 64 << 20);
    assert_eq!(v["format"], "pgsalvage.status/2");
    let raw = pgsalvage(&["status", "--target", &url(&db), "--lag-bytes", "4096", "-q"]);
    assert_eq!(raw.status.code(), Some(0), "{}", text(&raw.stderr));
    let bad = pgsalvage(&["status", "--target", &url(&db), "--lag-bytes", "16 parsecs"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--lag-bytes"),
        "{}",
        text(&bad.stderr)
    );
    let (base, target) = numbered_tables();
    let batch = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--batch-size",
        "64KiB",
        "-q",
    ]);
    assert_eq!(batch.status.code(), Some(1), "{}", text(&batch.stderr));
}

/// t1 … t12, of which t10 and t3 differ.
fn numbered_tables() -> (String, String) {
    let sql: String = (1..=12)
        .map(|i| {
            format!(
                "CREATE TABLE t{i} (id int PRIMARY KEY, v int);
                 INSERT INTO t{i} SELECT g, g FROM generate_series(1, 1500) g;"
            )
        })
        .collect();
    let (base, target) = pair("habits", &sql);
    psql(
        &target,
        "DELETE FROM t10 WHERE id = 7; UPDATE t3 SET v = 0 WHERE id = 1",
    );
    (base, target)
}

#[test]
fn the_summary_puts_differing_tables_first_in_natural_order() {
    let (base, target) = numbered_tables();
    let out = pgsalvage(&["verify", "--base", &url(&base), "--target", &url(&target)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let names: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("public.t"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let expected: Vec<String> = [
        "t3", "t10", "t1", "t2", "t4", "t5", "t6", "t7", "t8", "t9", "t11", "t12",
    ]
    .iter()
    .map(|t| format!("public.{t}"))
    .collect();
    assert_eq!(names, expected, "{summary}");
    // Grouped numbers: 1,500 rows per side.
    assert!(summary.contains("1,500"), "{summary}");

    let only = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--only-differences",
    ]);
    let summary = text(&only.stdout);
    let listed: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("public."))
        .collect();
    assert_eq!(listed.len(), 2, "{summary}");
    assert!(
        summary.contains("(10 identical tables not listed"),
        "{summary}"
    );
    assert!(
        summary.contains("verdict: DIFFERENCES in 2 of 12 tables"),
        "{summary}"
    );
}

#[test]
fn json_reports_say_who_made_them_and_verbose_logs_what_runs() {
    let (base, target) = pair(
        "habits_json",
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1), (2);",
    );
    // The cluster trusts local connections: the password is never checked, only carried.
    let secret_url = url(&base).replacen("postgres@", "postgres:hunter2@", 1);
    assert!(secret_url.contains(":hunter2@"), "{secret_url}");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = pgsalvage(&[
        "verify",
        "--base",
        &secret_url,
        "--target",
        &format!("{} password=hunter2", keyword_form(&target)),
        "--json",
        json.to_str().unwrap(),
        "-vv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    for needle in [
        "connect postgres@127.0.0.1",
        "phase: reading catalogs",
        "phase: comparing rows",
        "sql: COPY (SELECT",
        "exported snapshot",
    ] {
        assert!(log.contains(needle), "-vv log lacks {needle}:\n{log}");
    }
    assert!(!log.contains("hunter2"), "{log}");
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let raw = std::fs::read_to_string(&json).unwrap();
    assert!(!raw.contains("hunter2"), "a password in the report:\n{raw}");
    assert_eq!(v["format"], "pgsalvage.verify/2");
    assert_eq!(v["tool"]["name"], "pgsalvage");
    assert_eq!(v["tool"]["version"], "0.1.0");
    assert!(v["tool"]["commit"].as_str().is_some_and(|c| !c.is_empty()));
    let args: Vec<&str> = v["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[1], "verify");
    assert!(args.contains(&"-vv"));
    assert!(
        args.iter().any(|a| a.contains("postgres:***@127.0.0.1")),
        "{args:?}"
    );
    assert!(args.iter().any(|a| a.ends_with("password=***")), "{args:?}");
    let timings = &v["timings"];
    assert!(timings["started_at"].as_str().unwrap().ends_with('Z'));
    let phases: Vec<&str> = timings["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "connecting and exporting snapshots",
            "reading catalogs",
            "planning key ranges",
            "comparing rows",
            "reporting"
        ]
    );
    let total = timings["elapsed_ms"].as_u64().unwrap();
    let summed: u64 = timings["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["elapsed_ms"].as_u64().unwrap())
        .sum();
    assert!(summed <= total, "{summed} > {total}");

    // check and apply reports carry the same fields.
    let cj = dir.path().join("c.json");
    let check = pgsalvage(&[
        "check",
        "--target",
        &url(&target),
        "--json",
        cj.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let c: Value = serde_json::from_slice(&std::fs::read(&cj).unwrap()).unwrap();
    assert_eq!(c["format"], "pgsalvage.check/2");
    assert_eq!(c["tool"]["name"], "pgsalvage");
    assert_eq!(c["command_line"][1], "check");
}

/// `postgresql://postgres@127.0.0.1:PORT/DB` as `host=127.0.0.1 port=PORT user=postgres dbname=DB`.
fn keyword_form(db: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres dbname={db}",
        pgsalvage::cluster::Cluster::port(cluster())
    )
}

#[test]
fn recover_and_check_write_pages_too() {
    let (base, target) = pair(
        "habits_html",
        "CREATE TABLE p (id int PRIMARY KEY, v text); INSERT INTO p VALUES (1, 'a'), (2, 'b');",
    );
    psql(
        &target,
        "DELETE FROM p WHERE id = 2; ALTER TABLE p ADD COLUMN stray int",
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("recover.html");
    let out = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        dir.path().join("rec").to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"recovery\""), "{html}");
    assert!(
        html.contains("data-class=\"missing\" data-n=\"1\""),
        "{html}"
    );
    let check_page = dir.path().join("check.html");
    let out = pgsalvage(&[
        "check",
        "--target",
        &url(&target),
        "--base",
        &url(&base),
        "--html",
        check_page.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&check_page).unwrap();
    assert!(html.contains("id=\"drift\""), "{html}");
    assert!(html.contains("stray"), "{html}");
    let refused = pgsalvage(&["check", "--target", &url(&target), "--html", "-"]);
    assert_eq!(refused.status.code(), Some(2));
    let not_a_report = dir.path().join("x.json");
    std::fs::write(&not_a_report, "{\"format\": \"other/1\"}").unwrap();
    let out = pgsalvage(&[
        "report",
        not_a_report.to_str().unwrap(),
        "--html",
        dir.path().join("x.html").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a verify"),
        "{}",
        text(&out.stderr)
    );
}

/// Events without a primary key; on the target a parent deleted under a foreign key put back
/// `NOT VALID` (two orphans), a NULL where the base is NOT NULL, a duplicate under a lost unique
/// key.
fn keyless_events() -> (String, String) {
    let (base, target) = pair(
        "habits_check_key",
        "CREATE TABLE parents (id int PRIMARY KEY);
         INSERT INTO parents VALUES (1), (2), (3);
         CREATE TABLE events (tenant_id int NOT NULL, event_id int NOT NULL,
             parent_id int CONSTRAINT events_parent_fk REFERENCES parents,
             code text CONSTRAINT events_code_key UNIQUE, note text NOT NULL);
         INSERT INTO events VALUES (1, 10, 1, 'a', 'x'), (1, 11, 2, 'b', 'x'),
             (2, 10, 2, 'c', 'x'), (2, 11, 3, 'd', 'x');",
    );
    psql(
        &target,
        "ALTER TABLE events DROP CONSTRAINT events_parent_fk;
         DELETE FROM parents WHERE id = 2;
         ALTER TABLE events ADD CONSTRAINT events_parent_fk
             FOREIGN KEY (parent_id) REFERENCES parents NOT VALID;
         ALTER TABLE events ALTER COLUMN note DROP NOT NULL;
         UPDATE events SET note = NULL WHERE (tenant_id, event_id) = (2, 11);
         ALTER TABLE events DROP CONSTRAINT events_code_key;
         UPDATE events SET code = 'a' WHERE (tenant_id, event_id) = (2, 10);",
    );
    (base, target)
}

/// `check --key`, run through the binary; the JSON report.
fn check_json(base: &str, target: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("c.json");
    let mut args = vec![
        "check",
        "--target",
        target,
        "--base",
        base,
        "--json",
        json.to_str().unwrap(),
        "-q",
    ];
    args.extend(extra);
    let out = pgsalvage(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

/// `<rows>` of a check finding as (key columns, keys as JSON text).
fn rows_of(rows: &Value) -> (Vec<String>, Vec<String>) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| match k.as_str() {
                Some(s) => s.to_string(),
                None => k.to_string(),
            })
            .collect()
    };
    (strings(&rows["key_columns"]), strings(&rows["keys"]))
}

#[test]
fn check_names_rows_of_a_table_without_a_primary_key_by_its_key() {
    let (base, target) = keyless_events();
    let (base, target) = (url(&base), url(&target));
    let key = ["tenant_id".to_string(), "event_id".to_string()];
    let plain = check_json(&base, &target, &[]);
    let keyed = check_json(
        &base,
        &target,
        &["--key", "public.events=tenant_id,event_id"],
    );
    // Without --key the rows are named by the rule's columns: two orphans read as [2], [2].
    let orphans = rows_of(&plain["orphans"][0]["orphans"]);
    assert_eq!(orphans, (vec!["parent_id".into()], vec!["[2]".into(); 2]));
    let finding = |report: &Value, section: &str, rows: &str| {
        let list = report[section].as_array().unwrap();
        assert_eq!(list.len(), 1, "{section}: {list:?}");
        rows_of(&list[0][rows])
    };
    for (section, rows, keys) in [
        ("orphans", "orphans", vec!["[1,11]", "[2,10]"]),
        ("not_validated", "violations", vec!["[1,11]", "[2,10]"]),
        ("not_null", "nulls", vec!["[2,11]"]),
        ("duplicates", "duplicates", vec!["[1,10]", "[2,10]"]),
    ] {
        let keys: Vec<String> = keys.into_iter().map(String::from).collect();
        assert_eq!(
            finding(&keyed, section, rows),
            (key.to_vec(), keys),
            "{section}"
        );
        assert_ne!(finding(&plain, section, rows).0, key.to_vec(), "{section}");
    }
    // A key over a column the table lacks, or a table nowhere, is refused before any row is read.
    for (spec, says) in [
        (
            "public.events=tenant_id,nosuch",
            "key column nosuch of table public.events",
        ),
        ("public.nosuch=id", "--key names table public.nosuch"),
        ("public.events", "invalid --key"),
    ] {
        let out = pgsalvage(&["check", "--target", &target, "--key", spec]);
        assert_eq!(out.status.code(), Some(2), "{spec}");
        assert!(
            text(&out.stderr).contains(says),
            "{spec}: {}",
            text(&out.stderr)
        );
    }
}

/// The phases a report's `timings` lists, by name.
fn phase_names(report: &Value) -> Vec<String> {
    report["timings"]["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases: {report}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// `p` with one row deleted on the target, and a recovery of it written into `dir/rec`.
fn recovered(tag: &str, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let (base, target) = pair(
        tag,
        "CREATE TABLE p (id int PRIMARY KEY, v text); INSERT INTO p VALUES (1, 'a'), (2, 'b');",
    );
    psql(&target, "DELETE FROM p WHERE id = 2");
    let rec = dir.join("rec");
    let out = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        rec.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    (target, rec)
}

#[test]
fn apply_json_is_versioned_and_timed() {
    let dir = tempfile::tempdir().unwrap();
    let (target, rec) = recovered("habits_apply_json", dir.path());
    let json = dir.path().join("a.json");
    let out = pgsalvage(&[
        "apply",
        rec.to_str().unwrap(),
        "--target",
        &url(&target),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["format"], "pgsalvage.apply/1");
    assert_eq!(v["committed"], true);
    assert_eq!(v["tool"]["name"], "pgsalvage");
    assert_eq!(v["command_line"][1], "apply");
    assert_eq!(
        phase_names(&v),
        [
            "checking the recovery and connecting",
            "locking tables",
            "guarding rows",
            "running restore.sql",
            "re-verifying",
            "committing"
        ]
    );
    assert!(v["timings"]["elapsed_ms"].as_u64().is_some(), "{v}");
}

#[test]
fn recover_json_carries_the_fixups_of_plan_json() {
    let (base, target) = pair(
        "habits_recover_fixups",
        "CREATE TABLE p (id int PRIMARY KEY, v text CONSTRAINT p_v_check CHECK (v <> ''));
         INSERT INTO p VALUES (1, 'a'), (2, 'b');",
    );
    psql(
        &target,
        "DELETE FROM p WHERE id = 2; ALTER TABLE p DROP CONSTRAINT p_v_check",
    );
    let dir = tempfile::tempdir().unwrap();
    let (rec, json) = (dir.path().join("rec"), dir.path().join("r.json"));
    let out = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        rec.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let plan: Value =
        serde_json::from_slice(&std::fs::read(rec.join("plan.json")).unwrap()).unwrap();
    assert_eq!(v["format"], "pgsalvage.verify/2");
    assert_eq!(v["totals"]["missing"], 1, "{v}");
    assert_eq!(v["fixups"], plan["fixups"]);
    let steps = v["fixups"]["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["kind"] == "add_constraint"
            && s["object"].as_str().unwrap().contains("p_v_check")),
        "{steps:?}"
    );
    let line = v["fixups"]["summary"][0].as_str().unwrap().to_string();
    // The page made from the saved report lists them too.
    let page = dir.path().join("r.html");
    let out = pgsalvage(&[
        "report",
        json.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(&line), "{line}\n{html}");
    // verify's report has none.
    let vj = dir.path().join("v.json");
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--json",
        vj.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let verify: Value = serde_json::from_slice(&std::fs::read(&vj).unwrap()).unwrap();
    assert!(verify.get("fixups").is_none(), "{verify}");
}

#[test]
fn baseline_reports_time_their_phases() {
    let (base, target) = pair(
        "habits_baseline_json",
        "CREATE TABLE p (id int PRIMARY KEY, v text);
         INSERT INTO p SELECT g, 'v' || g FROM generate_series(1, 500) g;",
    );
    psql(&target, "UPDATE p SET v = 'changed' WHERE id = 7");
    let dir = tempfile::tempdir().unwrap();
    let json = |name: &str| dir.path().join(name);
    let read = |path: &std::path::Path| -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let take = |db: &str, out: &str| {
        let run = pgsalvage(&[
            "baseline",
            "--source",
            &url(db),
            "--out",
            json(out).to_str().unwrap(),
            "--rows",
            "--json",
            json(&format!("{out}.json")).to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
        read(&json(&format!("{out}.json")))
    };
    let taken = take(&base, "b1");
    assert_eq!(taken["format"], "pgsalvage.baseline/2");
    assert_eq!(taken["command_line"][1], "baseline");
    assert_eq!(
        phase_names(&taken),
        [
            "connecting and exporting a snapshot",
            "reading the catalog and planning key ranges",
            "capturing rows",
            "sealing and publishing"
        ]
    );
    take(&target, "b2");
    let verify = |base: &str, target: &str, out: &str| {
        let run = pgsalvage(&[
            "verify",
            "--base",
            base,
            "--target",
            target,
            "--json",
            json(out).to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
        let v = read(&json(out));
        assert_eq!(v["totals"]["divergent"], 1, "{v}");
        phase_names(&v)
    };
    let b1 = json("b1").to_str().unwrap().to_string();
    let b2 = json("b2").to_str().unwrap().to_string();
    assert_eq!(
        verify(&b1, &url(&target), "live.json"),
        [
            "loading baselines and exporting snapshots",
            "reading catalogs",
            "planning key ranges",
            "comparing rows",
            "reporting"
        ]
    );
    assert_eq!(
        verify(&b1, &b2, "stored.json"),
        [
            "loading baselines and exporting snapshots",
            "reading catalogs",
            "comparing rows",
            "reporting"
        ]
    );
}
