//! `Wait::interruptible`: a signal handled on the waiting thread ends an
//! interruptible sleeping wait with `Interrupted`, and leaves any other
//! wait asleep.

#![cfg(unix)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Once;
use std::time::{Duration, Instant};

use filemap::{ErrorKind, FileMap, Wait};

/// Generous upper bound for any single step; tests fail, not hang.
const STEP: Duration = Duration::from_secs(20);

/// How many times the handler ran.
static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// A no-op `SIGUSR2` handler installed without `SA_RESTART`, as CPython
/// installs its `SIGINT` handler.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no
        // flags); the handler only touches an atomic, which is
        // async-signal-safe; `sigaction` gets valid pointers.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()),
                0
            );
        }
    });
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = filemap::admin::remove(&self.0);
    }
}

/// Run `wait` on a thread of its own and send that thread `SIGUSR2` every
/// 5 ms while `keep_signalling(handled)` holds (`handled`: how many times
/// the handler has run since) and the wait goes on; then
/// call `after` and return the wait's result and how many
/// signals were handled meanwhile.
fn signal_a_waiter(
    wait: impl FnOnce() -> filemap::Result<u64> + Send,
    keep_signalling: impl Fn(usize) -> bool,
    after: impl FnOnce(),
) -> (filemap::Result<u64>, usize) {
    install_handler();
    std::thread::scope(|s| {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = s.spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
            let result = wait();
            done_tx.send(()).unwrap();
            result
        });
        let tid = tid_rx.recv().unwrap();
        let before = HANDLED.load(Ordering::Relaxed);
        let start = Instant::now();
        while keep_signalling(HANDLED.load(Ordering::Relaxed) - before) {
            assert!(start.elapsed() < STEP, "the wait never ended");
            // SAFETY: `tid` is the waiter, not joined yet (it is joined
            // below), so its id is valid even if it has just returned.
            assert_eq!(unsafe { libc::pthread_kill(tid, libc::SIGUSR2) }, 0);
            if done_rx.recv_timeout(Duration::from_millis(5)).is_ok() {
                break;
            }
        }
        let handled = HANDLED.load(Ordering::Relaxed) - before;
        after();
        (waiter.join().unwrap(), handled)
    })
}

#[test]
fn an_interruptible_sleeping_wait_ends_interrupted_when_its_thread_handles_a_signal() {
    for (strategy, wait) in [
        ("sleep", Wait::sleep as fn() -> Wait<'static>),
        ("adaptive", Wait::adaptive),
    ] {
        let name = unique("interruptible");
        let _cleanup = Cleanup(name.clone());
        let map = FileMap::open(&name).unwrap();
        let seen = map.generation();
        let (result, handled) = signal_a_waiter(
            || map.wait_change(seen, wait().timeout(STEP).interruptible()),
            |_| true,
            || {},
        );
        assert!(handled >= 1, "{strategy}: no signal was handled");
        let err = result.expect_err("the wait saw no change, so it cannot succeed");
        assert_eq!(err.kind(), ErrorKind::Interrupted, "{strategy}: {err}");
        assert!(
            matches!(&err, filemap::Error::Interrupted { name: n } if *n == name),
            "{err:?}"
        );
        // The handle is fine: the next wait sees the next change.
        map.write(b"after").unwrap();
        assert_eq!(
            map.wait_change(seen, wait().timeout(STEP).interruptible())
                .unwrap(),
            seen + 1
        );
    }
}

#[test]
fn a_plain_wait_sleeps_on_through_signals_until_the_change() {
    let name = unique("uninterruptible");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    // Twenty signals handled, then a publish: the wait must end with it.
    let (result, handled) = signal_a_waiter(
        || map.wait_change(seen, Wait::sleep().timeout(STEP)),
        |handled| handled < 20,
        || {
            map.write(b"news").unwrap();
        },
    );
    assert!(handled >= 20, "only {handled} signals were handled");
    assert_eq!(result.unwrap(), seen + 1);
}

#[test]
fn a_spinning_wait_is_not_interrupted_by_signals() {
    let name = unique("spin-signals");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    let (result, handled) = signal_a_waiter(
        || map.wait_change(seen, Wait::spin().timeout(STEP).interruptible()),
        |handled| handled < 20,
        || {
            map.write(b"news").unwrap();
        },
    );
    assert!(handled >= 20, "only {handled} signals were handled");
    assert_eq!(result.unwrap(), seen + 1);
}
