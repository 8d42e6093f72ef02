//! Issue 22: `--html` pages, looked at in a real headless browser (Debian's Chromium, which
//! scripts/test.sh installs). A verify of real clusters with rows missing, extra and divergent in
//! one part of a table is rendered by the run and again from its JSON by `pgsalvage report`; the
//! page must show the counts it was given, differing tables first, the damage strip, the sample
//! values, hostile names escaped, and no script or console error. A status page with a real lock
//! wait draws its graph. The screenshots are kept under the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pgsalvage::incident::{status, StatusSettings};
use pgsalvage::source::connect::connect;
use pgsalvage::source::conninfo::{resolve, ProcessEnv};
use serde_json::Value;

use crate::support::*;

/// Where the pages and screenshots stay after the test.
fn out_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("html")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the browser made of a page: the DOM after its scripts ran, and its console lines.
struct Rendered {
    dom: String,
    console: Vec<String>,
}

/// Opens `page` in headless Chromium, saves a screenshot next to it and returns the DOM. Fails
/// (never skips) when Chromium is missing: scripts/test.sh installs it.
fn browse(page: &Path) -> Rendered {
    let shot = page.with_extension("png");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2000",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}); scripts/test.sh installs it (apt-get install chromium)"
            )
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        text(&out.stderr)
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot {}: {e}", shot.display()));
    assert!(png.len() > 1000, "screenshot of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let console = text(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    Rendered {
        dom: text(&out.stdout),
        console,
    }
}

/// The page ran its scripts to the end and reported no error.
fn assert_clean(r: &Rendered) {
    assert!(r.console.is_empty(), "console: {:?}", r.console);
    assert!(
        r.dom.contains("data-rendered=\"yes\""),
        "scripts did not run:\n{}",
        r.dom
    );
    assert!(
        r.dom.contains("<div id=\"js-errors\" hidden=\"\"></div>"),
        "script errors in the page:\n{}",
        r.dom
    );
}

/// The card of one table, as the browser has it: from the card holding `needle` (in its
/// attributes or its text) to the next card.
fn card<'a>(dom: &'a str, needle: &str) -> &'a str {
    let at = dom
        .find(needle)
        .unwrap_or_else(|| panic!("no card with {needle}"));
    let start = dom[..at].rfind("<div class=\"table ").expect("a card");
    let rest = &dom[start..];
    let end = rest[1..]
        .find("<div class=\"table ")
        .map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

