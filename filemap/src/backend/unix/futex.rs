//! Futexes (`futex(2)`): sleep while a word in shared memory holds a
//! value, and wake its sleepers, across processes. Linux only; used by the
//! Linux backend and by the `posix` backend's Linux build.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use super::low_half;

/// Sleep while `*word == expected`, at most `timeout`: `futex(2)`
/// `FUTEX_WAIT` (shared, since the word lives in a shared mapping).
/// Returns on wake, timeout, signal or a changed word alike: `true` when
/// a signal handler ran during the sleep (`EINTR`). The sleep has a
/// timeout, so the kernel reports `EINTR` for every handled signal,
/// `SA_RESTART` or not.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    futex::wait(word, futex::Flags::empty(), expected, Some(&ts)) == Err(Errno::INTR)
}

/// Wake up to `count` threads sleeping on `word`: `futex(2)` `FUTEX_WAKE`.
pub fn wake(word: &AtomicU32, count: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}

/// Sleep while the low 32 bits of `word` equal `expected`, at most
/// `timeout`: `futex(2)` `FUTEX_WAIT` on the word's low half (shared).
/// Returns on wake, timeout, signal or a changed word alike.
pub fn wait_low(word: &AtomicU64, expected: u32, timeout: Duration) {
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
pub fn wake_low(word: &AtomicU64, count: u32) -> usize {
    // SAFETY: the address is a 4-byte aligned half of `word`, alive for the
    // call; FUTEX_WAKE does not access the memory, it only keys the queue.
    let woken = unsafe { libc::syscall(libc::SYS_futex, low_half(word), libc::FUTEX_WAKE, count) };
    usize::try_from(woken).unwrap_or(0)
}
