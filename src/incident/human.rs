//! The human summary of a status report: the server line, one short block per section (a single
//! line when there is nothing in it), what needs attention with its SQL, then the verdict.
//!
//! Written for a person at 3 a.m.: ages as `5m03s`, sizes as `4.0 KiB`, queries on one line and
//! cut, the advice indented under what it is about, and a last line that says in words whether
//! anything needs attention.

use std::fmt::Write;

use super::activity::Session;
use super::notable::session_state;
use super::replication::{Replica, Replication, ReplicationRole, Slot, StandbyState};
use super::{StatusReport, StatusVerdict};

/// Renders the summary.
pub fn summary(r: &StatusReport) -> String {
    let mut out = String::new();
    let s = &r.server;
    let role = if s.in_recovery {
        "standby (in recovery)"
    } else {
        "primary"
    };
    let _ = writeln!(
        out,
        "{}: PostgreSQL {}, {role}, WAL {}, at {}",
        s.connection,
        s.server_version,
        s.wal_lsn.as_deref().unwrap_or("?"),
        s.time
    );
    migrations(&mut out, r);
    lock_waits(&mut out, r);
    sessions(
        &mut out,
        "running DDL",
        r.running_ddl
            .iter()
            .map(|d| (&d.session, d.progress.as_deref())),
    );
    let long = format!(
        "long transactions (over {})",
        age(r.thresholds.long_after_secs as f64)
    );
    sessions(
        &mut out,
        &long,
        r.long_transactions.iter().map(|s| (s, None)),
    );
    replication(&mut out, &r.replication);
    invalid_indexes(&mut out, r);
    attention(&mut out, r);
    let _ = writeln!(out, "{}", verdict_line(r));
    out
}

fn migrations(out: &mut String, r: &StatusReport) {
    if r.migrations.is_empty() {
        let _ = writeln!(out, "migrations: no migration table recognized");
        return;
    }
    let _ = writeln!(out, "migrations:");
    for m in &r.migrations {
        let mut line = format!("  {:<15} {}", m.tool.to_string(), m.table);
        match (&m.error, &m.current_version) {
            (Some(e), _) => line.push_str(&format!("  could not be read: {e}")),
            (None, Some(v)) => line.push_str(&format!("  version {v}")),
            (None, None) if m.lock.is_none() => line.push_str("  no version applied"),
            _ => {}
        }
        if let Some(at) = &m.applied_at {
            line.push_str(&format!(" (applied {at})"));
        }
        if m.dirty {
            line.push_str("  DIRTY");
        }
        if !m.failed.is_empty() {
            let versions: Vec<&str> = m.failed.iter().map(|f| f.version.as_str()).collect();
            line.push_str(&format!("  FAILED: {}", versions.join(", ")));
        }
        if let Some(lock) = &m.lock {
            line.push_str(&format!(
                "  LOCKED by {} since {}",
                lock.locked_by.as_deref().unwrap_or("?"),
                lock.since.as_deref().unwrap_or("?")
            ));
        }
        let _ = writeln!(out, "{line}");
    }
}

fn lock_waits(out: &mut String, r: &StatusReport) {
    if r.lock_waits.is_empty() {
        let _ = writeln!(out, "lock waits: none");
        return;
    }
    let _ = writeln!(out, "lock waits: {}", r.lock_waits.len());
    for w in &r.lock_waits {
        let _ = writeln!(
            out,
            "  pid {} waiting {} for {} on {}: {}",
            w.waiter.pid,
            w.waiter.query_age_secs.map(age).unwrap_or_default(),
            w.mode,
            w.object,
            query(&w.waiter)
        );
        for b in &w.blockers {
            let what = match (&b.holds[..], &b.waits_for) {
                ([], Some(mode)) => format!("queued ahead for {mode}"),
                ([], None) => "in the way".to_string(),
                (held, _) => format!("holds {}", held.join(", ")),
            };
            let _ = writeln!(
                out,
                "    blocked by pid {} ({}, {what}): {}",
                b.session.pid,
                session_state(&b.session),
                query(&b.session)
            );
        }
    }
}

