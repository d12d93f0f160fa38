//! The background watcher behind [`FileMap::watch`](crate::FileMap::watch).
//!
//! This module owns one thread per watcher. It must stop promptly when the
//! [`Watcher`] is dropped and never call back for the watched handle's own
//! writes. A callback that panics does not end the watcher: the panic is
//! reported by the panic hook as usual, counted ([`Watcher::panics`]), and
//! watching goes on with the next change.

#![forbid(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::handle::Inner;
use crate::snapshot::Snapshot;

/// Stops its background thread when dropped. Made by
/// [`FileMap::watch`](crate::FileMap::watch).
///
/// ```
/// use std::sync::mpsc;
///
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-watcher-{}", std::process::id());
/// let map = filemap::FileMap::open(&name)?;
/// let (tx, rx) = mpsc::channel();
/// let watcher = map.watch(move |change| {
///     let _ = tx.send(change.map(|snap| snap.content));
/// })?;
/// // Another handle (here in this process) publishes; this one is told.
/// filemap::FileMap::open(&name)?.write(b"news")?;
/// let seen = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()?;
/// assert_eq!(seen, b"news");
/// drop(watcher); // stops the thread
/// # Ok(()) }
/// ```
#[must_use = "dropping the Watcher stops watching"]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    panics: Arc<AtomicU64>,
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// How many times the callback panicked. Each panic was reported by
    /// the panic hook (by default on standard error) and watching went on.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

pub(crate) fn spawn<F>(inner: Arc<Inner>, mut callback: F) -> Result<Watcher>
where
    F: FnMut(Result<Snapshot>) + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let panics = Arc::new(AtomicU64::new(0));
    // The callback's state after a panic is whatever the panic left; the
    // callback is the caller's, and it asked to be called again.
    let mut callback = move |change| catch_unwind(AssertUnwindSafe(|| callback(change))).is_ok();
    let name = inner.name().to_owned();
    let thread = {
        let stop = Arc::clone(&stop);
        let panics = Arc::clone(&panics);
        let inner = Arc::clone(&inner);
        let mut seen = inner.generation();
        std::thread::Builder::new()
            .name("filemap-watch".into())
            .spawn(move || {
                let mut buf = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let now = inner.generation();
                    if now == seen {
                        inner.wait_once(seen, Duration::from_secs(1), &stop);
                        continue;
                    }
                    // Lock-free only: the watcher never waits on the lock,
                    // so dropping it is never held up by a lock holder.
                    match inner.try_read(&mut buf) {
                        Ok(Some(stamp)) => {
                            seen = stamp.generation;
                            if stamp.writer != inner.id && !callback(Ok(stamp.with(buf.clone()))) {
                                panics.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Writers kept the content moving: try again.
                        Ok(None) => std::thread::yield_now(),
                        Err(e) => {
                            // A handle that lost its mapping (the file
                            // shrank) never recovers: report it and stop.
                            let last = inner.usable().is_err();
                            // A corrupted generation stays corrupted until
                            // the next publish: report it once, then wait.
                            seen = now;
                            if !callback(Err(e)) {
                                panics.fetch_add(1, Ordering::Relaxed);
                            }
                            if last {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|source| Error::Io {
                op: "spawn watcher thread",
                name,
                source,
            })?
    };
    Ok(Watcher {
        stop,
        panics,
        inner,
        thread: Some(thread),
    })
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // A callback that drops its own watcher must not join itself.
        if thread.thread().id() == std::thread::current().id() {
            return;
        }
        // A forked child has the watcher but not its thread, which stayed
        // in the parent: nothing to stop or join. Forget the handle (and
        // what the thread owns), which the child can never reclaim.
        if self.inner.in_forked_child() {
            std::mem::forget(thread);
            return;
        }
        // Interrupt until the thread is out: another process's interrupt
        // may interleave with ours, and a callback may still be running.
        let mut since_interrupt = Duration::MAX;
        while !thread.is_finished() {
            if since_interrupt >= Duration::from_millis(10) {
                self.inner.interrupt_waits();
                since_interrupt = Duration::ZERO;
            }
            std::thread::sleep(Duration::from_micros(200));
            since_interrupt += Duration::from_micros(200);
        }
        let _ = thread.join();
    }
}
