//! Linux tasks (processes and threads): this thread's id, and a task's
//! liveness and start time from `/proc`, so a reused id is never taken for
//! a live owner. Linux only: the Linux backend's lock names threads, and
//! the Unix process facts read process liveness here on Linux.
//!
//! Every function names the system call (or file) it uses.

// Thread ids and their start times serve the Linux backend's lock, which
// the `posix` backend's Linux build does not use.
#![cfg_attr(feature = "posix-backend", allow(dead_code))]

use std::cell::Cell;
use std::thread::LocalKey;

use rustix::io::Errno;

use super::fork_epoch;
use crate::attach::Liveness;

/// This thread's id: `gettid(2)`, cached per thread (and per fork). Thread
/// ids are unique host-wide within one pid namespace and at most 2^22, so
/// they fit the lock word.
pub fn tid() -> u32 {
    thread_local! {
        static CACHE: Cell<(u32, u32)> = const { Cell::new((u32::MAX, 0)) };
    }
    per_thread_and_fork(&CACHE, || {
        rustix::thread::gettid().as_raw_nonzero().get() as u32
    })
}

/// Start time of this thread in clock ticks since boot; 0 if unknown.
pub fn own_thread_start_time() -> u64 {
    thread_local! {
        static CACHE: Cell<(u32, u64)> = const { Cell::new((u32::MAX, 0)) };
    }
    per_thread_and_fork(&CACHE, || known_start_time(tid()))
}

/// The value `cache` holds for this thread, made by `make` once per fork
/// epoch (a forked child's thread is another thread). `cache` starts at
/// epoch `u32::MAX`, which the fork epoch does not reach in practice.
fn per_thread_and_fork<T: Copy>(
    cache: &'static LocalKey<Cell<(u32, T)>>,
    make: impl FnOnce() -> T,
) -> T {
    let epoch = fork_epoch();
    cache.with(|cache| {
        let (cached_epoch, value) = cache.get();
        if cached_epoch == epoch {
            return value;
        }
        let value = make();
        cache.set((epoch, value));
        value
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
    use super::super::pid;
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
