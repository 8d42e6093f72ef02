//! Throttling and pausing a run on a live primary (pt-table-checksum's and gh-ost's controls).
//!
//! Two mechanisms. A [`RateLimit`] per source spaces COPY batches so that no more than
//! `--max-rate` bytes a second are read from it (a token bucket without burst, charged per batch
//! by the readers). A [`Gate`] is passed before every key range: it holds the run while a
//! `--pause-file` exists, while a replica of a source lags more than `--max-lag`, or while more
//! than `--max-active` other sessions are active, and says why on the progress line. The gate's
//! checks run on monitor sessions outside any transaction (pg_stat_activity is frozen inside one)
//! and are cached for a second, so many workers cost the server one query a second.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::SimpleQueryMessage;

use super::{Session, Source};
use crate::error::{Error, Result};
use crate::progress::Reporter;

/// How a run treats live sources (issue 18): how long it waits for a table's lock, and when it
/// slows down or pauses to spare the application.
#[derive(Clone, Debug)]
pub struct LiveLimits {
    /// `--lock-wait`: the longest a range waits for its table's lock before it is left
    /// unverified.
    pub lock_wait: Duration,
    /// `--max-rate`: COPY bytes per second read from each source.
    pub max_rate: Option<u64>,
    /// `--max-lag`: pause while a replica of a source lags more than this (replay_lag).
    pub max_lag: Option<Duration>,
    /// `--max-active`: pause while more sessions than this (other than ours) are active.
    pub max_active: Option<u32>,
    /// `--pause-file`: pause while this file exists.
    pub pause_file: Option<PathBuf>,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits {
            lock_wait: Duration::from_secs(60),
            max_rate: None,
            max_lag: None,
            max_active: None,
            pause_file: None,
        }
    }
}

impl LiveLimits {
    /// Whether anything is watched before each range (beyond locks).
    pub fn throttled(&self) -> bool {
        self.max_rate.is_some()
            || self.max_lag.is_some()
            || self.max_active.is_some()
            || self.pause_file.is_some()
    }
}

/// A byte budget per second, shared by every reader of one source.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: u64,
    /// When the bytes read so far will have been "paid for".
    next: Mutex<Instant>,
}

impl RateLimit {
    pub fn new(bytes_per_sec: u64) -> Self {
        RateLimit {
            bytes_per_sec: bytes_per_sec.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// How long a reader that just read `bytes` must wait (the pure part of [`RateLimit::take`]).
    fn charge(&self, bytes: usize, now: Instant) -> Duration {
        let mut next = self.next.lock().expect("rate lock");
        if *next < now {
            *next = now;
        }
        *next += Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        *next - now
    }

    /// Charges `bytes` and waits until they are within the budget.
    pub async fn take(&self, bytes: usize) {
        let wait = self.charge(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// How often the gate asks the servers.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Sessions other than pgsalvage's own that are running a statement, and the largest replay lag
/// of the server's replicas in seconds.
const LOAD: &str = "SELECT (SELECT count(*) FROM pg_stat_activity \
     WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
       AND datname = current_database() \
       AND application_name <> 'pgsalvage'), \
    (SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication)::float8";

/// What every range passes before it is read.
pub struct Gate {
    limits: LiveLimits,
    /// Per source that is watched: its role and a monitor session.
    monitors: Vec<(String, Session)>,
    last: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
}

impl Gate {
    /// A gate for `sources`; monitor sessions are opened only when a limit needs them.
    pub async fn open(sources: &[&Source], limits: &LiveLimits) -> Result<Gate> {
        let mut monitors = Vec::new();
        if limits.max_active.is_some() || limits.max_lag.is_some() {
            for source in sources {
                monitors.push((source.role.to_string(), source.worker().await?));
            }
        }
        Ok(Gate {
            limits: limits.clone(),
            monitors,
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// A gate that never holds a run.
    pub fn open_always() -> Gate {
        Gate {
            limits: LiveLimits::default(),
            monitors: Vec::new(),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// Waits while the run should pause, saying why.
    pub async fn pass(&self, reporter: &dyn Reporter) {
        if !self.limits.throttled() {
            return;
        }
        let mut paused = false;
        while let Some(why) = self.why_paused().await {
            if crate::interrupt::requested() {
                break;
            }
            paused = true;
            reporter.waiting(Some(&format!("paused: {why}")));
            tokio::time::sleep(CHECK_EVERY).await;
        }
        if paused {
            reporter.waiting(None);
        }
    }

    /// The reason to pause now, if any (asked of the servers at most once a second).
    async fn why_paused(&self) -> Option<String> {
        let mut last = self.last.lock().await;
        if let Some((at, why)) = last.as_ref() {
            if at.elapsed() < CHECK_EVERY {
                return why.clone();
            }
        }
        let why = self.check().await;
        *last = Some((Instant::now(), why.clone()));
        why
    }

    async fn check(&self) -> Option<String> {
        if let Some(file) = self.limits.pause_file.as_deref().filter(|f| exists(f)) {
            return Some(format!("{} exists (--pause-file)", file.display()));
        }
        for (role, session) in &self.monitors {
            let (active, lag) = match load(session).await {
                Ok(load) => load,
                Err(e) => return Some(format!("cannot read the load of {role}: {e}")),
            };
            if let Some(max) = self.limits.max_active.filter(|m| active > u64::from(*m)) {
                return Some(format!(
                    "{active} sessions active on {role} (--max-active {max})"
                ));
            }
            if let Some(max) = self.limits.max_lag.filter(|m| lag > m.as_secs_f64()) {
                return Some(format!(
                    "a replica of {role} lags {lag:.1} s (--max-lag {} s)",
                    max.as_secs_f64()
                ));
            }
        }
        None
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

async fn load(session: &Session) -> Result<(u64, f64)> {
    let rows = session.simple_query(LOAD).await.map_err(Error::pg)?;
    let row = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let field = |i| row.and_then(|r| r.get(i)).unwrap_or("0");
    let active = field(0).parse().unwrap_or(0);
    let lag = field(1).parse().unwrap_or(0.0);
    Ok((active, lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_spaces_batches_by_their_size() {
        let limit = RateLimit::new(1_000_000);
        let start = Instant::now();
        assert_eq!(limit.charge(500_000, start), Duration::from_millis(500));
        // The next batch waits for the first to be paid off, then for itself.
        assert_eq!(limit.charge(500_000, start), Duration::from_millis(1000));
        // A reader idle past the budget does not bank the idle time as a burst.
        let later = start + Duration::from_secs(10);
        assert_eq!(limit.charge(250_000, later), Duration::from_millis(250));
    }
}
