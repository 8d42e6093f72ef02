//! Any identifier round-trips (issue 19): schema, table and column names with newlines, quotes,
//! slashes, `..`, semicolons and non-ASCII letters go through verify, recover (SQL and Parquet),
//! apply and baseline, and come back identical.

use crate::support::{pair, pgsalvage, psql, text, url};

/// (schema, table, column): each table gets an `id` key and the named text column.
const NAMES: &[(&str, &str, &str)] = &[
    ("public", "line\nbreak", "v"),
    ("public", "quote\"d 'both'", "it's \"v\""),
    ("public", "../../escape", "v"),
    ("public", "sl/ash", "a/b"),
    ("public", "ünïcødé 表", "列"),
    ("public", "semi;colon -- x", "v;--"),
    ("Sch\"ema/..", "plain", "new\nline"),
];

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn setup_sql() -> String {
    let mut sql = String::from("CREATE SCHEMA \"Sch\"\"ema/..\";\n");
    for (schema, table, column) in NAMES {
        let t = format!("{}.{}", ident(schema), ident(table));
        sql.push_str(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, {} text);\n\
             INSERT INTO {t} SELECT g, 'v' || g FROM generate_series(1, 20) g;\n",
            ident(column)
        ));
    }
    sql
}

fn damage_sql() -> String {
    let mut sql = String::new();
    for (schema, table, column) in NAMES {
        let t = format!("{}.{}", ident(schema), ident(table));
        sql.push_str(&format!(
            "DELETE FROM {t} WHERE id IN (3, 4); UPDATE {t} SET {} = 'damaged' WHERE id = 9;\n",
            ident(column)
        ));
    }
    sql
}

#[test]
fn hostile_identifiers_round_trip_through_every_command() {
    let (base, target) = pair("hostile", &setup_sql());
    psql(&target, &damage_sql());
    let (b, t) = (url(&base), url(&target));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");

    let out = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "-q",
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut names: Vec<String> = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut wanted: Vec<String> = NAMES.iter().map(|(s, t, _)| format!("{s}.{t}")).collect();
    wanted.sort();
    assert_eq!(names, wanted);
    for t in json["tables"].as_array().unwrap() {
        assert_eq!(
            (t["missing"].as_u64(), t["divergent"].as_u64()),
            (Some(2), Some(1)),
            "{}",
            t["table"]
        );
    }

    let rec = dir.path().join("rec");
    let out = pgsalvage(&[
        "recover",
        "--base",
        &b,
        "--target",
        &t,
        "--out",
        rec.to_str().unwrap(),
        "--format",
        "sql,parquet",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Every file stays inside the directory, one Parquet file per table, no two alike.
    let mut parquet = Vec::new();
    let mut pending = vec![rec.clone()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                parquet.push(p);
            }
        }
    }
    assert_eq!(parquet.len(), NAMES.len(), "{parquet:?}");
    for p in &parquet {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                && !name.starts_with('.'),
            "unsafe file name {name:?}"
        );
    }
    assert!(
        !dir.path().join("escape").exists()
            && !dir.path().parent().unwrap().join("escape").exists()
    );

    let out = pgsalvage(&["apply", rec.to_str().unwrap(), "--target", &t, "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = pgsalvage(&["verify", "--base", &b, "--target", &t, "-q"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // restore.sql also runs as psql runs it: undo it with psql and the damage is back.
    crate::support::cluster()
        .psql_file(&target, &rec.join("undo.sql"))
        .unwrap();
    let out = pgsalvage(&["verify", "--base", &b, "--target", &t, "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    crate::support::cluster()
        .psql_file(&target, &rec.join("restore.sql"))
        .unwrap();

    let snap = dir.path().join("baseline");
    let out = pgsalvage(&[
        "baseline",
        "--source",
        &t,
        "--out",
        snap.to_str().unwrap(),
        "--rows",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = pgsalvage(&[
        "verify",
        "--base",
        snap.to_str().unwrap(),
        "--target",
        &b,
        "-q",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
