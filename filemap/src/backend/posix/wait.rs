//! Wait-on-address, chosen per OS: sleep while a shared 32-bit word holds
//! a value, and wake the threads sleeping on it, across processes.
//!
//! | OS      | primitive                                                                   |
//! |---------|-----------------------------------------------------------------------------|
//! | Linux   | `futex(2)` `FUTEX_WAIT` / `FUTEX_WAKE` (shared: no `_PRIVATE`)               |
//! | FreeBSD | `_umtx_op(2)` `UMTX_OP_WAIT_UINT` / `UMTX_OP_WAKE` (shared: no `_PRIVATE`)   |
//! | macOS   | `os_sync_wait_on_address_with_timeout(3)` / `os_sync_wake_by_address_all(3)` and `_any` with the `SHARED` flags (macOS 14.4+); else `__ulock_wait` / `__ulock_wake` with `UL_COMPARE_AND_WAIT_SHARED` (the private interface libc++ and Rust's std use); else bounded polling |
//!
//! The macOS functions are looked up at run time (`dlsym(3)`), so one
//! binary runs on every macOS. Where neither exists, a sleeper only
//! sleeps [`POLL`] at a time, which costs latency (up to that much per
//! wake-up), never correctness: every caller re-checks its condition
//! after each sleep. A wake-up that cannot tell how many threads it woke
//! (FreeBSD, polling) reports one; `lock.rs` then at worst keeps a
//! hand-over a slice longer.
//!
//! [`wait`] reports whether a signal handler cut the sleep short (`EINTR`),
//! for interruptible waits (`Wait::interruptible`); polling never knows,
//! and reports `false`.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

pub use os::{wait, wait_low, wake_all, wake_low};

/// Longest sleep where the OS offers no wait-on-address.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub const POLL: Duration = Duration::from_micros(500);

#[cfg(target_os = "linux")]
mod os {
    use super::*;
    use crate::backend::unix::futex;

    /// `futex(2)` `FUTEX_WAIT` on `word`; `true` on `EINTR`.
    pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
        futex::wait(word, expected, timeout)
    }

    /// `futex(2)` `FUTEX_WAKE` of everyone on `word`.
    pub fn wake_all(word: &AtomicU32) {
        futex::wake(word, i32::MAX as u32);
    }

    /// `futex(2)` `FUTEX_WAIT` on the low half of `word`.
    pub fn wait_low(word: &AtomicU64, expected: u32, timeout: Duration) {
        futex::wait_low(word, expected, timeout);
    }

    /// `futex(2)` `FUTEX_WAKE` of up to `count` on the low half of `word`.
    pub fn wake_low(word: &AtomicU64, count: u32) -> usize {
        futex::wake_low(word, count)
    }
}

#[cfg(target_os = "freebsd")]
mod os {
    use super::*;
    use crate::backend::unix::low_half;
    use std::ffi::c_void;

    /// `_umtx_op(2)` `UMTX_OP_WAIT_UINT` (not `_PRIVATE`: the word is in a
    /// shared mapping), with a relative timeout. `true` when a signal
    /// handler interrupted it (`EINTR`).
    fn umtx_wait(addr: *mut u32, expected: u32, timeout: Duration) -> bool {
        let mut ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY:
        // - `addr` is a 4-byte aligned word inside a live shared mapping
        //   (or a live atomic), which the kernel only reads;
        // - with `uaddr` set to the size of a `timespec`, `uaddr2` points to
        //   one holding a relative timeout, alive for the call.
        let r = unsafe {
            libc::_umtx_op(
                addr.cast::<c_void>(),
                libc::UMTX_OP_WAIT_UINT,
                libc::c_ulong::from(expected),
                std::mem::size_of::<libc::timespec>() as *mut c_void,
                (&mut ts as *mut libc::timespec).cast::<c_void>(),
            )
        };
        r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    }

    /// `_umtx_op(2)` `UMTX_OP_WAKE` of up to `count` (shared). It does not
    /// say how many it woke: one is reported.
    fn umtx_wake(addr: *mut u32, count: u32) -> usize {
        // SAFETY: `addr` is a live 4-byte aligned word; `UMTX_OP_WAKE` only
        // keys the sleep queue with it and takes no other pointer.
        unsafe {
            libc::_umtx_op(
                addr.cast::<c_void>(),
                libc::UMTX_OP_WAKE,
                libc::c_ulong::from(count),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        1
    }

    pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
        umtx_wait(word.as_ptr(), expected, timeout)
    }

    pub fn wake_all(word: &AtomicU32) {
        umtx_wake(word.as_ptr(), i32::MAX as u32);
    }

    pub fn wait_low(word: &AtomicU64, expected: u32, timeout: Duration) {
        umtx_wait(low_half(word), expected, timeout);
    }

    pub fn wake_low(word: &AtomicU64, count: u32) -> usize {
        umtx_wake(low_half(word), count)
    }
}

#[cfg(target_os = "macos")]
mod os {
    use super::*;
    use crate::backend::unix::low_half;
    use std::ffi::{c_int, c_void, CStr};
    use std::sync::OnceLock;

    /// `os_sync_wait_on_address_with_timeout(addr, value, size, flags,
    /// clockid, timeout_ns)` (`<os/os_sync_wait_on_address.h>`).
    type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
    /// `os_sync_wake_by_address_all(addr, size, flags)` and `_any`.
    type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;
    /// `__ulock_wait(operation, addr, value, timeout_us)`.
    type UlockWait = unsafe extern "C" fn(u32, *mut c_void, u64, u32) -> c_int;
    /// `__ulock_wake(operation, addr, wake_value)`.
    type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> c_int;

