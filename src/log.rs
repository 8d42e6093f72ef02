//! `-v` / `-vv`: a log of what a run does, on standard error, and the timeline of its phases.
//!
//! A small facade rather than `tracing`: the library only ever needs "say this line at this
//! verbosity", and the phases it passes through (reading catalogs, planning ranges, comparing,
//! writing) are both logged and kept, so the JSON reports can carry how long each took. Level 1
//! (`-v`) logs connections and phases; level 2 (`-vv`) adds every SQL statement sent that
//! matters for what is read (snapshot imports, COPY queries, catalog reads) and each key range.
//! Nothing is logged at level 0, and the macro does not even format its arguments then.
//!
//! Lines look like `[  0.412s] connect target: postgres@127.0.0.1:5432/app`: the time since the
//! process started, so a slow step stands out. Passwords never reach this log: connections are
//! logged through their `Display`, which leaves the password out.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// Sets the verbosity: 0 silent, 1 connections and phases, 2 also SQL and ranges.
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
    epoch();
}

/// Whether lines of this level are written.
pub fn enabled(level: u8) -> bool {
    level > 0 && LEVEL.load(Ordering::Relaxed) >= level
}

/// When the process started logging (the first call): the log's and the timeline's zero.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Writes one log line (called by [`log!`](crate::log!) once the level is enabled).
pub fn emit(args: std::fmt::Arguments<'_>) {
    let at = epoch().elapsed().as_secs_f64();
    let line = format!("[{at:>8.3}s] {args}");
    // One write per line, so lines of concurrent tasks do not interleave.
    eprintln!("{}", line.replace('\n', "\n            "));
}

/// `log!(1, "connect {}", info)`: a line at verbosity 1 (`-v`) or 2 (`-vv`).
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::emit(format_args!($($arg)*));
        }
    };
}

/// One phase of a run, as the reports list it.
#[derive(Clone, Debug)]
pub struct Phase {
    pub name: String,
    pub started: Duration,
    pub elapsed: Duration,
}

fn timeline() -> &'static Mutex<Vec<(String, Duration)>> {
    static PHASES: OnceLock<Mutex<Vec<(String, Duration)>>> = OnceLock::new();
    PHASES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Marks the start of a phase (which ends the one before); logged at `-v`.
pub fn phase(name: &str) {
    let at = epoch().elapsed();
    timeline()
        .lock()
        .expect("phase lock")
        .push((name.to_string(), at));
    crate::log!(1, "phase: {name}");
}

/// The phases so far, each lasting until the next one started (the last until now).
pub fn phases() -> Vec<Phase> {
    let now = epoch().elapsed();
    let marks = timeline().lock().expect("phase lock").clone();
    let ends = marks.iter().skip(1).map(|(_, at)| *at).chain([now]);
    marks
        .iter()
        .zip(ends)
        .map(|((name, started), end)| Phase {
            name: name.clone(),
            started: *started,
            elapsed: end.saturating_sub(*started),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_last_until_the_next_one() {
        phase("one");
        std::thread::sleep(Duration::from_millis(20));
        phase("two");
        let got = phases();
        let one = got.iter().rev().find(|p| p.name == "one").unwrap();
        let two = got.iter().rev().find(|p| p.name == "two").unwrap();
        assert!(one.elapsed >= Duration::from_millis(20), "{one:?}");
        assert!(two.started >= one.started + one.elapsed, "{two:?}");
        assert!(!enabled(1) || LEVEL.load(Ordering::Relaxed) >= 1);
        assert!(!enabled(0));
    }
}
