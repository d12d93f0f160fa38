//! The harness's only OS seam: CPU pinning, the monotonic clock, bare POSIX
//! shared memory and futexes (for the floors), and child-process hygiene.
//!
//! Everything above this module is free of `unsafe` except the peers'
//! own unsafe APIs (raw_sync, mmap-sync), which their modules document.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::Mode;
use rustix::mm::{self, MapFlags, ProtFlags};
use rustix::shm;
use rustix::thread::{futex, CpuSet};
use rustix::time::{clock_gettime, ClockId};

/// Number of CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pin the calling thread to `cpu`: `sched_setaffinity(2)`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

/// Let the calling thread run on every CPU again: `sched_setaffinity(2)`.
pub fn unpin() -> io::Result<()> {
    let mut set = CpuSet::new();
    for cpu in 0..cpu_count().min(CpuSet::MAX_CPU) {
        set.set(cpu);
    }
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

/// `CLOCK_MONOTONIC` in nanoseconds: `clock_gettime(2)` (vDSO). The same
/// clock in every process, so timestamps may cross process boundaries.
#[inline]
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// CPU time (user + system, all threads) process `pid` has used, in
/// nanoseconds: its process CPU clock from `clock_getcpuclockid(3)`, read
/// with `clock_gettime(2)` (the scheduler's runtime, in ns, where
/// `/proc/<pid>/stat` has 10 ms clock ticks). Exact for this process; for
/// another, Linux does not bring a thread that is running at that moment up
/// to date, so it lags by up to one scheduler tick (4 ms at HZ=250) while
/// that process runs, and is exact while it sleeps. `None` if the process
/// is gone.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid, writable clockid_t for the call.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; `clock` came from
    // clock_getcpuclockid.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time (user + system) of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Ask the kernel to SIGKILL this (child) process when its parent dies:
/// `prctl(2)` `PR_SET_PDEATHSIG`. Keeps a crashed harness from leaving
/// echo children behind.
pub fn die_with_parent() -> io::Result<()> {
    Ok(rustix::process::set_parent_process_death_signal(Some(
        rustix::process::Signal::KILL,
    ))?)
}

/// Whether process `pid` exists (`/proc/<pid>`).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Sleep while `*word == expected`, at most `timeout`: `futex(2)`
/// `FUTEX_WAIT` (shared: the word lives in a shared mapping).
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wake up to `count` sleepers on `word`: `futex(2)` `FUTEX_WAKE`.
#[inline]
pub fn futex_wake(word: &AtomicU32, count: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), count);
}

/// A bare POSIX shared-memory object, mapped whole. The creator unlinks
/// the name on drop; everyone unmaps.
pub struct Shm {
    ptr: NonNull<u8>,
    len: usize,
    name: String,
    owner: bool,
}

// SAFETY: `Shm` owns a plain shared mapping; all access to its bytes goes
// through atomics or raw copies whose callers do their own
// synchronisation, so the owner may move to or be shared with other threads.
unsafe impl Send for Shm {}
// SAFETY: as for `Send`: `&Shm` only exposes the base pointer and length.
unsafe impl Sync for Shm {}

impl Shm {
    /// Create `name` (exclusively) with `len` zeroed bytes:
    /// `shm_open(3)` + `ftruncate(2)` + `mmap(2)`.
    pub fn create(name: &str, len: usize) -> io::Result<Shm> {
        let fd = shm::open(
            name,
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )?;
        let mapped = rustix::fs::ftruncate(&fd, len as u64)
            .map_err(io::Error::from)
            .and_then(|()| map(&fd, len));
        match mapped {
            Ok(ptr) => Ok(Shm {
                ptr,
                len,
                name: name.to_owned(),
                owner: true,
            }),
            Err(e) => {
                let _ = shm::unlink(name);
                Err(e)
            }
        }
    }