    /// `OS_SYNC_WAIT_ON_ADDRESS_SHARED` / `OS_SYNC_WAKE_BY_ADDRESS_SHARED`.
    const OS_SYNC_SHARED: u32 = 1;
    /// `OS_CLOCK_MACH_ABSOLUTE_TIME`: the timeout is relative, in ns.
    const OS_CLOCK_MACH_ABSOLUTE_TIME: u32 = 32;
    /// `UL_COMPARE_AND_WAIT_SHARED`: compare a 32-bit word, across processes.
    const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
    /// `ULF_WAKE_ALL`.
    const ULF_WAKE_ALL: u32 = 0x100;
    /// `ULF_NO_ERRNO`: return `-errno` instead of setting `errno`.
    const ULF_NO_ERRNO: u32 = 0x0100_0000;

    enum Primitive {
        OsSync {
            wait: OsSyncWait,
            wake_all: OsSyncWake,
            wake_any: OsSyncWake,
        },
        Ulock {
            wait: UlockWait,
            wake: UlockWake,
        },
        Poll,
    }

    /// `dlsym(3)` in every loaded image (`RTLD_DEFAULT`).
    fn symbol(name: &CStr) -> Option<*mut c_void> {
        // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the
        // images already loaded and returns null when there is none.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        (!found.is_null()).then_some(found)
    }

    /// The best primitive this macOS has, looked up once.
    fn primitive() -> &'static Primitive {
        static PRIMITIVE: OnceLock<Primitive> = OnceLock::new();
        PRIMITIVE.get_or_init(|| {
            let os_sync = (
                symbol(c"os_sync_wait_on_address_with_timeout"),
                symbol(c"os_sync_wake_by_address_all"),
                symbol(c"os_sync_wake_by_address_any"),
            );
            if let (Some(wait), Some(wake_all), Some(wake_any)) = os_sync {
                // SAFETY: these symbols are the functions declared in
                // <os/os_sync_wait_on_address.h> with exactly the
                // signatures of `OsSyncWait` and `OsSyncWake`.
                return unsafe {
                    Primitive::OsSync {
                        wait: std::mem::transmute::<*mut c_void, OsSyncWait>(wait),
                        wake_all: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_all),
                        wake_any: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_any),
                    }
                };
            }
            if let (Some(wait), Some(wake)) = (symbol(c"__ulock_wait"), symbol(c"__ulock_wake")) {
                // SAFETY: `__ulock_wait` and `__ulock_wake` (xnu
                // `bsd/sys/ulock.h`) have the signatures of `UlockWait` and
                // `UlockWake`.
                return unsafe {
                    Primitive::Ulock {
                        wait: std::mem::transmute::<*mut c_void, UlockWait>(wait),
                        wake: std::mem::transmute::<*mut c_void, UlockWake>(wake),
                    }
                };
            }
            Primitive::Poll
        })
    }

    /// Sleep on `addr`; `true` when the kernel said a signal interrupted
    /// the sleep (`EINTR`; polling cannot tell, and says `false`).
    fn wait_addr(
        addr: *mut u32,
        current: impl Fn() -> u32,
        expected: u32,
        timeout: Duration,
    ) -> bool {
        match primitive() {
            Primitive::OsSync { wait, .. } => {
                let ns = timeout.as_nanos().clamp(1_000, u128::from(u64::MAX)) as u64;
                // SAFETY: `addr` is a live 4-byte aligned word in a shared
                // mapping (or a live atomic) that the kernel only reads;
                // size 4 matches it; the flags and clock are valid values.
                let r = unsafe {
                    wait(
                        addr.cast(),
                        u64::from(expected),
                        4,
                        OS_SYNC_SHARED,
                        OS_CLOCK_MACH_ABSOLUTE_TIME,
                        ns,
                    )
                };
                r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            }
            Primitive::Ulock { wait, .. } => {
                // 0 would mean "no timeout".
                let us = timeout.as_micros().clamp(1, u128::from(u32::MAX)) as u32;
                // SAFETY: as above: a live aligned 32-bit word, read by the
                // kernel only; `UL_COMPARE_AND_WAIT_SHARED` compares 32 bits.
                let r = unsafe {
                    wait(
                        UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO,
                        addr.cast(),
                        u64::from(expected),
                        us,
                    )
                };
                // ULF_NO_ERRNO: the error comes back negated.
                r == -libc::EINTR
            }
            Primitive::Poll => {
                if current() == expected {
                    std::thread::sleep(timeout.min(POLL));
                }
                false
            }
        }
    }

    fn wake_addr(addr: *mut u32, all: bool) -> usize {
        let woke = match primitive() {
            Primitive::OsSync {
                wake_all, wake_any, ..
            } => {
                let wake = if all { wake_all } else { wake_any };
                // SAFETY: the address only keys the kernel's wait queue.
                unsafe { wake(addr.cast(), 4, OS_SYNC_SHARED) == 0 }
            }
            Primitive::Ulock { wake, .. } => {
                let op =
                    UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO | if all { ULF_WAKE_ALL } else { 0 };
                // SAFETY: the address only keys the kernel's wait queue.
                unsafe { wake(op, addr.cast(), 0) >= 0 }
            }
            Primitive::Poll => true,
        };
        usize::from(woke)
    }

    pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        wait_addr(word.as_ptr(), || word.load(Relaxed), expected, timeout)
    }

    pub fn wake_all(word: &AtomicU32) {
        wake_addr(word.as_ptr(), true);
    }

    pub fn wait_low(word: &AtomicU64, expected: u32, timeout: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        wait_addr(
            low_half(word),
            || word.load(Relaxed) as u32,
            expected,
            timeout,
        );
    }

    pub fn wake_low(word: &AtomicU64, count: u32) -> usize {
        wake_addr(low_half(word), count > 1)
    }
}
