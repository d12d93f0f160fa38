//! The Unix process facts ([`Unix`]), which both Unix backends name as
//! their host, and process liveness, chosen per OS: whether a process id
//! runs, and since when, so a reused pid is never taken for a live owner.
//!
//! | OS      | check                                                                            |
//! |---------|----------------------------------------------------------------------------------|
//! | Linux   | `kill(2)` with signal 0, then `/proc/<pid>/stat` (state, start time in ticks)     |
//! | FreeBSD | `kill(2)` with signal 0, then `sysctl(3)` `KERN_PROC_PID` (`ki_stat`, `ki_start`) |
//! | macOS   | `kill(2)` with signal 0, then `proc_pidinfo(3)` `PROC_PIDTBSDINFO` (`pbi_status`, `pbi_start_tvsec/usec`) |
//!
//! On macOS the `kinfo_proc` of `sysctl` `KERN_PROC_PID` carries the
//! same start time (`kp_proc.p_starttime`), but the `libc` crate has no
//! definition of that structure; libproc's `proc_bsdinfo` is the
//! documented equivalent and has one. Start times are microseconds since
//! the epoch on FreeBSD and macOS, clock ticks since boot on Linux: only
//! ever compared with others from the same system.

use std::io;

use crate::attach::{Liveness, Process};
use crate::backend::seam::{ErrorClass, Host};

pub use os::liveness;

/// The Unix process facts both Unix backends name as their
/// [`Backend::Host`](crate::backend::seam::Backend::Host).
pub(crate) enum Unix {}

impl Process for Unix {
    fn pid() -> u32 {
        super::pid()
    }

    /// Read once per fork epoch (a forked child is another process) from
    /// [`liveness`]: clock ticks since boot on Linux,
    /// microseconds since the epoch on macOS and FreeBSD.
    fn own_start_time() -> u64 {
        static CACHE: std::sync::Mutex<(u32, u64)> = std::sync::Mutex::new((u32::MAX, 0));
        let epoch = super::fork_epoch();
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != epoch {
            let start = match liveness(super::pid()) {
                Liveness::Alive { start_time } => start_time,
                _ => 0,
            };
            *cache = (epoch, start);
        }
        cache.1
    }

    fn liveness(pid: u32) -> Liveness {
        liveness(pid)
    }
}

impl Host for Unix {
    #[inline]
    fn fork_epoch() -> u32 {
        super::fork_epoch()
    }

    fn online_cpus() -> usize {
        super::online_cpus()
    }

    fn runnable_threads() -> Option<usize> {
        super::runnable_threads()
    }

    fn classify(e: &io::Error) -> ErrorClass {
        super::classify(e)
    }
}

#[cfg(target_os = "linux")]
mod os {
    use super::*;

    pub fn liveness(pid: u32) -> Liveness {
        super::super::tasks::liveness(pid)
    }
}

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
mod os {
    use super::*;
    use rustix::io::Errno;

    /// `kill(2)` with signal 0: `ESRCH` proves the process gone.
    fn gone(pid: u32) -> Option<libc::pid_t> {
        let raw = libc::pid_t::try_from(pid).ok().filter(|&p| p > 0)?;
        let alive = rustix::process::Pid::from_raw(raw)
            .is_some_and(|p| !matches!(rustix::process::test_kill_process(p), Err(Errno::SRCH)));
        alive.then_some(raw)
    }

    #[cfg(target_os = "freebsd")]
    pub fn liveness(pid: u32) -> Liveness {
        let Some(raw) = gone(pid) else {
            return Liveness::Dead;
        };
        let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, raw];
        // SAFETY: `kinfo_proc` is a plain C struct; all-zero bytes are a
        // valid value of it.
        let mut info: libc::kinfo_proc = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::kinfo_proc>();
        // SAFETY: `mib` holds 4 valid integers; `info` is a writable buffer
        // of `len` bytes, and `len` a valid in/out pointer; no new value.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                (&mut info as *mut libc::kinfo_proc).cast(),
                &mut len,
                std::ptr::null(),
                0,
            )
        };
        if rc != 0 {
            return Liveness::Unknown;
        }
        // No entry: the process ended between the two calls.
        if len == 0 {
            return Liveness::Dead;
        }
        if info.ki_stat == libc::SZOMB {
            return Liveness::Dead;
        }
        let start = info.ki_start;
        Liveness::Alive {
            start_time: (start.tv_sec as u64)
                .wrapping_mul(1_000_000)
                .wrapping_add(start.tv_usec as u64),
        }
    }

    #[cfg(target_os = "macos")]
    pub fn liveness(pid: u32) -> Liveness {
        let Some(raw) = gone(pid) else {
            return Liveness::Dead;
        };
        // SAFETY: `proc_bsdinfo` is a plain C struct; all-zero bytes are a
        // valid value of it.
        let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        // SAFETY: `info` is a writable buffer of `size` bytes, which is
        // what PROC_PIDTBSDINFO fills.
        let got = unsafe {
            libc::proc_pidinfo(
                raw,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            )
        };
        if got != size {
            return match Errno::from_io_error(&std::io::Error::last_os_error()) {
                Some(Errno::SRCH) => Liveness::Dead,
                _ => Liveness::Unknown,
            };
        }
        if info.pbi_status == libc::SZOMB {
            return Liveness::Dead;
        }
        Liveness::Alive {
            start_time: info
                .pbi_start_tvsec
                .wrapping_mul(1_000_000)
                .wrapping_add(info.pbi_start_tvusec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_known_and_stable() {
        assert!(Unix::own_start_time() > 0);
        assert_eq!(
            liveness(Unix::pid()),
            Liveness::Alive {
                start_time: Unix::own_start_time()
            }
        );
        assert_eq!(liveness(0), Liveness::Dead);
        assert_eq!(liveness(u32::MAX), Liveness::Dead);
    }
}
