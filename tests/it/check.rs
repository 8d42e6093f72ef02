//! check and its fix-ups on real clusters: a failed migration that left orphans three levels
//! deep, NOT VALID constraints, a sequence behind its table, a dropped column, a dropped unique
//! index with duplicates, a NULL under a lost NOT NULL and a changed default. check finds each
//! exactly; recover + apply (the binary) leave a database where check finds nothing and every
//! constraint is validated.

use pgsalvage::check::report::CheckReport;
use pgsalvage::check::{check, CheckSettings};
use pgsalvage::settings::TableFilter;
use pgsalvage::source::conninfo::{resolve, ProcessEnv};
use serde_json::Value;

use crate::support::*;

pub const BASE: &str = "
CREATE TABLE grandparents (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE parents (id int PRIMARY KEY, gp_id int NOT NULL CONSTRAINT parents_gp_fk REFERENCES grandparents, name text);
CREATE TABLE children (id bigint PRIMARY KEY, parent_id int CONSTRAINT children_parent_fk REFERENCES parents, note text);
CREATE TABLE accounts (id int PRIMARY KEY, email text);
CREATE TABLE orders (id int PRIMARY KEY, account_id int CONSTRAINT orders_account_fk REFERENCES accounts);
CREATE TABLE items (id serial PRIMARY KEY, code text NOT NULL, qty int NOT NULL CONSTRAINT items_qty_check CHECK (qty >= 0),
                    status text NOT NULL DEFAULT 'new', legacy text);
CREATE UNIQUE INDEX items_code_key ON items (code);
INSERT INTO grandparents SELECT g, 'gp' || g FROM generate_series(1, 4) g;
INSERT INTO parents SELECT g, 1 + g % 4, 'p' || g FROM generate_series(1, 20) g;
INSERT INTO children SELECT g, 1 + g % 20, 'c' || g FROM generate_series(1, 100) g;
INSERT INTO children VALUES (1000, NULL, 'no parent: not an orphan under MATCH SIMPLE');
INSERT INTO accounts SELECT g, 'a' || g || '@example.com' FROM generate_series(1, 10) g;
INSERT INTO orders SELECT g, g FROM generate_series(1, 10) g;
INSERT INTO items (code, qty, legacy) SELECT 'code' || g, g, 'L' || g FROM generate_series(1, 30) g;
SELECT setval('items_id_seq', 40);
";

/// What a migration that failed half way leaves: foreign keys dropped, rows deleted from the top
/// of the hierarchy, constraints re-added NOT VALID, and the rest of the damage.
pub const DAMAGE: &str = "
ALTER TABLE parents DROP CONSTRAINT parents_gp_fk;
ALTER TABLE children DROP CONSTRAINT children_parent_fk;
ALTER TABLE orders DROP CONSTRAINT orders_account_fk;
ALTER TABLE items DROP CONSTRAINT items_qty_check;
DELETE FROM grandparents WHERE id IN (2, 3);
DELETE FROM parents WHERE gp_id = 3;
DELETE FROM parents WHERE id IN (5, 9);
ALTER TABLE parents ADD CONSTRAINT parents_gp_fk FOREIGN KEY (gp_id) REFERENCES grandparents NOT VALID;
ALTER TABLE children ADD CONSTRAINT children_parent_fk FOREIGN KEY (parent_id) REFERENCES parents NOT VALID;
INSERT INTO orders VALUES (11, 99), (12, 98), (13, NULL);
ALTER TABLE orders ADD CONSTRAINT orders_account_fk FOREIGN KEY (account_id) REFERENCES accounts NOT VALID;
UPDATE items SET qty = -qty WHERE id IN (3, 7);
ALTER TABLE items ADD CONSTRAINT items_qty_check CHECK (qty >= 0) NOT VALID;
SELECT setval('items_id_seq', 10);
ALTER TABLE items DROP COLUMN legacy;
DROP INDEX items_code_key;
UPDATE items SET code = 'code1' WHERE id = 2;
ALTER TABLE items ALTER COLUMN status SET DEFAULT 'pending';
ALTER TABLE items ALTER COLUMN status DROP NOT NULL;
UPDATE items SET status = NULL WHERE id = 4;
";

fn damaged_pair(tag: &str) -> (String, String) {
    let (base, target) = pair(tag, BASE);
    psql(&target, DAMAGE);
    (base, target)
}

fn run_check(target: &str, base: Option<&str>) -> CheckReport {
    let settings = CheckSettings {
        target: resolve(&url(target), &ProcessEnv).unwrap(),
        base: base.map(|b| resolve(&url(b), &ProcessEnv).unwrap()),
        filter: TableFilter::default(),
        keys: Default::default(),
        max_keys: 1000,
        json: None,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(check(&settings))
        .unwrap_or_else(|e| panic!("check: {e}"))
}

fn keys(list: &[Box<serde_json::value::RawValue>]) -> Vec<String> {
    list.iter().map(|k| k.get().to_string()).collect()
}

fn ints(values: &[i64]) -> Vec<String> {
    values.iter().map(|v| format!("[{v}]")).collect()
}

/// The children whose parent the damage deleted: parent_id = 1 + id % 20.
fn orphaned_children() -> Vec<i64> {
    let gone = [2, 5, 6, 9, 10, 14, 18];
    (1..=100).filter(|g| gone.contains(&(1 + g % 20))).collect()
}

#[test]
fn check_finds_each_problem_exactly() {
    let (base, target) = damaged_pair("check_scenario");
    let r = run_check(&target, Some(&base));
    assert_eq!(r.exit_code, 1);

    let nv: Vec<(&str, &str, u64)> = r
        .not_validated
        .iter()
        .map(|f| {
            let rows = f.violations.as_ref().unwrap().rows;
            (f.table.as_str(), f.constraint.as_str(), rows)
        })
        .collect();
    assert_eq!(
        nv,
        [
            ("public.children", "children_parent_fk", 35),
            ("public.items", "items_qty_check", 2),
            ("public.orders", "orders_account_fk", 2),
            ("public.parents", "parents_gp_fk", 3),
        ]
    );
    let check_keys = keys(&r.not_validated[1].violations.as_ref().unwrap().keys);
    assert_eq!(check_keys, ints(&[3, 7]));

    assert_eq!(r.orphans.len(), 3, "{:#?}", r.orphans);
    let children = &r.orphans[0];
    assert_eq!(children.constraint, "children_parent_fk");
    assert_eq!(children.orphans.rows, 35);
    assert_eq!(keys(&children.orphans.keys), ints(&orphaned_children()));
    assert_eq!(children.missing_parents, 7);
    assert_eq!(keys(&children.parent_keys), ints(&[10, 14, 18, 2, 5, 6, 9]));
    assert_eq!(
        (children.restorable_parents, children.unrestorable_parents),
        (Some(7), Some(0))
    );
    let orders = &r.orphans[1];
    assert_eq!(
        (orders.constraint.as_str(), orders.orphans.rows),
        ("orders_account_fk", 2)
    );
    assert_eq!(keys(&orders.orphans.keys), ints(&[11, 12]));
    assert_eq!(
        (orders.restorable_parents, orders.unrestorable_parents),
        (Some(0), Some(2))
    );
    let parents = &r.orphans[2];
    assert_eq!(keys(&parents.orphans.keys), ints(&[1, 13, 17]));
    assert_eq!(keys(&parents.parent_keys), ints(&[2]));

    // Grandparent 3 lost all its parents: only the chain up from the children reaches it.
    let chain: Vec<(&str, Vec<String>)> = r
        .parent_restores
        .iter()
        .map(|p| (p.table.as_str(), keys(&p.keys)))
        .collect();
    assert_eq!(
        chain,
        [
            ("public.grandparents", ints(&[2, 3])),
            ("public.parents", ints(&[2, 5, 6, 9, 10, 14, 18])),
        ]
    );

    assert_eq!(r.sequences.len(), 1);
    let s = &r.sequences[0];
    assert_eq!(s.sequence, "public.items_id_seq");
    assert_eq!(
        (
            s.last_value,
            s.next_value,
            s.max,
            s.base_last_value,
            s.setval
        ),
        (Some(10), 11, 30, Some(40), 40)
    );

    assert_eq!(r.not_null.len(), 1);
    assert_eq!(
        (r.not_null[0].table.as_str(), r.not_null[0].column.as_str()),
        ("public.items", "status")
    );
    assert_eq!(keys(&r.not_null[0].nulls.keys), ints(&[4]));

    assert_eq!(r.duplicates.len(), 1);
    let d = &r.duplicates[0];
    assert_eq!((d.name.as_str(), d.groups), ("items_code_key", 1));
    assert_eq!(keys(&d.duplicates.keys), ints(&[1, 2]));
    assert_eq!(keys(&d.values), ["[\"code1\"]"]);

    let drift: Vec<String> = r
        .drift
        .iter()
        .map(|d| {
            format!(
                "{:?} {:?} {} {} {}",
                d.object,
                d.change,
                d.name,
                d.aspect.unwrap_or("-"),
                d.ddl.join("; ")
            )
        })
        .collect();
    assert_eq!(
        drift,
        [
            "Column Different status nullability ALTER TABLE \"public\".\"items\" ALTER COLUMN \"status\" SET NOT NULL",
            "Column Different status default ALTER TABLE \"public\".\"items\" ALTER COLUMN \"status\" SET DEFAULT 'new'::text",
            "Column Missing legacy - ALTER TABLE \"public\".\"items\" ADD COLUMN \"legacy\" text",
            "Index Missing items_code_key - CREATE UNIQUE INDEX items_code_key ON public.items USING btree (code)",
        ]
    );
}

#[test]
fn check_without_a_base_reports_what_the_target_alone_shows() {
    let (_base, target) = damaged_pair("check_alone");
    let r = run_check(&target, None);
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.not_validated.len(), 4);
    assert_eq!(r.orphans.len(), 3);
    assert_eq!(r.orphans[0].restorable_parents, None);
    assert!(r.parent_restores.is_empty() && r.drift.is_empty() && r.not_null.is_empty());
    assert_eq!(r.sequences.len(), 1);
    assert_eq!(
        (r.sequences[0].base_last_value, r.sequences[0].setval),
        (None, 30)
    );
}

#[test]
fn a_clean_pair_checks_clean_through_the_binary() {
    let (base, target) = pair("check_clean", BASE);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("check.json");
    let out = pgsalvage(&[
        "check",
        "--target",
        &url(&target),
        "--base",
        &url(&base),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("check: clean\n"),
        "{}",
        text(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "pgsalvage.check/2");
    assert_eq!(report["verdict"], "clean");
    assert_eq!(report["exit_code"], 0);
    for list in [
        "not_validated",
        "orphans",
        "sequences",
        "not_null",
        "duplicates",
        "drift",
    ] {
        assert_eq!(report[list], Value::Array(vec![]), "{list}");
    }
    assert!(report["sources"]["base"]["snapshot_id"].is_string());
}

#[test]
fn problems_exit_1_with_the_json_and_errors_exit_2() {
    let (base, target) = damaged_pair("check_cli");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("c.json");
    let out = pgsalvage(&[
        "check",
        "--target",
        &url(&target),
        "--base",
        &url(&base),
        "--json",
        json.to_str().unwrap(),
        "--max-keys",
        "2",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("check: problems: 4 not validated, 40 orphans"));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let children = &report["orphans"][0]["orphans"];
    assert_eq!(children["rows"], 35);
    assert_eq!(children["keys"], serde_json::json!([[1], [4]]));
    assert_eq!(children["keys_truncated"], true);
    assert_eq!(report["totals"]["orphans"], 40);

    let unreachable = pgsalvage(&["check", "--target", "postgresql://127.0.0.1:1/nothing"]);
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(text(&unreachable.stderr).starts_with("error: "));
}

fn unvalidated(db: &str) -> String {
    psql(
        db,
        "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE n.nspname = 'public' AND NOT c.convalidated",
    )
    .trim()
    .to_string()
}

#[test]
fn recover_and_apply_leave_nothing_for_check() {
    let (base, target) = damaged_pair("check_fix");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recovery");
    let out_str = out.to_str().unwrap();
    let recovered = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        out_str,
        "--delete-extra",
        "--quiet",
    ]);
    assert_eq!(
        recovered.status.code(),
        Some(1),
        "{}",
        text(&recovered.stderr)
    );

    let plan: Value =
        serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap();
    let steps: Vec<String> = plan["fixups"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {}",
                s["stage"].as_str().unwrap(),
                s["kind"].as_str().unwrap(),
                s["object"].as_str().unwrap(),
                s["active"]
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "before_rows add_column public.items.legacy true",
            "before_rows set_default public.items.status true",
            "before_rows restore_parents public.grandparents true",
            "before_rows restore_parents public.parents true",
            "after_rows copy_column public.items.legacy true",
            "after_rows create_index public.items.items_code_key true",
            "after_rows validate public.children.children_parent_fk true",
            "after_rows validate public.items.items_qty_check true",
            "after_rows validate public.orders.orders_account_fk true",
            "after_rows validate public.parents.parents_gp_fk true",
            "after_rows set_not_null public.items.status true",
            "after_rows setval public.items_id_seq true",
        ]
    );
    assert_eq!(
        plan["fixups"]["insert_tables"],
        serde_json::json!(["public.grandparents", "public.parents"])
    );

    let dry = pgsalvage(&["apply", out_str, "--target", &url(&target), "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let listed = text(&dry.stdout);
    // Every step is listed in the order it runs, fix-ups included; setval, which a rollback
    // would not undo, is listed where it stands, as not run.
    assert!(
        listed.contains("not run (dry run)  SELECT setval("),
        "{listed}"
    );
    assert!(listed.contains("done  ALTER TABLE"), "{listed}");
    assert!(listed.contains("VALIDATE CONSTRAINT"), "{listed}");
    let first = listed.lines().find(|l| {
        l.contains("  ")
            && (l.contains(" rows  ") || l.contains("done  ") || l.contains("(dry run)  "))
    });
    assert!(
        !first.unwrap_or("").contains("setval"),
        "setval listed first: {listed}"
    );
    assert_eq!(unvalidated(&target), "4", "a dry run changes nothing");
    assert_eq!(
        psql(&target, "SELECT last_value FROM items_id_seq").trim(),
        "10",
        "not even the sequence"
    );

    let applied = pgsalvage(&["apply", out_str, "--target", &url(&target)]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );

    let after = pgsalvage(&["check", "--target", &url(&target), "--base", &url(&base)]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
    assert_eq!(unvalidated(&target), "0");
    assert_eq!(
        verify(&base, &target).exit_code,
        0,
        "the rows are the base's again"
    );
    assert_eq!(
        psql(
            &target,
            "SELECT string_agg(legacy, ',' ORDER BY id) FROM items WHERE id <= 3"
        )
        .trim(),
        "L1,L2,L3",
        "the dropped column has the base's values"
    );
    assert_eq!(
        psql(&target, "SELECT last_value FROM items_id_seq").trim(),
        "40"
    );
}

fn recover_cli(base: &str, target: &str, out: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "recover".to_string(),
        "--base".into(),
        url(base),
        "--target".into(),
        url(target),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let recovered = pgsalvage(&args);
    assert_eq!(
        recovered.status.code(),
        Some(1),
        "{}",
        text(&recovered.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap()
}

/// The check report as text without the sequence lines (setval is not undone, on purpose).
fn findings_text(target: &str, base: &str) -> String {
    run_check(target, Some(base))
        .human()
        .lines()
        .filter(|l| !l.starts_with("sequence behind") && !l.starts_with("check: "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn restore_sql_then_undo_sql_through_psql_round_trip() {
    let (base, target) = damaged_pair("check_undo");
    let before_rows = found(&verify(&base, &target));
    let before = findings_text(&target, &base);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    recover_cli(&base, &target, &out, &["--delete-extra"]);

    cluster()
        .psql_file(&target, &out.join("restore.sql"))
        .unwrap();
    assert_eq!(run_check(&target, Some(&base)).exit_code, 0);
    assert_eq!(unvalidated(&target), "0");

    cluster().psql_file(&target, &out.join("undo.sql")).unwrap();
    assert_eq!(
        findings_text(&target, &base),
        before,
        "undo brings every finding back"
    );
    assert_eq!(found(&verify(&base, &target)), before_rows, "and every row");
    assert_eq!(unvalidated(&target), "4");
    assert_eq!(
        psql(&target, "SELECT last_value FROM items_id_seq").trim(),
        "40",
        "setval stays"
    );
}

#[test]
fn a_filtered_recover_restores_the_parent_chain_and_leaves_choices_for_the_rest() {
    let (base, target) = damaged_pair("check_filtered");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let plan = recover_cli(
        &base,
        &target,
        &out,
        &["--tables", "public.children,public.orders", "--no-delete"],
    );
    let steps: Vec<String> = plan["fixups"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {}",
                s["kind"].as_str().unwrap(),
                s["object"].as_str().unwrap(),
                s["rows"],
                s["active"]
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "restore_parents public.grandparents 2 true",
            "restore_parents public.parents 7 true",
            "orphans public.orders.orders_account_fk 2 false",
            "validate public.children.children_parent_fk null true",
            "validate public.orders.orders_account_fk null false",
        ]
    );
    let script = std::fs::read_to_string(out.join("restore.sql")).unwrap();
    assert!(script.contains("\n-- DELETE FROM \"public\".\"orders\" AS c WHERE c.\"account_id\" IS NOT NULL AND NOT EXISTS"));
    assert!(
        script.contains("\n-- UPDATE \"public\".\"orders\" AS c SET \"account_id\" = NULL WHERE")
    );
    assert!(script.contains(
        "\n-- ALTER TABLE \"public\".\"orders\" VALIDATE CONSTRAINT \"orders_account_fk\";\n"
    ));

    let applied = pgsalvage(&["apply", out.to_str().unwrap(), "--target", &url(&target)]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    assert_eq!(psql(&target, "SELECT count(*) FROM parents").trim(), "20");
    assert_eq!(
        psql(&target, "SELECT count(*) FROM grandparents").trim(),
        "4"
    );
    let still: Vec<String> = run_check(&target, Some(&base))
        .not_validated
        .iter()
        .map(|f| f.constraint.clone())
        .collect();
    assert_eq!(
        still,
        ["items_qty_check", "orders_account_fk", "parents_gp_fk"]
    );
}

/// `--orphans delete|set-null`: the orphans nothing restores are settled by the recovery (so
/// their key validates), and undo.sql puts them back exactly as they were.
#[test]
fn orphans_nothing_restores_are_deleted_or_nulled_on_request_and_undo_puts_them_back() {
    let orders = |db: &str| psql(db, "SELECT id, account_id FROM orders ORDER BY id");
    let validated = |db: &str| {
        psql(
            db,
            "SELECT convalidated FROM pg_constraint WHERE conname = 'orders_account_fk'",
        )
        .trim()
        .to_string()
    };
    for (choice, left) in [("delete", "1|1"), ("set-null", "11|")] {
        let (base, target) = damaged_pair(&format!("orphans_{}", choice.replace('-', "_")));
        let before = orders(&target);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        let plan = recover_cli(
            &base,
            &target,
            &out,
            &[
                "--tables",
                "public.children,public.orders",
                "--orphans",
                choice,
            ],
        );
        let step = plan["fixups"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "orphans")
            .cloned()
            .unwrap();
        assert_eq!(
            (&step["rows"], &step["active"]),
            (&2.into(), &true.into()),
            "{step}"
        );
        let validate = plan["fixups"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "validate" && s["object"] == "public.orders.orders_account_fk")
            .cloned()
            .unwrap();
        assert_eq!(validate["active"], true, "{validate}");
        let applied = pgsalvage(&[
            "apply",
            out.to_str().unwrap(),
            "--target",
            &url(&target),
            "-q",
        ]);
        assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
        assert_eq!(validated(&target), "t");
        let after = orders(&target);
        assert!(
            after.contains(&format!("\n{left}\n")) || after.starts_with(&format!("{left}\n")),
            "{choice}: {after}"
        );
        assert!(
            !after.contains("|99") && !after.contains("|98"),
            "{choice}: {after}"
        );
        cluster()
            .psql_file(&target, &out.join("undo.sql"))
            .unwrap_or_else(|e| panic!("undo: {e}"));
        assert_eq!(
            orders(&target),
            before,
            "{choice}: undo did not put the orphans back"
        );
        assert_eq!(validated(&target), "f");
    }
}

#[test]
fn lost_constraints_and_a_lost_serial_column_come_back_validated() {
    let (base, target) = pair(
        "check_lost",
        "CREATE TABLE owners (id int PRIMARY KEY, name text);
         CREATE TABLE pets (id int PRIMARY KEY, owner_id int CONSTRAINT pets_owner_fk REFERENCES owners,
                            age int CONSTRAINT pets_age_check CHECK (age >= 0), tag bigserial);
         INSERT INTO owners SELECT g, 'o' || g FROM generate_series(1, 5) g;
         INSERT INTO pets (id, owner_id, age) SELECT g, 1 + g % 5, g FROM generate_series(1, 20) g;",
    );
    psql(
        &target,
        "ALTER TABLE pets DROP CONSTRAINT pets_owner_fk, DROP CONSTRAINT pets_age_check, DROP COLUMN tag;
         DELETE FROM owners WHERE id = 3;
         UPDATE pets SET age = -1 WHERE id = 4;",
    );
    let before = run_check(&target, Some(&base));
    let drift: Vec<String> = before
        .drift
        .iter()
        .map(|d| format!("{:?} {:?} {}", d.object, d.change, d.name))
        .collect();
    assert_eq!(
        drift,
        [
            "Column Missing tag",
            "Constraint Missing pets_age_check",
            "Constraint Missing pets_owner_fk",
            "Sequence Missing public.pets_tag_seq",
        ]
    );
    // The lost foreign key's parents are found on the base all the same.
    let chain: Vec<(&str, Vec<String>)> = before
        .parent_restores
        .iter()
        .map(|p| (p.table.as_str(), keys(&p.keys)))
        .collect();
    assert_eq!(chain, [("public.owners", ints(&[3]))]);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let plan = recover_cli(&base, &target, &out, &[]);
    let steps: Vec<String> = plan["fixups"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s["kind"].as_str().unwrap(),
                s["object"].as_str().unwrap(),
                s["active"]
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "create_sequence public.pets_tag_seq true",
            "add_column public.pets.tag true",
            "restore_parents public.owners true",
            "copy_column public.pets.tag true",
            "set_not_null public.pets.tag true",
            "add_constraint public.pets.pets_age_check true",
            "validate public.pets.pets_age_check true",
            "add_constraint public.pets.pets_owner_fk true",
            "validate public.pets.pets_owner_fk true",
        ]
    );
    let applied = pgsalvage(&["apply", out.to_str().unwrap(), "--target", &url(&target)]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    let after = pgsalvage(&["check", "--target", &url(&target), "--base", &url(&base)]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
    assert_eq!(unvalidated(&target), "0");
    assert_eq!(verify(&base, &target).exit_code, 0);
    assert_eq!(
        psql(
            &target,
            "SELECT string_agg(tag::text, ',' ORDER BY id) FROM pets WHERE id <= 4"
        )
        .trim(),
        "1,2,3,4"
    );
}

#[test]
fn tables_narrow_what_the_binary_checks() {
    let (base, target) = damaged_pair("check_tables");
    let all = pgsalvage(&["check", "--target", &url(&target), "--base", &url(&base)]);
    let all = text(&all.stdout);
    assert!(
        all.contains("public.orders") && all.contains("public.items"),
        "{all}"
    );
    let only = pgsalvage(&[
        "check",
        "--target",
        &url(&target),
        "--base",
        &url(&base),
        "--tables",
        "public.items",
    ]);
    assert_eq!(only.status.code(), Some(1), "{}", text(&only.stderr));
    let only = text(&only.stdout);
    assert!(only.contains("public.items"), "{only}");
    assert!(!only.contains("public.orders"), "{only}");
    let missing = pgsalvage(&[
        "check",
        "--target",
        &url(&target),
        "--tables",
        "public.nope",
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stdout));
    assert!(
        text(&missing.stderr).contains("public.nope"),
        "{}",
        text(&missing.stderr)
    );
}
