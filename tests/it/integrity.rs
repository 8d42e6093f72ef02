//! A recovery directory cannot be misapplied (issue 19): apply runs only what recover wrote and
//! sealed, only on the database recover compared, and only once.

use crate::support::{pair, pgsalvage, psql, text, url};

const SHOP: &str = "CREATE TABLE t (id int PRIMARY KEY, v text);
     INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g;";

/// A damaged target, its recovery directory (in a temporary directory kept by the caller).
fn recovered(tag: &str) -> (String, String, tempfile::TempDir) {
    let (base, target) = pair(tag, SHOP);
    psql(
        &target,
        "DELETE FROM t WHERE id <= 10; UPDATE t SET v = NULL WHERE id > 190",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let run = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    (base, target, dir)
}

fn apply(dir: &tempfile::TempDir, target: &str, extra: &[&str]) -> std::process::Output {
    let out = dir.path().join("r");
    let mut args = vec!["apply", out.to_str().unwrap(), "--target"];
    let target = url(target);
    args.push(&target);
    args.extend(extra);
    args.push("-q");
    pgsalvage(&args)
}

fn rows(db: &str) -> String {
    psql(db, "SELECT count(*) || '/' || count(v) FROM t")
}

#[test]
fn a_statement_added_to_the_script_is_refused_and_nothing_runs() {
    let (_, target, dir) = recovered("tamper");
    let script = dir.path().join("r/restore.sql");
    let text_before = std::fs::read_to_string(&script).unwrap();
    for evil in [
        text_before.replacen("BEGIN;", "BEGIN;\nDROP TABLE t;", 1),
        format!("{text_before}DELETE FROM t;\n"),
    ] {
        std::fs::write(&script, &evil).unwrap();
        let out = apply(&dir, &target, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("was modified after recover wrote it: restore.sql was changed"),
            "{stderr}"
        );
        assert_eq!(rows(&target).trim(), "190/180", "the table was touched");
    }
    std::fs::write(&script, &text_before).unwrap();
    let out = apply(&dir, &target, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(rows(&target).trim(), "200/200");
}

#[test]
fn an_added_or_removed_file_is_refused() {
    let (_, target, dir) = recovered("extra");
    let evil = dir.path().join("r/keys/evil.sql");
    std::fs::write(&evil, "DELETE FROM t;").unwrap();
    let out = apply(&dir, &target, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("keys/evil.sql was added"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&evil).unwrap();
    let undo = dir.path().join("r/undo.sql");
    let kept = std::fs::read(&undo).unwrap();
    std::fs::remove_file(&undo).unwrap();
    let out = apply(&dir, &target, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("undo.sql was removed"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&undo, kept).unwrap();
    assert_eq!(rows(&target).trim(), "190/180");
}

#[test]
fn another_database_of_the_same_shape_is_refused() {
    let (_, target, dir) = recovered("otherdb");
    let twin = format!("{target}_twin");
    psql(
        "postgres",
        &format!("CREATE DATABASE \"{twin}\" TEMPLATE \"{target}\""),
    );
    for flags in [&[][..], &["--skip-changed"][..], &["--dry-run"][..]] {
        let out = apply(&dir, &twin, flags);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "this recovery was computed against database {target} (oid "
            )),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("not {twin} (oid ")), "{stderr}");
        assert!(stderr.contains("nothing was applied"), "{stderr}");
    }
    assert_eq!(rows(&twin).trim(), "190/180");
}

#[test]
fn a_plan_applied_once_is_refused_as_already_applied() {
    let (base, target, dir) = recovered("twice");
    // A dry run commits nothing and leaves no marker.
    let out = apply(&dir, &target, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!dir.path().join("r/applied.json").exists());
    let out = apply(&dir, &target, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.path().join("r/applied.json").exists());
    let again = apply(&dir, &target, &[]);
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was already applied: it was committed to database"),
        "{stderr}"
    );
    // Without its marker (a copy of the directory), the rows themselves say it.
    std::fs::remove_file(dir.path().join("r/applied.json")).unwrap();
    let again = apply(&dir, &target, &[]);
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "was already applied: every row it restores already holds its restored value"
        ),
        "{stderr}"
    );
    let same = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "-q",
    ]);
    assert_eq!(same.status.code(), Some(0));
}

fn plan_totals(dir: &std::path::Path) -> serde_json::Value {
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    plan["totals"].clone()
}

