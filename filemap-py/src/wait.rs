//! `wait_change`: waiting for a change with the GIL released, without
//! polling.
//!
//! A wait is one library wait ([`FileMap::wait_change`]) given the
//! handle's [`CancelToken`] and made [interruptible](Wait::interruptible):
//! - `close()` on another thread (or interpreter exit) cancels the token,
//!   which ends the wait at once (`Closed`);
//! - a signal whose handler runs on the waiting thread (CPython's `SIGINT`
//!   handler, installed without `SA_RESTART`, on the main thread) cuts the
//!   kernel sleep short: the wait takes the GIL back and runs Python's
//!   signal handlers (`KeyboardInterrupt` propagates), then, if none
//!   raised, waits on to the same deadline.
//!
//! Busy-polling cannot be interrupted by a signal, so `strategy="spin"`
//! spins in slices of [`SPIN_SLICE`] and checks signals between them, and
//! the `spin=` prefix of a sleeping wait lasts at most [`MAX_SPIN_FIRST`]:
//! those bound how long a Ctrl-C waits. A signal that lands just before
//! the thread goes to sleep is only seen at the next wake-up (as with
//! `time.sleep`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use filemap::{CancelToken, Error, FileMap, Strategy, Wait};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::lifecycle::EXITING;

/// How long a spinning wait busy-polls before it takes the GIL back to
/// check for signals: a Ctrl-C ends it within this (plus the time to get
/// the GIL).
pub(crate) const SPIN_SLICE: Duration = Duration::from_millis(20);

/// The longest `spin=` prefix of a sleeping wait (it is not interrupted
/// by signals).
pub(crate) const MAX_SPIN_FIRST: Duration = Duration::from_millis(50);

/// How long `wait_change` busy-polls before its strategy by default: not
/// at all. A fixed spin first catches a prompt peer without a sleep and a
/// wake-up, but on a loaded machine it steals the peer's core (measured:
/// 5.8 µs round trips sleeping at once, 125 µs spinning 50 µs first, at a
/// load of 14 on 2 cores); the default strategy, adaptive, spins only
/// while that pays and the machine has a CPU to spare.
pub(crate) const DEFAULT_SPIN: Duration = Duration::ZERO;

/// The strategy named `name` (`"sleep"`, `"spin"` or `"adaptive"`).
pub(crate) fn strategy(name: &str) -> PyResult<Strategy> {
    match name {
        "sleep" => Ok(Strategy::Sleep),
        "spin" => Ok(Strategy::Spin),
        "adaptive" => Ok(Strategy::Adaptive),
        other => Err(PyValueError::new_err(format!(
            "strategy must be \"sleep\", \"spin\" or \"adaptive\", not {other:?}"
        ))),
    }
}

/// Wait for the generation to leave `seen` with `strategy`, busy-polling
/// `spin_first` before, until `timeout` (`None`: as long as it takes).
/// Returns the new generation, or `None` at the timeout.
///
/// `cancel` is the handle's token: cancelled (the handle closed by
/// another thread), the wait raises `closed()`. Closed at interpreter exit
/// ([`_close_all`](crate::lifecycle::_close_all)), it lets go of the region
/// and then stays blocked, as every daemon thread in a blocking call is
/// until the process ends: returning would run the thread's Python code on
/// during finalisation, and print a `Closed` traceback for a wait that was
/// simply cut short by the exit.
#[allow(clippy::too_many_arguments)] // the wait's parts, as Python passes them
pub(crate) fn wait_change(
    py: Python<'_>,
    map: Arc<FileMap>,
    cancel: &CancelToken,
    seen: u64,
    timeout: Option<Duration>,
    strategy: Strategy,
    spin_first: Duration,
    closed: &dyn Fn(Python<'_>) -> PyErr,
) -> PyResult<Option<u64>> {
    let start = Instant::now();
    let deadline = timeout.and_then(|t| start.checked_add(t));
    let spin_until = (!spin_first.is_zero()).then(|| start + spin_first.min(MAX_SPIN_FIRST));
    loop {
        let now = Instant::now();
        // This round: the spin prefix, a slice of spinning, or the rest.
        let (strategy, until) = match spin_until {
            Some(until) if now < until => (Strategy::Spin, Some(until)),
            _ if strategy == Strategy::Spin => (Strategy::Spin, now.checked_add(SPIN_SLICE)),
            _ => (strategy, None),
        };
        let until = match (until, deadline) {
            (Some(u), Some(d)) => Some(u.min(d)),
            (u, d) => u.or(d),
        };
        let waited = py.detach(|| {
            let mut wait = Wait::new(strategy).cancel(cancel).interruptible();
            if let Some(until) = until {
                wait = wait.deadline(until);
            }
            map.wait_change(seen, wait)
        });
        match waited {
            Ok(generation) => return Ok(Some(generation)),
            // A signal handler ran on this thread (Interrupted), or a
            // slice of spinning ended: run Python's handlers, which raise
            // KeyboardInterrupt on Ctrl-C, then wait on.
            Err(Error::Interrupted { .. }) => py.check_signals()?,
            Err(Error::Timeout { .. }) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
                py.check_signals()?;
            }
            Err(Error::Cancelled { .. }) => {
                if EXITING.load(Ordering::Acquire) {
                    drop(map);
                    let () = py.detach(|| loop {
                        std::thread::park();
                    });
                }
                return Err(closed(py));
            }
            Err(e) => return Err(to_py(py, e)),
        }
    }
}
