//! How a wait for a change waits ([`Wait`]: a strategy and a deadline)
//! and how another thread ends it ([`CancelToken`]).
//!
//! Plain configuration: the waiting itself is `notify.rs`'s, and
//! [`FileMap::wait_change`](crate::FileMap::wait_change) joins the two.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::handle::Inner;
use crate::notify;

/// How a wait passes the time until the content changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Sleep in the kernel (a futex, a semaphore on Windows): no CPU while
    /// waiting, woken within microseconds of a publish.
    #[default]
    Sleep,
    /// Busy-poll the generation: the lowest latency, one core kept busy.
    Spin,
    /// Busy-poll for a short while when that has recently paid off, then
    /// sleep: close to `Spin`'s latency when the peer answers promptly,
    /// close to no CPU when changes come rarely.
    ///
    /// The handle learns from its spins: a change a spin caught sets the
    /// next budget (about twice the moving average of those gaps, at most
    /// 50 µs, polling with the CPU's pause instruction); after four empty
    /// spins in a row it sleeps at once, but for a full probe every eight
    /// waits, which teaches it to spin again when the peer turns prompt.
    /// At most one thread fewer than the machine has cores spin on a
    /// region at once, across all processes, so spinners never starve the
    /// writer they wait for. And it does not spin at all while the machine
    /// has more threads ready to run than CPUs (on Linux, the running
    /// count of `/proc/loadavg`, looked at once per 10 ms at most): on a
    /// loaded machine a spin takes the CPU the peer needs to answer, so
    /// it sleeps at once, as [`Strategy::Sleep`] does.
    Adaptive,
}

/// How [`FileMap::wait_change`](crate::FileMap::wait_change) waits: a
/// [`Strategy`], an optional deadline, optionally a [`CancelToken`]
/// that another thread may use to end the wait, and whether a signal ends
/// it ([`Wait::interruptible`]).
///
/// ```
/// use std::time::Duration;
/// use filemap::{CancelToken, Wait};
///
/// let token = CancelToken::new();
/// let forever = Wait::sleep();
/// let briefly = Wait::spin().timeout(Duration::from_micros(200));
/// let stoppable = Wait::adaptive().cancel(&token);
/// # let _ = (forever, briefly, stoppable);
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use = "a Wait does nothing until given to `wait_change`"]
pub struct Wait<'a> {
    pub(crate) strategy: Strategy,
    pub(crate) deadline: Option<Instant>,
    /// When a [`Wait::timeout`] started counting, so that the time an
    /// [`Error::Timeout`](crate::Error::Timeout) reports is the timeout
    /// itself, not the part of it spent inside `wait_change`.
    pub(crate) since: Option<Instant>,
    pub(crate) cancel: Option<&'a CancelToken>,
    pub(crate) interruptible: bool,
}

