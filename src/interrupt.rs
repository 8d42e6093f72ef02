//! A run asked to stop (Ctrl-C, SIGTERM): one process-wide flag the conductors look at.
//!
//! A signal arrives for the process, not for a run, so the flag is global. The binary sets it
//! ([`request`]) from its signal task; workers check it ([`requested`]) before they take the next
//! key range and while they wait (for a lock, or paused by the throttle), so an interrupted run
//! stops reading within a range, rolls its transactions back by ending them, and still reports
//! what it compared: the ranges it did not read are unverified, so the verdict is incomplete
//! (exit 2), never clean.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every run of this process to stop after the ranges it is reading.
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The error of a wait cut short by a stop.
pub fn error() -> crate::error::Error {
    crate::error::Error::source("interrupted before it was read")
}
