//! The one crossing from the tokio runtime to threads that may run long: CPU work goes to the rayon
//! pool ([`on_pool`]), blocking file I/O to tokio's blocking threads ([`blocking`]).
//!
//! Only the conductors (`pipeline`, `baseline`, `recover`, `apply`) call these. The stages they
//! call are plain functions over bytes that know nothing of threads, so no tokio worker thread
//! is ever blocked hashing, encoding or writing a file, and the pure stages stay testable on
//! their own.

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Runs CPU work on the rayon pool and returns where its result will arrive.
pub fn on_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(work());
    });
    rx
}

/// Runs blocking file work (writing a script, renaming a directory) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("a file task stopped: {e}")))?
}

/// A file (or any writer) whose writes leave the async worker they are made on: inside a
/// multi-threaded tokio runtime each write runs under `block_in_place`, which hands the worker's
/// other tasks to another thread first; elsewhere it simply writes. Wrapped in a `BufWriter`,
/// the crossing costs once per buffer (a MiB), not once per row.
pub struct OffRuntime<W>(pub W);

/// Runs short blocking work (a write, an fsync) where it is called, having first moved the
/// worker's other tasks to another thread when inside a multi-threaded runtime.
pub fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

impl<W: std::io::Write> std::io::Write for OffRuntime<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        off_runtime(|| self.0.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        off_runtime(|| self.0.write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        off_runtime(|| self.0.flush())
    }
}
