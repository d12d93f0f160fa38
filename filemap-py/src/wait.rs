//! `wait_change`: waiting for a change with the GIL released.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use filemap::FileMap;
use pyo3::prelude::*;

use crate::lifecycle::EXITING;

/// Longest time spent in the library with the GIL released before pending
/// signals are checked (Ctrl-C must interrupt a wait within 100 ms).
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// How long `wait_change` busy-polls before it sleeps by default: not at
/// all. Spinning first catches a prompt peer without a sleep and a
/// wake-up, but on a loaded machine it steals the peer's core (measured:
/// 5.8 µs round trips sleeping at once, 125 µs spinning 50 µs first, at a
/// load of 14 on 2 cores); callers who own their cores pass `spin=`.
pub(crate) const DEFAULT_SPIN: Duration = Duration::ZERO;

/// Wait for the generation to leave `seen` with `wait` (one bounded
/// library wait), in slices, releasing the GIL and checking signals, and
/// with `still_open` that the handle was not closed, between slices.
///
/// Closed by another thread, the wait raises `Closed`. Closed at
/// interpreter exit ([`_close_all`](crate::lifecycle::_close_all)), it lets go of the region and then
/// stays blocked, as every daemon thread in a blocking call is until the
/// process ends: returning would run the thread's Python code on during
/// finalisation, and print a `Closed` traceback for a wait that was
/// simply cut short by the exit.
pub(crate) fn wait_in_slices(
    py: Python<'_>,
    map: Arc<FileMap>,
    seen: u64,
    timeout: Option<Duration>,
    still_open: &dyn Fn(Python<'_>) -> PyResult<()>,
    wait: fn(&FileMap, u64, Option<Duration>) -> Option<u64>,
) -> PyResult<Option<u64>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => {
                let remaining = d.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    let now = map.generation();
                    return Ok((now != seen).then_some(now));
                }
                remaining.min(SLICE)
            }
        };
        if let Some(generation) = py.detach(|| wait(&map, seen, Some(slice))) {
            return Ok(Some(generation));
        }
        py.check_signals()?;
        if let Err(closed) = still_open(py) {
            if EXITING.load(Ordering::Acquire) {
                drop(map);
                let () = py.detach(|| loop {
                    std::thread::park();
                });
            }
            return Err(closed);
        }
    }
}