impl<'a> Wait<'a> {
    /// Wait with `strategy`, as long as it takes.
    pub fn new(strategy: Strategy) -> Wait<'a> {
        Wait {
            strategy,
            deadline: None,
            since: None,
            cancel: None,
            interruptible: false,
        }
    }

    /// [`Strategy::Sleep`], as long as it takes.
    pub fn sleep() -> Wait<'a> {
        Wait::new(Strategy::Sleep)
    }

    /// [`Strategy::Spin`], as long as it takes.
    pub fn spin() -> Wait<'a> {
        Wait::new(Strategy::Spin)
    }

    /// [`Strategy::Adaptive`], as long as it takes.
    pub fn adaptive() -> Wait<'a> {
        Wait::new(Strategy::Adaptive)
    }

    /// Give up [`Error::Timeout`](crate::Error::Timeout) after `timeout`
    /// from now (a timeout too large for the clock: never).
    pub fn timeout(self, timeout: Duration) -> Wait<'a> {
        let now = Instant::now();
        Wait {
            deadline: now.checked_add(timeout),
            since: Some(now),
            ..self
        }
    }

    /// Give up with [`Error::Timeout`](crate::Error::Timeout) at
    /// `deadline` (one already past: look once, do not wait).
    pub fn deadline(self, deadline: Instant) -> Wait<'a> {
        Wait {
            deadline: Some(deadline),
            since: None,
            ..self
        }
    }

    /// End with [`Error::Cancelled`](crate::Error::Cancelled) once `token`
    /// is cancelled, whichever thread cancels it.
    pub fn cancel(self, token: &'a CancelToken) -> Wait<'a> {
        Wait {
            cancel: Some(token),
            ..self
        }
    }

    /// End with [`Error::Interrupted`](crate::Error::Interrupted) when a
    /// signal handler runs on the waiting thread while it sleeps in the
    /// kernel, so that the caller can act on the signal and wait again
    /// (with the same deadline) if it wants to. A language runtime's
    /// Ctrl-C is the use: CPython's `SIGINT` handler only sets a flag that
    /// the interpreter checks between bytecodes, so a native wait must
    /// return for `KeyboardInterrupt` to be raised.
    ///
    /// Off by default: a plain wait sleeps again after a signal, and ends
    /// only as its strategy, deadline and token say.
    ///
    /// What the OS reports:
    /// - Linux (`futex`): every signal whose handler runs during the sleep,
    ///   whether or not the handler was installed with `SA_RESTART` (a
    ///   sleep with a timeout is never restarted). Ignored signals and
    ///   signals delivered to another thread do not end the wait.
    /// - FreeBSD (`_umtx_op`) and macOS (`os_sync_wait_on_address`,
    ///   `__ulock_wait`): when the call fails with `EINTR`; a macOS without
    ///   either primitive polls and never reports a signal.
    /// - Windows: never (there are no signals to cut a sleep short).
    ///
    /// Only a sleep in the kernel can be interrupted: [`Strategy::Spin`]
    /// never sleeps, and [`Strategy::Adaptive`]'s spin (at most 50 µs) is
    /// not cut short. A caller that must act on signals while spinning
    /// spins in bounded slices (a short deadline) and checks between them.
    /// A signal that arrives just before the thread goes to sleep is not
    /// seen by this wait (the same race as any `EINTR`-based sleep, such as
    /// `nanosleep` in a loop that checks a flag).
    pub fn interruptible(self) -> Wait<'a> {
        Wait {
            interruptible: true,
            ..self
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
}

/// Ends the waits given it ([`Wait::cancel`]), from any thread: they
/// return [`Error::Cancelled`](crate::Error::Cancelled) within
/// microseconds, whichever region they wait on and whatever their
/// strategy. A cancelled token stays cancelled; waits given it later end
/// at once. Clones share the token.
///
/// ```
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-cancel-{}", std::process::id());
/// use filemap::{CancelToken, ErrorKind, FileMap, Wait};
///
/// let map = FileMap::open(&name)?;
/// let token = CancelToken::new();
/// let waiter = std::thread::scope(|s| {
///     let waiter = s.spawn(|| map.wait_change(map.generation(), Wait::sleep().cancel(&token)));
///     token.cancel(); // from another thread: a shutdown, a Ctrl-C handler
///     waiter.join().unwrap()
/// });
/// assert_eq!(waiter.unwrap_err().kind(), ErrorKind::Cancelled);
/// # Ok(()) }
/// ```
///
/// `cancel` takes a mutex: call it from a thread (a signal-handling
/// thread such as the `ctrlc` crate's), not from a signal handler.
#[derive(Clone, Default)]
pub struct CancelToken {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    cancelled: AtomicBool,
    /// The handles that waits given this token are waiting on.
    waiting: Mutex<Vec<Weak<Inner>>>,
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// End every wait given this token, now and from now on.
    pub fn cancel(&self) {
        self.state.cancelled.store(true, SeqCst);
        // A wait registers before it first looks at the flag: it either
        // sees the flag or is in this list and woken here.
        let waiting = self.waiting();
        for inner in waiting.iter().filter_map(Weak::upgrade) {
            inner.interrupt_waits();
        }
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.load(SeqCst)
    }

    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.state.cancelled
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Inner>>> {
        // The list stays consistent whatever panicked while holding it.
        self.state
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Count a wait on `inner` in until the returned guard drops.
    pub(crate) fn register(&self, inner: &Arc<Inner>) -> Registration<'_> {
        let weak = Arc::downgrade(inner);
        self.waiting().push(weak.clone());
        Registration { token: self, weak }
    }
}

/// A wait's entry in its token's list; removed on drop.
pub(crate) struct Registration<'a> {
    token: &'a CancelToken,
    weak: Weak<Inner>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut waiting = self.token.waiting();
        if let Some(i) = waiting.iter().position(|w| Weak::ptr_eq(w, &self.weak)) {
            waiting.swap_remove(i);
        }
    }
}

/// Wait on `inner` as `wait` says until the generation leaves `seen`.
pub(crate) fn wait_change(inner: &Arc<Inner>, seen: u64, wait: Wait<'_>) -> Result<u64> {
    inner.usable()?;
    let _registered = wait.cancel.map(|token| token.register(inner));
    let cancel = wait.cancel.map(CancelToken::flag);
    let h = inner.header();
    let slot = &h.slots[inner.slot];
    let os = &inner.os;
    // What a timeout reports as waited counts from where the timeout did.
    let start = wait
        .deadline
        .map(|_| wait.since.unwrap_or_else(Instant::now));
    let deadline = wait.deadline;
    let found = match wait.strategy {
        Strategy::Sleep => {
            notify::sleep_until(h, slot, os, seen, deadline, cancel, wait.interruptible)
        }
        Strategy::Spin => Ok(notify::spin(h, os, seen, deadline, cancel)),
        Strategy::Adaptive => notify::adaptive(
            h,
            slot,
            os,
            seen,
            deadline,
            &inner.learner,
            cancel,
            wait.interruptible,
        ),
    };
    // A handle that became unusable meanwhile (its file shrank) ends its
    // waits with a generation that says nothing: report why instead. A
    // generation that went back is no publication either: a file cut
    // within its header's page reads as zeros there without a fault.
    if matches!(found, Ok(Some(generation)) if generation < seen) {
        inner.verify_backing()?;
    }
    inner.usable()?;
    match found {
        Ok(Some(generation)) => Ok(generation),
        Err(notify::Interrupted) => Err(Error::Interrupted {
            name: inner.name().to_owned(),
        }),
        Ok(None) if wait.cancel.is_some_and(CancelToken::is_cancelled) => Err(Error::Cancelled {
            name: inner.name().to_owned(),
        }),
        Ok(None) => Err(Error::Timeout {
            what: "a change",
            waited: start.map_or(Duration::ZERO, |s| s.elapsed()),
            holder_pid: None,
        }),
    }
}
