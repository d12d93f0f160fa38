//! `FileMap::wait_change`: each strategy wakes on another process's
//! publish, honours its deadline, and ends at once when its
//! `CancelToken` is cancelled from another thread, even asleep.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{unique, Child, Cleanup, STEP};
use filemap::{CancelToken, Error, ErrorKind, FileMap, Strategy, Wait};

const STRATEGIES: [Strategy; 3] = [Strategy::Sleep, Strategy::Spin, Strategy::Adaptive];

/// A sleeping wait re-checks at least every second on its own: a wait
/// that ends well within that was woken, not timed out of its slice.
const WOKEN_WITHIN: Duration = Duration::from_millis(500);

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}

#[test]
fn every_strategy_wakes_on_another_processs_publish() {
    for strategy in STRATEGIES {
        let name = unique("wait-wake");
        let _cleanup = Cleanup(name.clone());
        let map = FileMap::open(&name).unwrap();
        let mut writer = Child::spawn("write", &name);
        writer.expect("open");
        let seen = map.generation();
        let (sent, sending) = mpsc::channel();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let woke = map.wait_change(seen, Wait::new(strategy).timeout(STEP));
                (woke, Instant::now())
            });
            writer.send("news");
            writer.expect("wrote");
            sent.send(Instant::now()).unwrap();
            let (woke, at) = waiter.join().unwrap();
            assert_eq!(woke.unwrap(), seen + 1, "{strategy:?}");
            let published = sending.recv().unwrap();
            // Woken by the publish, not by the (20 s) deadline.
            assert!(at.saturating_duration_since(published) < STEP / 4);
        });
        writer.close_stdin();
        assert!(writer.finish().success());
    }
}

#[test]
fn a_wait_reports_a_timeout_at_its_deadline_and_a_change_at_once() {
    let name = unique("wait-deadline");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    for strategy in STRATEGIES {
        let start = Instant::now();
        let quiet = map.wait_change(seen, Wait::new(strategy).timeout(Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30), "{strategy:?}");
        match quiet {
            Err(Error::Timeout {
                waited,
                holder_pid: None,
                ..
            }) => assert!(waited >= Duration::from_millis(30)),
            other => panic!("{strategy:?}: {other:?}"),
        }
        // A deadline already past only looks once.
        let past = map.wait_change(seen, Wait::new(strategy).deadline(Instant::now()));
        assert_eq!(past.unwrap_err().kind(), ErrorKind::Timeout);
    }
    map.write(b"moved").unwrap();
    for strategy in STRATEGIES {
        // The generation left `seen` already: no waiting, even past the
        // deadline.
        let now = map.wait_change(seen, Wait::new(strategy).deadline(Instant::now()));
        assert_eq!(now.unwrap(), seen + 1);
    }
}

/// A timeout counts from `Wait::timeout`, and the time a timeout reports
/// is the whole of it, however late the wait itself began (a thread
/// preempted between building the `Wait` and waiting, as under emulation).
#[test]
fn a_timeout_reports_the_time_since_it_was_set() {
    let name = unique("wait-since");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    for strategy in STRATEGIES {
        let wait = Wait::new(strategy).timeout(Duration::from_millis(40));
        // The delay is the point of the test, not a synchronisation.
        std::thread::sleep(Duration::from_millis(30));
        match map.wait_change(seen, wait) {
            Err(Error::Timeout { waited, .. }) => {
                assert!(
                    waited >= Duration::from_millis(40),
                    "{strategy:?}: {waited:?}"
                )
            }
            other => panic!("{strategy:?}: {other:?}"),
        }
    }
}

/// The calling thread's kernel id (Linux), to look it up in `/proc`.
fn current_tid() -> i32 {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions.
    return unsafe { libc::gettid() };
    #[cfg(not(target_os = "linux"))]
    0
}

/// The state letter of thread `tid` of this process (`S`: asleep).
fn thread_state(tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn a_cancel_from_another_thread_ends_each_strategys_wait_at_once() {
    let name = unique("wait-cancel");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    for strategy in STRATEGIES {
        let token = CancelToken::new();
        let (started, start) = mpsc::channel();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                started.send(current_tid()).unwrap();
                let ended = map.wait_change(seen, Wait::new(strategy).cancel(&token));
                (ended, Instant::now())
            });
            let tid = start.recv().unwrap();
            if cfg!(target_os = "linux") && strategy == Strategy::Sleep {
                // Cancel a wait that is really asleep in the kernel.
                common::await_condition("the waiter to sleep", || thread_state(tid) == Some('S'));
            }
            let cancelled = Instant::now();
            token.cancel();
            let (ended, at) = waiter.join().unwrap();
            match ended {
                Err(Error::Cancelled { name: n }) => assert_eq!(n, name),
                other => panic!("{strategy:?}: {other:?}"),
            }
            assert!(
                at.duration_since(cancelled) < WOKEN_WITHIN,
                "{strategy:?}: cancel took {:?}",
                at.duration_since(cancelled)
            );
        });
        assert!(token.is_cancelled());
    }
}

#[test]
fn one_token_ends_waits_on_several_regions_and_spares_the_others() {
    let names = [unique("wait-many-a"), unique("wait-many-b")];
    let _cleanup: Vec<_> = names.iter().map(|n| Cleanup(n.clone())).collect();
    let maps: Vec<FileMap> = names.iter().map(|n| FileMap::open(n).unwrap()).collect();
    let token = CancelToken::new();
    std::thread::scope(|s| {
        let cancelled: Vec<_> = maps
            .iter()
            .map(|map| {
                let token = token.clone();
                s.spawn(move || map.wait_change(0, Wait::sleep().cancel(&token).timeout(STEP)))
            })
            .collect();
        // A wait on the same handle without the token is not ended by it.
        let spared = s.spawn(|| maps[0].wait_change(0, Wait::sleep().timeout(STEP)));
        token.cancel();
        for waiter in cancelled {
            assert_eq!(
                waiter.join().unwrap().unwrap_err().kind(),
                ErrorKind::Cancelled
            );
        }
        maps[0].write(b"for the spared").unwrap();
        assert_eq!(spared.join().unwrap().unwrap(), 1);
    });
    // Cancelled for good: a later wait given the token ends at once.
    let start = Instant::now();
    let later = maps[1].wait_change(0, Wait::spin().cancel(&token));
    assert_eq!(later.unwrap_err().kind(), ErrorKind::Cancelled);
    assert!(start.elapsed() < WOKEN_WITHIN);
}