fn count_in(card: &str, class: &str) -> u64 {
    let needle = format!("data-class=\"{class}\" data-n=\"");
    let at = card
        .find(&needle)
        .unwrap_or_else(|| panic!("no {class} in {card}"))
        + needle.len();
    card[at..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn a_verify_page_shows_its_counts_in_a_browser() {
    let (base, target) = pair(
        "html",
        "CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric);
         INSERT INTO orders SELECT g, 'shipped', g * 1.5 FROM generate_series(1, 2000) g;
         CREATE TABLE t2 (id int PRIMARY KEY); INSERT INTO t2 VALUES (1);
         CREATE TABLE t10 (id int PRIMARY KEY); INSERT INTO t10 VALUES (1);
         CREATE TABLE \"we<ird \"\"na'me\"\"\n>\" (id int PRIMARY KEY, v text);
         INSERT INTO \"we<ird \"\"na'me\"\"\n>\" VALUES (1, 'a'), (2, '<b>');",
    );
    // Damage in the last tenth of the orders' keys only.
    psql(
        &target,
        "DELETE FROM orders WHERE id IN (1901, 1950, 1990);
         UPDATE orders SET status = 'pending</td>' WHERE id IN (1920, 1930);
         INSERT INTO orders VALUES (2001, 'new', 1);
         UPDATE \"we<ird \"\"na'me\"\"\n>\" SET v = '<i>' WHERE id = 2;",
    );
    let dir = out_dir("verify");
    let (json, page, again) = (
        dir.join("r.json"),
        dir.join("run.html"),
        dir.join("again.html"),
    );
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--json",
        json.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
        "--show-values",
        "5",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "pgsalvage.verify/2");
    let orders = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.orders")
        .unwrap();
    let buckets: Vec<u64> = orders["damage_map"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(buckets.len(), 64);
    assert_eq!(buckets.iter().sum::<u64>(), 6, "{buckets:?}");
    assert_eq!(
        buckets[..56].iter().sum::<u64>(),
        0,
        "damage placed early: {buckets:?}"
    );

    let rendered = browse(&page);
    assert_clean(&rendered);
    let dom = &rendered.dom;
    assert!(dom.contains("id=\"verdict\">DIFFERENCES<"), "{dom}");
    let orders = card(dom, "data-table=\"public.orders\"");
    assert_eq!(count_in(orders, "missing"), 3);
    assert_eq!(count_in(orders, "extra"), 1);
    assert_eq!(count_in(orders, "divergent"), 2);
    assert!(orders.contains("<svg class=\"strip\""), "{orders}");
    assert!(orders.contains("clustered"), "{orders}");
    assert!(
        orders.contains("&#39;shipped&#39;") || orders.contains("'shipped'"),
        "{orders}"
    );
    assert!(orders.contains("pending&lt;/td&gt;"), "{orders}");
    assert!(dom.contains("id=\"total-missing\" data-n=\"3\""), "{dom}");
    // The hostile name is text, the newline shown as an escape; its values too.
    let weird = card(dom, "<code>public.we&lt;ird \"na'me\"\\n&gt;</code>");
    assert_eq!(count_in(weird, "divergent"), 1);
    assert!(
        weird.contains("&lt;i&gt;") && !weird.contains("<i>"),
        "{weird}"
    );
    // Differing tables first, then the rest in natural order.
    let at = |t: &str| dom.find(&format!("data-table=\"{t}\"")).unwrap();
    assert!(at("public.orders") < at("public.t2"));
    assert!(at("public.t2") < at("public.t10"));
    assert!(dom.contains("data-tables-shown=\"4\""), "tables shown");
    // The footer names the tool and the command line, without secrets.
    assert!(dom.contains("pgsalvage 0.1.0 (commit "), "{dom}");
    assert!(dom.contains("--show-values 5"), "{dom}");

    // The same page again from the saved JSON.
    let out = pgsalvage(&[
        "report",
        json.to_str().unwrap(),
        "--html",
        again.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let second = browse(&again);
    assert_clean(&second);
    let orders = card(&second.dom, "data-table=\"public.orders\"");
    assert_eq!(count_in(orders, "missing"), 3);
    assert_eq!(count_in(orders, "divergent"), 2);
}

/// A page with more rows than it lists says it was cut, and stays small.
#[test]
fn a_large_diff_makes_a_small_page_that_says_it_is_capped() {
    let (base, target) = pair(
        "html_big",
        "CREATE TABLE big (id int PRIMARY KEY, v int);
         INSERT INTO big SELECT g, g FROM generate_series(1, 50000) g;",
    );
    psql(&target, "UPDATE big SET v = -v WHERE id % 2 = 0");
    let dir = out_dir("big");
    let page = dir.join("big.html");
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--html",
        page.to_str().unwrap(),
        "--show-values",
        "1000",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.len() < 200_000, "{} bytes", html.len());
    assert!(html.contains("data-class=\"divergent\" data-n=\"25000\""));
    assert!(
        html.contains("spread"),
        "damage all over the table reads as spread"
    );
    let rendered = browse(&page);
    assert_clean(&rendered);
    assert!(
        rendered.dom.contains("the JSON report has them all")
            || rendered.dom.contains("class=\"capped\"")
    );
}

#[test]
fn a_status_page_draws_who_blocks_whom() {
    let db = fresh_db("html_locks");
    psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let info = resolve(&url(&db), &ProcessEnv).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        let holder = connect(&info).await.unwrap();
        holder
            .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let waiter = connect(&info).await.unwrap();
        let waiting = tokio::spawn(async move {
            waiter
                .query_one("SELECT count(*) FROM t", &[])
                .await
                .map(drop)
        });
        let settings = StatusSettings::new(info.clone());
        let deadline = Instant::now() + Duration::from_secs(20);
        let report = loop {
            let r = status(&settings).await.unwrap();
            if !r.lock_waits.is_empty() {
                break r;
            }
            assert!(Instant::now() < deadline, "no lock wait seen");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        holder.batch_execute("ROLLBACK").await.unwrap();
        waiting.await.unwrap().unwrap();
        report
    });
    let value = serde_json::to_value(&report).unwrap();
    let html = pgsalvage::report::html::render(&value, &[]).unwrap();
    let dir = out_dir("status");
    let page = dir.join("status.html");
    std::fs::write(&page, html).unwrap();
    let rendered = browse(&page);
    assert_clean(&rendered);
    let dom = &rendered.dom;
    assert!(dom.contains("id=\"lock-graph\""), "{dom}");
    assert_eq!(dom.matches("class=\"edge\"").count(), 1, "{dom}");
    assert_eq!(dom.matches("class=\"node\"").count(), 2, "{dom}");
    assert!(dom.contains("(blocks others)"), "{dom}");
    assert!(dom.contains("SELECT count(*) FROM t"), "{dom}");
}