fn recover_into(out: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["recover", "--out", out.to_str().unwrap(), "-q"];
    all.extend(args);
    pgsalvage(&all)
}

#[test]
fn two_source_recover_keeps_target_only_rows_unless_told_to_delete_them() {
    let (base, target) = pair("keepextra", SHOP);
    psql(
        &target,
        "DELETE FROM t WHERE id = 3; INSERT INTO t VALUES (500, 'a new order')",
    );
    let dir = tempfile::tempdir().unwrap();
    let (b, t) = (url(&base), url(&target));
    let kept = dir.path().join("kept");
    let out = recover_into(&kept, &["--base", &b, "--target", &t]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let totals = plan_totals(&kept);
    assert_eq!(
        (
            totals["insert"].as_u64(),
            totals["delete"].as_u64(),
            totals["keep"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{totals}"
    );
    let deleting = dir.path().join("deleting");
    let out = recover_into(&deleting, &["--base", &b, "--target", &t, "--delete-extra"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let totals = plan_totals(&deleting);
    assert_eq!(
        (
            totals["insert"].as_u64(),
            totals["delete"].as_u64(),
            totals["keep"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{totals}"
    );
    let out = pgsalvage(&["apply", kept.to_str().unwrap(), "--target", &t, "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        psql(&target, "SELECT count(*) FROM t WHERE id IN (3, 500)").trim(),
        "2"
    );
    // --new-on-target is a three-way option, and says so.
    let out = recover_into(
        &dir.path().join("x"),
        &["--base", &b, "--target", &t, "--new-on-target", "delete"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--new-on-target is for three sources"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn three_way_recover_deletes_new_on_target_rows_only_when_asked_and_never_changed_after_ones() {
    let (base, replica) = pair("newtarget", SHOP);
    psql(
        &replica,
        "INSERT INTO t VALUES (300, 'legit, after the backup')",
    );
    let target = format!("{replica}_target");
    psql(
        "postgres",
        &format!("CREATE DATABASE \"{target}\" TEMPLATE \"{replica}\""),
    );
    psql(
        &target,
        "DELETE FROM t WHERE id = 5; INSERT INTO t VALUES (400, 'legit, after the replica'), (401, 'written by the broken migration')",
    );
    let dir = tempfile::tempdir().unwrap();
    let (b, r, t) = (url(&base), url(&replica), url(&target));
    let sides = [
        "--base",
        b.as_str(),
        "--replica",
        r.as_str(),
        "--target",
        t.as_str(),
    ];
    let kept = dir.path().join("kept");
    let out = recover_into(&kept, &sides);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    let totals = plan_totals(&kept);
    assert_eq!(
        (totals["insert"].as_u64(), totals["delete"].as_u64()),
        (Some(1), Some(0)),
        "{totals}"
    );
    let cleaned = dir.path().join("cleaned");
    let mut args = sides.to_vec();
    args.extend([
        "--new-on-target",
        "delete",
        "--changed-after",
        "public.t:id = 400",
    ]);
    let out = recover_into(&cleaned, &args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    let totals = plan_totals(&cleaned);
    assert_eq!(
        (totals["insert"].as_u64(), totals["delete"].as_u64()),
        (Some(1), Some(1)),
        "{totals}"
    );
    let out = pgsalvage(&["apply", cleaned.to_str().unwrap(), "--target", &t, "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        psql(
            &target,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE id IN (5, 300, 400, 401)"
        )
        .trim(),
        "5,300,400"
    );
}

/// A shop whose migration dropped a child table (and the sequence of its serial key).
const DROPPED: &str = "CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL);
     INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 50) g;
     CREATE TABLE line (
         id serial PRIMARY KEY,
         parent_id int NOT NULL REFERENCES parent (id),
         code text NOT NULL DEFAULT 'x' CHECK (code <> ''),
         amount numeric(10, 2),
         note text,
         CONSTRAINT line_code_unique UNIQUE (parent_id, code));
     CREATE INDEX line_amount ON line (amount) WHERE amount > 0;
     INSERT INTO line (parent_id, code, amount, note)
          SELECT g % 50 + 1, 'c' || g, g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE E'n\\t' || g END
            FROM generate_series(1, 300) g;
     CREATE TABLE audit (id int PRIMARY KEY, line_id int REFERENCES line (id));
     INSERT INTO audit SELECT g, g FROM generate_series(1, 20) g;";

fn check_json(base: &str, target: &str) -> serde_json::Value {
    let out = pgsalvage(&[
        "check",
        "--base",
        &url(base),
        "--target",
        &url(target),
        "--json",
        "-",
        "-q",
    ]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json: {e}: {}", text(&out.stderr)))
}

#[test]
fn a_table_only_the_base_has_is_created_then_filled_and_undo_drops_it() {
    let (base, target) = pair("basetable", DROPPED);
    psql(
        &target,
        "DROP TABLE audit; DROP TABLE line; DELETE FROM parent WHERE id = 7",
    );
    let drift = check_json(&base, &target);
    let table = drift["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["object"] == "table" && d["name"] == "public.line")
        .cloned()
        .unwrap_or_else(|| panic!("no drift for the dropped table: {drift}"));
    let ddl = table["ddl"].to_string();
    assert!(ddl.contains(r#"CREATE TABLE \"public\".\"line\""#), "{ddl}");
    assert!(ddl.contains("line_amount"), "{ddl}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (b, t) = (url(&base), url(&target));
    let run = recover_into(&out, &["--base", &b, "--target", &t]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let script = std::fs::read_to_string(out.join("restore.sql")).unwrap();
    let create = script
        .find(r#"CREATE TABLE "public"."line""#)
        .expect("no CREATE TABLE");
    let rows = script.find("COPY \"pgsalvage_").expect("no rows");
    assert!(
        create < rows,
        "the table is created after its rows are loaded"
    );
    // A dry run creates nothing it keeps.
    let dry = apply(&dir, &target, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert_eq!(
        psql(&target, "SELECT to_regclass('line') IS NULL").trim(),
        "t"
    );
    let applied = apply(&dir, &target, &[]);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let same = pgsalvage(&["verify", "--base", &b, "--target", &t, "-q"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stdout));
    let drift = check_json(&base, &target);
    assert_eq!(drift["drift"], serde_json::json!([]), "{drift}");
    // The sequence goes on where the base's was.
    let next = psql(
        &target,
        "INSERT INTO line (parent_id) VALUES (1) RETURNING id",
    );
    assert_eq!(next.trim(), "301");
    psql(&target, "DELETE FROM line WHERE id = 301");
    cluster_psql_file(&target, &out.join("undo.sql"));
    assert_eq!(
        psql(
            &target,
            "SELECT to_regclass('line') IS NULL AND to_regclass('audit') IS NULL"
        )
        .trim(),
        "t"
    );
    assert_eq!(psql(&target, "SELECT count(*) FROM parent").trim(), "49");
}

fn cluster_psql_file(db: &str, path: &std::path::Path) {
    crate::support::cluster()
        .psql_file(db, path)
        .unwrap_or_else(|e| panic!("psql -f {}: {e}", path.display()));
}

#[test]
fn a_table_dropped_with_cascade_comes_back_with_its_identity_and_its_referrers_keys() {
    let sql = format!(
        "{DROPPED}
         CREATE TABLE tagged (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tag text COLLATE \"C\");
         INSERT INTO tagged (tag) SELECT 't' || g FROM generate_series(1, 40) g;"
    );
    let (base, target) = pair("cascade", &sql);
    psql(&target, "DROP TABLE line CASCADE; DROP TABLE tagged");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (b, t) = (url(&base), url(&target));
    let run = recover_into(&out, &["--base", &b, "--target", &t]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let applied = apply(&dir, &target, &[]);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let same = pgsalvage(&["verify", "--base", &b, "--target", &t, "-q"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stdout));
    let report = check_json(&base, &target);
    assert_eq!(report["drift"], serde_json::json!([]), "{report}");
    // audit's key to line came back, not yet validated: line was not there to check against.
    let audit_fk = psql(
        &target,
        "SELECT convalidated FROM pg_constraint WHERE conname = 'audit_line_id_fkey'",
    );
    assert_eq!(audit_fk.trim(), "f");
    let next = psql(
        &target,
        "INSERT INTO tagged (tag) VALUES ('new') RETURNING id",
    );
    assert_eq!(next.trim(), "41");
    let collation = psql(
        &target,
        "SELECT collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
          WHERE attrelid = 'tagged'::regclass AND attname = 'tag'",
    );
    assert_eq!(collation.trim(), "C");
}