    /// Attach to existing `name`: `shm_open(3)` + `fstat(2)` + `mmap(2)`.
    pub fn open(name: &str) -> io::Result<Shm> {
        let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty())?;
        let len = rustix::fs::fstat(&fd)?.st_size as usize;
        if len == 0 {
            return Err(io::Error::other(format!("shared memory {name} is empty")));
        }
        Ok(Shm {
            ptr: map(&fd, len)?,
            len,
            name: name.to_owned(),
            owner: false,
        })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The atomic `u32` at `offset` (4-aligned, inside the mapping).
    pub fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.len,
            "u32 at {offset} outside {}",
            self.len
        );
        // SAFETY:
        // - the word lies inside the mapping and is 4-aligned (asserted;
        //   the mapping itself is page aligned);
        // - other processes touch it only through atomics too, and an
        //   `AtomicU32` has no invalid bit patterns;
        // - the reference borrows `self`, so it cannot outlive the mapping.
        // SAFETY: holds by the conditions listed above.
        unsafe { AtomicU32::from_ptr(self.as_ptr().add(offset).cast()) }
    }

    /// The atomic `u64` at `offset` (8-aligned, inside the mapping).
    pub fn u64_at(&self, offset: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.len,
            "u64 at {offset} outside {}",
            self.len
        );
        // SAFETY: as in `u32_at`, for an 8-aligned 8-byte word.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.as_ptr().add(offset).cast()) }
    }

    /// Copy `src` into the mapping at `offset`.
    pub fn copy_in(&self, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= self.len, "copy_in past the end");
        // SAFETY:
        // - the destination range lies inside the mapping (asserted);
        // - `src` is private memory, so the ranges cannot overlap;
        // - the protocol on top (a sequence word with release/acquire)
        //   keeps the peer from reading these bytes until they are
        //   published, and from writing them at all.
        // SAFETY: holds by the conditions listed above.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(offset), src.len()) }
    }

    /// Copy `dst.len()` bytes at `offset` out of the mapping.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        assert!(offset + dst.len() <= self.len, "copy_out past the end");
        // SAFETY:
        // - the source range lies inside the mapping (asserted);
        // - `dst` is private memory, so the ranges cannot overlap;
        // - the peer published these bytes (release) before the caller
        //   observed the sequence word (acquire) and does not write them
        //   again until the caller answers.
        // SAFETY: holds by the conditions listed above.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned and `Shm` is
        // not `Clone`, so this is the only unmap. `munmap(2)`.
        unsafe {
            let _ = mm::munmap(self.ptr.as_ptr().cast(), self.len);
        }
        if self.owner {
            let _ = shm::unlink(self.name.as_str());
        }
    }
}

/// `mmap(2)` `len` bytes of `fd`, shared, read-write.
fn map(fd: &OwnedFd, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY:
    // - a null hint lets the kernel choose the address: no existing mapping
    //   is replaced;
    // - the file is at least `len` bytes long (sized or checked by caller);
    // - the result is owned by one `Shm` (or unmapped by `bare_cycle`),
    //   which unmaps it exactly once.
    // SAFETY: holds by the conditions listed above.
    let ptr = unsafe {
        mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd.as_fd(),
            0,
        )?
    };
    NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// One bare create/attach cycle for the open/close benchmark: `shm_open`
/// (+ `ftruncate` when `create`, `fstat` when attaching) + `mmap` + touch
/// the first byte + `munmap` + `close` (+ `shm_unlink` when `create`).
pub fn bare_cycle(name: &str, len: usize, create: bool) -> io::Result<()> {
    let fd = if create {
        let fd = shm::open(
            name,
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        fd
    } else {
        let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty())?;
        let _ = rustix::fs::fstat(&fd)?.st_size;
        fd
    };
    let ptr = map(&fd, len)?;
    // Touch the first page as a region's header would be: written by its
    // creator, read by an attacher.
    if create {
        // SAFETY: the mapping is `len >= 1` bytes long, writable, and only
        // this call uses it.
        unsafe { std::ptr::write_volatile(ptr.as_ptr(), 1) };
    } else {
        // SAFETY: the mapping is `len >= 1` bytes long; a byte has no
        // invalid values whatever another process wrote.
        unsafe { std::ptr::read_volatile(ptr.as_ptr()) };
    }
    // SAFETY: `ptr`/`len` come from the `mmap` above and are unmapped once.
    unsafe {
        mm::munmap(ptr.as_ptr().cast(), len)?;
    }
    drop(fd);
    if create {
        shm::unlink(name)?;
    }
    Ok(())
}
