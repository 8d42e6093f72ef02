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
