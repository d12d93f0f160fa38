//! Linux kernel facilities shared by the Linux backend and the `posix`
//! backend's Linux build: futexes, thread ids and `/proc` liveness.
//!
//! Every function names the system call (or file) it uses.

// Thread ids and their start times serve the Linux backend's lock, which
// the `posix` backend's Linux build does not use.
#![cfg_attr(feature = "posix-backend", allow(dead_code))]

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use super::{fork_epoch, pid};
use crate::attach::Liveness;

/// Sleep while `*word == expected`, at most `timeout`: `futex(2)`
/// `FUTEX_WAIT` (shared, since the word lives in a shared mapping).
/// Returns on wake, timeout, signal or a changed word alike: `true` when
/// a signal handler ran during the sleep (`EINTR`). The sleep has a
/// timeout, so the kernel reports `EINTR` for every handled signal,
/// `SA_RESTART` or not.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    futex::wait(word, futex::Flags::empty(), expected, Some(&ts)) == Err(Errno::INTR)
}

/// Wake up to `count` threads sleeping on `word`: `futex(2)` `FUTEX_WAKE`.
pub fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}

/// The address of the low 32 bits of a 64-bit word: the futex word of the
/// region lock, whose high half holds the owner's start time.
fn low_half(word: &AtomicU64) -> *mut u32 {
    let base = word.as_ptr().cast::<u32>();
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

/// Sleep while the low 32 bits of `word` equal `expected`, at most
/// `timeout`: `futex(2)` `FUTEX_WAIT` on the word's low half (shared).
/// Returns on wake, timeout, signal or a changed word alike.
pub fn futex_wait_low(word: &AtomicU64, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY:
    // - the address is 4-byte aligned and inside `word` (half of an 8-byte
    //   aligned atomic), which outlives the call;
    // - the kernel only reads the 32 bits (comparing them with `expected`
    //   atomically with queueing); Rust code never accesses them as a
    //   32-bit value, so no mixed-size access happens on our side;
    // - `ts` is a valid timespec for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            low_half(word),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wake up to `count` threads sleeping on the low half of `word`:
/// `futex(2)` `FUTEX_WAKE`. Returns how many were woken.
pub fn futex_wake_low(word: &AtomicU64, count: u32) -> usize {
    // SAFETY: the address is a 4-byte aligned half of `word`, alive for the
    // call; FUTEX_WAKE does not access the memory, it only keys the queue.
    let woken = unsafe { libc::syscall(libc::SYS_futex, low_half(word), libc::FUTEX_WAKE, count) };
    usize::try_from(woken).unwrap_or(0)
}

/// This thread's id: `gettid(2)`, cached per thread (and per fork). Thread
/// ids are unique host-wide within one pid namespace and at most 2^22, so
/// they fit the lock word.
pub fn tid() -> u32 {
    thread_local! {
        static CACHE: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((u32::MAX, 0)) };
    }
    let epoch = fork_epoch();
    CACHE.with(|cache| {
        let (cached_epoch, tid) = cache.get();
        if cached_epoch == epoch {
            return tid;
        }
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        cache.set((epoch, tid));
        tid
    })
}

/// Start time of this process in clock ticks since boot; 0 if unknown.
pub fn own_start_time() -> u64 {
    static CACHE: std::sync::Mutex<(u32, u64)> = std::sync::Mutex::new((u32::MAX, 0));
    let epoch = fork_epoch();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0 != epoch {
        *cache = (epoch, known_start_time(pid()));
    }
    cache.1
}

/// Start time of this thread in clock ticks since boot; 0 if unknown.
pub fn own_thread_start_time() -> u64 {
    thread_local! {
        static CACHE: std::cell::Cell<(u32, u64)> = const { std::cell::Cell::new((u32::MAX, 0)) };
    }
    let epoch = fork_epoch();
    CACHE.with(|cache| {
        let (cached_epoch, start) = cache.get();
        if cached_epoch == epoch {
            return start;
        }
        let start = known_start_time(tid());
        cache.set((epoch, start));
        start
    })
}

fn known_start_time(id: u32) -> u64 {
    match liveness(id) {
        Liveness::Alive { start_time } => start_time,
        _ => 0,
    }
}

/// Whether task `id` runs: `kill(2)` with signal 0 (`ESRCH` proves it is
/// gone), then field 3 (state) and 22 (start time) of `/proc/<id>/stat`.
pub fn liveness(id: u32) -> Liveness {
    // Ids come from shared memory: anything outside 1..=i32::MAX is no task
    // (and must not reach `Pid::from_raw`, which asserts on negatives).
    let Some(pid) = i32::try_from(id)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Liveness::Dead;
    };
    if let Err(Errno::SRCH) = rustix::process::test_kill_process(pid) {
        return Liveness::Dead;
    }
    match std::fs::read(format!("/proc/{id}/stat")) {
        Ok(stat) => parse_stat(&stat),
        Err(_) => Liveness::Unknown,
    }
}

/// The process a thread belongs to: `Tgid` in `/proc/<tid>/status`.
pub fn process_of_thread(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Parse state and start time out of a `/proc/<id>/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &[u8]) -> Liveness {
    let parsed = (|| {
        let close = stat.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?; // field 3
        if state == "Z" || state == "X" {
            return Some(Liveness::Dead);
        }
        let start_time = fields.nth(18)?.parse().ok()?; // field 22
        Some(Liveness::Alive { start_time })
    })();
    parsed.unwrap_or(Liveness::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_past_a_hostile_command_name() {
        let line = b"42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Liveness::Alive { start_time: 987654 });
        let zombie = b"42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(zombie), Liveness::Dead);
        assert_eq!(parse_stat(b"42 (x) S 1"), Liveness::Unknown);
    }

    #[test]
    fn own_start_time_is_known_and_stable() {
        assert!(own_start_time() > 0);
        assert_eq!(
            liveness(pid()),
            Liveness::Alive {
                start_time: own_start_time()
            }
        );
        assert_eq!(liveness(0), Liveness::Dead);
        assert_eq!(liveness(u32::MAX), Liveness::Dead);
    }

    #[test]
    fn a_forked_child_sees_its_own_thread_id() {
        let parent = tid();
        let _ = pid(); // fill the cache the child must not trust
                       // SAFETY: the child only makes async-signal-safe calls (`gettid(2)`,
                       // through our cache or directly) and leaves with `_exit(2)`.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let ok =
                tid() != parent && tid() == rustix::thread::gettid().as_raw_nonzero().get() as u32;
            // SAFETY: `_exit(2)` ends the forked child without running the
            // parent's destructors or test harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid pointer.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
