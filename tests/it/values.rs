//! Values a person can read (issue 19): `--show-values N` prints, for up to N divergent rows per
//! table, each differing column as base → target, and the JSON report carries the same.

use crate::support::{pair, pgsalvage, psql, text, url};

#[test]
fn show_values_prints_and_reports_the_differing_columns_of_the_first_rows() {
    let (base, target) = pair(
        "values",
        "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(8,2), big text);
         INSERT INTO t SELECT g, 'v' || g, g * 1.5, 'small' FROM generate_series(1, 50) g;",
    );
    psql(
        &target,
        "UPDATE t SET v = 'damaged' WHERE id BETWEEN 1 AND 5;
         UPDATE t SET n = NULL WHERE id = 2;
         UPDATE t SET big = repeat('x', 1000) WHERE id = 3;
         UPDATE t SET v = E'two\\nlines' WHERE id = 40;",
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let (b, t) = (url(&base), url(&target));
    let out = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "--show-values",
        "3",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  public.t [1] v: 'v1' → 'damaged'\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  public.t [2] n: '3.00' → NULL\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  public.t [3] big: 'small' → 'xxxxxxxx"),
        "{stdout}"
    );
    assert!(stdout.contains("… (1000 bytes)'\n"), "{stdout}");
    let shown_keys: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  public.t ["))
        .map(|l| l.split(' ').nth(3).unwrap())
        .collect();
    assert_eq!(shown_keys.len(), 3, "{stdout}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let with_values: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("values").is_some())
        .collect();
    assert_eq!(with_values.len(), 3);
    let first = with_values
        .iter()
        .find(|f| f["key"] == serde_json::json!([2]))
        .expect("key 2 shown");
    assert_eq!(
        first["values"]["n"],
        serde_json::json!({"base": "3.00", "target": null})
    );
    assert_eq!(
        first["values"]["v"],
        serde_json::json!({"base": "v2", "target": "damaged"})
    );

    // A newline in a value cannot break a line of the summary.
    let out = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "--show-values",
        "50",
        "--tables",
        "public.t",
    ]);
    assert!(
        text(&out.stdout).contains("  public.t [40] v: 'v40' → 'two\\nlines'\n"),
        "{}",
        text(&out.stdout)
    );

    // Without the flag, no values anywhere.
    let out = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stdout).contains("→"));
    assert!(!std::fs::read_to_string(&json)
        .unwrap()
        .contains("\"values\""));
}
