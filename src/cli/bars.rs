//! Progress bars on a terminal: the binary's [`Reporter`].
//!
//! One bar per table while it is being compared, sized by the planner's row estimate, with rows/s
//! and an ETA; finished tables leave one line. Drawn on stderr and only when it is a terminal, so
//! piped output and logs stay clean.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Reporter, TableDone};
use crate::shape::TableName;

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<usize, ProgressBar>>,
    /// The line saying why the run waits (a lock, a pause), while it does.
    status: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            status: Mutex::new(None),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:32!} [{bar:30}] {human_pos:>11}/{human_len:11} {rate:>16} eta {eta}",
    )
    .expect("a valid template")
    .with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let rate = crate::report::human::grouped(state.per_sec() as u64);
            let _ = write!(w, "{rate} rows/s");
        },
    )
    .progress_chars("=> ")
}

impl Reporter for Bars {
    fn table_started(&self, id: usize, table: &TableName, est_rows: u64) {
        let bar = self.multi.add(ProgressBar::new(est_rows.max(1)));
        bar.set_style(style());
        bar.set_prefix(table.to_string());
        self.bars.lock().expect("bars lock").insert(id, bar);
    }

    fn rows(&self, id: usize, rows: u64) {
        if let Some(bar) = self.bars.lock().expect("bars lock").get(&id) {
            if bar.position() + rows > bar.length().unwrap_or(0) {
                bar.set_length(bar.position() + rows);
            }
            bar.inc(rows);
        }
    }

    fn table_finished(&self, id: usize, done: &TableDone) {
        if let Some(bar) = self.bars.lock().expect("bars lock").remove(&id) {
            let what = match (done.failed, done.differences) {
                (true, _) => "not fully verified".to_string(),
                (false, 0) => "identical".to_string(),
                (false, n) => format!("{n} differences"),
            };
            bar.finish_and_clear();
            let _ = self
                .multi
                .println(format!("{:32} {} rows, {what}", bar.prefix(), done.rows));
        }
    }

    fn message(&self, text: &str) {
        let _ = self.multi.println(text);
    }

    fn waiting(&self, why: Option<&str>) {
        let mut status = self.status.lock().expect("status lock");
        match (why, status.as_ref()) {
            (Some(text), Some(line)) => line.set_message(text.to_string()),
            (Some(text), None) => {
                let line = self.multi.add(ProgressBar::new_spinner());
                line.enable_steady_tick(std::time::Duration::from_millis(250));
                line.set_message(text.to_string());
                *status = Some(line);
            }
            (None, _) => {
                if let Some(line) = status.take() {
                    line.finish_and_clear();
                }
            }
        }
    }

    /// Clears every bar still drawn (an interrupted run's, the waiting line), so the summary
    /// that follows starts on a line of its own.
    fn finish(&self) {
        for (_, bar) in self.bars.lock().expect("bars lock").drain() {
            bar.finish_and_clear();
        }
        if let Some(line) = self.status.lock().expect("status lock").take() {
            line.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// Progress as plain lines on stderr, when it is not a terminal (a log, a CI job, a pipe): no
/// bars, but every message, and what the run waits for, at most every few seconds.
#[derive(Default)]
pub struct Lines {
    /// When a waiting line was last printed.
    last_wait: Mutex<Option<std::time::Instant>>,
}

/// How often a continuing wait is said again.
const WAIT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Reporter for Lines {
    fn message(&self, text: &str) {
        eprintln!("{text}");
    }

    fn waiting(&self, why: Option<&str>) {
        let mut last = self.last_wait.lock().expect("wait lock");
        match why {
            Some(text) => {
                if last.is_none_or(|at| at.elapsed() >= WAIT_EVERY) {
                    eprintln!("{text}");
                    *last = Some(std::time::Instant::now());
                }
            }
            None => {
                if last.take().is_some() {
                    eprintln!("stopped waiting");
                }
            }
        }
    }
}
