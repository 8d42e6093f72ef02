//! COPY streams read off a tapped session's socket, against a real server: rows arrive whole and
//! in order, notices in the stream are skipped, an error raised midway is reported with the
//! server's message and leaves the session usable, and a reader abandoned midway ends the session
//! (its client reports a closed connection) instead of leaving the protocol out of step.

use pgsalvage::rows::batch::CopyDecoder;
use pgsalvage::source::connect::connect;
use pgsalvage::source::conninfo::{resolve, ProcessEnv};
use pgsalvage::source::tapped_copy::TappedCopy;
use pgsalvage::source::Session;

use crate::support::{fresh_db, url};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn session(db: &str) -> Session {
    let info = resolve(&url(db), &ProcessEnv).expect("url");
    connect(&info).await.expect("connect")
}

/// Runs `query` through the tap: the values of its first (int8) column, or the error.
async fn tapped(session: &Session, query: &str) -> Result<Vec<i64>, String> {
    let within = std::time::Duration::from_secs(60);
    tokio::time::timeout(within, tapped_rows(session, query))
        .await
        .unwrap_or_else(|_| panic!("{query} did not end within {within:?}"))
}

async fn tapped_rows(session: &Session, query: &str) -> Result<Vec<i64>, String> {
    let socket = session
        .divert()
        .await
        .map_err(|e| e.to_string())?
        .expect("a plain session can be tapped");
    let mut copy = TappedCopy::start(socket, query)
        .await
        .map_err(|e| e.to_string())?;
    let mut decoder = CopyDecoder::new(1);
    let mut values = Vec::new();
    loop {
        let more = copy.feed(&mut decoder).await.map_err(|e| e.to_string());
        if let Some(batch) = decoder.take_batch() {
            for row in 0..batch.len() {
                let raw = batch.field(row, 0).expect("not null");
                values.push(i64::from_be_bytes(raw.try_into().expect("int8")));
            }
        }
        if !more? {
            return Ok(values);
        }
    }
}

/// A reply the socket's low-water mark held back would hang here: fail instead.
async fn one(session: &Session, sql: &str) -> i64 {
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        session.query_one(sql, &[]),
    );
    reply
        .await
        .unwrap_or_else(|_| panic!("no reply to {sql} within 20 s"))
        .expect(sql)
        .get(0)
}

#[test]
fn tapped_copies_read_rows_skip_notices_report_errors_and_keep_the_session() {
    let db = fresh_db("tap");
    runtime().block_on(async {
        let s = session(&db).await;
        s.batch_execute(
            "CREATE FUNCTION noisy(g int8) RETURNS int8 LANGUAGE plpgsql AS $$
             BEGIN IF g % 10000 = 0 THEN RAISE NOTICE 'at %', g; END IF; RETURN g; END $$",
        )
        .await
        .expect("function");
        let rows = tapped(
            &s,
            "COPY (SELECT noisy(g) FROM generate_series(1::int8, 200000) g) TO STDOUT (FORMAT binary)",
        )
        .await
        .expect("copy");
        assert_eq!(rows, (1..=200_000).collect::<Vec<i64>>());
        // The socket went back in step: the client works, and another COPY can be tapped.
        assert_eq!(one(&s, "SELECT 41::int8 + 1").await, 42);

        // A statement tokio-postgres drops is closed by a message whose replies it does not
        // wait for: a diversion right after must not take them for its own.
        for n in 1..=30i64 {
            assert_eq!(one(&s, &format!("SELECT {n}::int8")).await, n);
            let copy = format!(
                "COPY (SELECT g FROM generate_series(1::int8, {n}) g) TO STDOUT (FORMAT binary)"
            );
            assert_eq!(tapped(&s, &copy).await.expect("copy").len() as i64, n);
        }

        let failed = tapped(
            &s,
            "COPY (SELECT 100000 / (g - 150000) FROM generate_series(1::int8, 200000) g) TO STDOUT (FORMAT binary)",
        )
        .await
        .unwrap_err();
        assert_eq!(failed, "error: division by zero");
        assert_eq!(one(&s, "SELECT 7::int8").await, 7);

        let not_copy = tapped(&s, "SELECT 1").await.unwrap_err();
        assert!(not_copy.contains("protocol error"), "{not_copy}");
    });
}

#[test]
fn an_abandoned_tapped_copy_ends_the_session() {
    let db = fresh_db("tap_drop");
    runtime().block_on(async {
        let s = session(&db).await;
        let socket = s.divert().await.expect("sync").expect("tap");
        assert!(s.tap().divert().is_none(), "one diversion at a time");
        let mut copy = TappedCopy::start(
            socket,
            "COPY (SELECT g FROM generate_series(1::int8, 10000000) g) TO STDOUT (FORMAT binary)",
        )
        .await
        .expect("start");
        let mut decoder = CopyDecoder::new(1);
        assert!(copy.feed(&mut decoder).await.expect("first bytes"));
        drop(copy);
        // The connection task ends on the broken socket: the client says its connection closed.
        let err = s.query_one("SELECT 1", &[]).await.unwrap_err();
        assert!(err.is_closed(), "{err:?}");
        assert!(!s.tap().tappable(), "a broken session is not tapped");
        // Other sessions are unaffected.
        let other = session(&db).await;
        assert_eq!(one(&other, "SELECT 3::int8").await, 3);
    });
}