fn sessions<'a>(
    out: &mut String,
    title: &str,
    list: impl ExactSizeIterator<Item = (&'a Session, Option<&'a str>)>,
) {
    if list.len() == 0 {
        let _ = writeln!(out, "{title}: none");
        return;
    }
    let _ = writeln!(out, "{title}: {}", list.len());
    for (s, progress) in list {
        let who = [
            s.user.as_deref(),
            s.application_name.as_deref().filter(|a| !a.is_empty()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        let progress = progress.map(|p| format!(" [{p}]")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  pid {} ({who}) {}{progress}: {}",
            s.pid,
            session_state(s),
            query(s)
        );
    }
}

fn replication(out: &mut String, r: &Replication) {
    let role = match r.role {
        ReplicationRole::Primary => "primary",
        ReplicationRole::Standby => "standby",
    };
    let _ = writeln!(
        out,
        "replication: {role}, {} replica(s), {} slot(s)",
        r.replicas.len(),
        r.slots.len()
    );
    if let Some(s) = &r.standby {
        let _ = writeln!(out, "  {}", standby_line(s));
    }
    for p in &r.replicas {
        let _ = writeln!(out, "  {}", replica_line(p));
    }
    for s in &r.slots {
        let _ = writeln!(out, "  {}", slot_line(s));
    }
}

fn standby_line(s: &StandbyState) -> String {
    let commit = match (&s.last_replay_at, s.last_replay_age_secs) {
        (Some(at), Some(secs)) => format!(", last replayed commit {at} ({} ago)", age(secs)),
        _ => String::new(),
    };
    let receiver = match (&s.wal_receiver, &s.upstream) {
        (Some(status), Some(up)) => format!("receiver {status} from {up}"),
        (Some(status), None) => format!("receiver {status}"),
        _ => "no WAL receiver".to_string(),
    };
    format!(
        "replay {}: received {}, replayed {} ({} behind){commit}; {receiver}",
        s.pause_state.to_uppercase(),
        s.receive_lsn.as_deref().unwrap_or("?"),
        s.replay_lsn.as_deref().unwrap_or("?"),
        bytes(s.receive_replay_lag_bytes.unwrap_or(0)),
    )
}

fn replica_line(p: &Replica) -> String {
    let lsn = |l: &Option<String>| l.clone().unwrap_or_else(|| "?".into());
    format!(
        "{} ({}) {} {}: sent {} write {} flush {} replay {}, replay lag {}, {}",
        p.application_name.as_deref().unwrap_or("?"),
        p.client_addr.as_deref().unwrap_or("local"),
        p.state.as_deref().unwrap_or("?"),
        p.sync_state.as_deref().unwrap_or("?"),
        lsn(&p.sent_lsn),
        lsn(&p.write_lsn),
        lsn(&p.flush_lsn),
        lsn(&p.replay_lsn),
        bytes(p.replay_lag_bytes.unwrap_or(0)),
        p.replay_lag_secs.map(age).unwrap_or_else(|| "-".into()),
    )
}

fn slot_line(s: &Slot) -> String {
    format!(
        "slot {} ({}) {}, keeps {} of WAL{}",
        s.slot_name,
        s.slot_type.as_deref().unwrap_or("?"),
        if s.active { "active" } else { "INACTIVE" },
        bytes(s.retained_bytes.unwrap_or(0)),
        s.wal_status
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default()
    )
}

fn invalid_indexes(out: &mut String, r: &StatusReport) {
    if r.invalid_indexes.is_empty() {
        let _ = writeln!(out, "invalid indexes: none");
        return;
    }
    let _ = writeln!(out, "invalid indexes: {}", r.invalid_indexes.len());
    for i in &r.invalid_indexes {
        let building = i
            .in_progress
            .as_deref()
            .map(|p| format!(" [being built: {p}]"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} on {}{building}: {}",
            i.index, i.table, i.definition
        );
    }
}

fn attention(out: &mut String, r: &StatusReport) {
    if r.notable.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nneeds attention: {}", r.notable.len());
    for n in &r.notable {
        let _ = writeln!(out, "  * {}", n.summary);
        for line in &n.advice {
            let _ = writeln!(out, "      {line}");
        }
    }
    let _ = writeln!(out);
}

fn verdict_line(r: &StatusReport) -> String {
    let n = r.notable.len();
    match r.verdict {
        StatusVerdict::Clean => "status: CLEAN, nothing notable".into(),
        StatusVerdict::Notable => format!(
            "status: NOTABLE, {n} thing(s) need attention (the SQL above is for you to review; nothing was changed)"
        ),
        StatusVerdict::Incomplete => format!(
            "status: INCOMPLETE, {} section(s) could not be read; {n} notable in what was read",
            r.errors.len()
        ),
    }
}

fn query(s: &Session) -> String {
    short(s.query.as_deref().unwrap_or(""), 100)
}

/// `45s`, `12m03s`, `3h04m`, `2d03h`; under ten seconds with a decimal.
pub fn age(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `96 B`, `4.0 KiB`, `16.0 MiB`, `2.5 GiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n.abs() < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A query on one line (whitespace runs collapsed), cut to `max` characters with `…`.
pub fn short(query: &str, max: usize) -> String {
    let line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(1.25), "1.2s");
        assert_eq!(age(45.0), "45s");
        assert_eq!(age(723.0), "12m03s");
        assert_eq!(age(3.0 * 3600.0 + 240.0), "3h04m");
        assert_eq!(age(2.0 * 86_400.0 + 3.0 * 3600.0), "2d03h");
        assert_eq!(age(-1.0), "0.0s");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(96), "96 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024 / 2), "2.5 GiB");
    }

    #[test]
    fn queries_are_one_line_and_cut() {
        assert_eq!(short("SELECT *\n  FROM   t", 100), "SELECT * FROM t");
        assert_eq!(short("SELECT é FROM t", 8), "SELECT é…");
    }
}
