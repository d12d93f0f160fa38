//! Being told when a region's name appears or goes away: "wake me when
//! region X is created, or removed" (`filemap rm`, perhaps followed by a
//! new region of that name), for a watcher that has no region yet or must
//! notice that its region's name now leads elsewhere.
//!
//! An [`Alarm`] is what a watcher waits on: a [`CancelToken`] it gives
//! [`FileMap::wait_change`](crate::FileMap::wait_change), renewed at every
//! ring so the watcher can wait again, and a ring counter with a condition
//! variable for a watcher that has nothing else to wait on
//! ([`Alarm::wait`]). A [`NameWatch`] rings alarms when names change:
//! without a periodic wake-up where the OS can tell (Linux: one
//! `inotify(7)` watch on the directory of the regions' files), elsewhere a
//! ring every [`NameWatch::POLL_INTERVAL`] (macOS and FreeBSD, whose
//! shared-memory objects are in no directory one can watch; Linux built
//! with the `posix-backend` feature; Windows, whose sections are kernel
//! objects). A ring means "look again", never "it changed": the watcher
//! checks what it cares about (does the region open? is
//! [`FileMap::is_removed`](crate::FileMap::is_removed)?) after each one.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backend::{validate_name, Backend, Os};
use crate::error::{Error, Result};
use crate::wait::CancelToken;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain assignments under these locks: consistent whatever panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a watcher waits on: a renewable [`CancelToken`] and a ring
/// counter, rung by a [`NameWatch`] (or by anyone: [`Alarm::ring`]) and
/// stopped for good by [`Alarm::stop`] (e.g. from a Ctrl-C handler).
///
/// ```no_run
/// use std::sync::Arc;
/// use filemap::admin::{Alarm, NameWatch};
/// use filemap::{Error, FileMap};
///
/// # fn main() -> filemap::Result<()> {
/// let alarm = Arc::new(Alarm::new());
/// let _watch = NameWatch::start("sensor", Arc::clone(&alarm))?;
/// // Wait for the region to be created (by another process).
/// let map = loop {
///     // Armed before the look: a creation after it rings this count.
///     let Some((_, rings)) = alarm.arm() else { return Ok(()) };
///     match FileMap::builder("sensor").open_only().open() {
///         Ok(map) => break map,
///         Err(Error::NotFound { .. }) => {
///             if !alarm.wait(rings) {
///                 return Ok(()); // stopped
///             }
///         }
///         Err(e) => return Err(e),
///     }
/// };
/// # drop(map);
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct Alarm {
    state: Mutex<State>,
    rung: Condvar,
}

#[derive(Default)]
struct State {
    token: CancelToken,
    rings: u64,
    stopped: bool,
}

impl std::fmt::Debug for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = locked(&self.state);
        f.debug_struct("Alarm")
            .field("rings", &s.rings)
            .field("stopped", &s.stopped)
            .finish()
    }
}

impl Alarm {
    /// An alarm not yet rung.
    pub fn new() -> Alarm {
        Alarm::default()
    }

    /// The token for the next wait and the ring count, or `None` once
    /// stopped. Take it *before* looking at what the alarm rings for: a
    /// ring after the look cancels this token (or a later one) and moves
    /// the count on.
    pub fn arm(&self) -> Option<(CancelToken, u64)> {
        let s = locked(&self.state);
        (!s.stopped).then(|| (s.token.clone(), s.rings))
    }

    /// Something may have changed: end the current wait (its token is
    /// cancelled and a fresh one takes its place) and the blocked
    /// [`Alarm::wait`]s.
    pub fn ring(&self) {
        let mut s = locked(&self.state);
        s.token.cancel();
        if !s.stopped {
            s.token = CancelToken::new();
        }
        s.rings = s.rings.wrapping_add(1);
        self.rung.notify_all();
    }

    /// End every wait, now and from now on: the token is cancelled and
    /// never renewed, [`Alarm::arm`] returns `None`, [`Alarm::wait`]
    /// returns `false`.
    pub fn stop(&self) {
        let mut s = locked(&self.state);
        s.stopped = true;
        s.token.cancel();
        self.rung.notify_all();
    }

    /// Whether [`Alarm::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        locked(&self.state).stopped
    }

    /// Block until a ring after the count `after` (from [`Alarm::arm`]):
    /// `true`; or a stop: `false`.
    pub fn wait(&self, after: u64) -> bool {
        let mut s = locked(&self.state);
        while !s.stopped && s.rings == after {
            s = self.rung.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        !s.stopped
    }
}

/// A thread ringing each watched name's [`Alarm`] when that name appears
/// or goes away; see [`admin`](crate::admin). Ended (and joined) by
/// [`NameWatch::stop`] or on drop. It does not stop the alarms: call
/// [`Alarm::stop`] for that.
pub struct NameWatch {
    stopped: Arc<AtomicBool>,
    /// Wakes the polling loop at once on stop.
    poll_stop: Arc<(Mutex<bool>, Condvar)>,
    #[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
    inotify: Option<Arc<inotify::Watch>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NameWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameWatch")
            .field("polls", &self.polls())
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl NameWatch {
    /// How often every alarm is rung where names cannot be watched.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

    /// Ring `alarm` whenever region `name` is created or removed (or its
    /// file renamed). The watch is in place when this returns, so a
    /// change made after it is never missed.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or [`Error::Io`] if the thread cannot be
    /// started. A directory that cannot be watched is no error: the
    /// watch polls instead.
    pub fn start(name: &str, alarm: Arc<Alarm>) -> Result<NameWatch> {
        NameWatch::start_many([(name, alarm)])
    }

    /// [`NameWatch::start`] for several names on one thread (and, on
    /// Linux, one inotify descriptor): each name's alarm is rung for that
    /// name only. A name may be listed more than once.
    ///
    /// # Errors
    /// As [`NameWatch::start`].
    pub fn start_many<S: AsRef<str>>(
        entries: impl IntoIterator<Item = (S, Arc<Alarm>)>,
    ) -> Result<NameWatch> {
        let entries = entries
            .into_iter()
            .map(|(name, alarm)| {
                let name = name.as_ref();
                validate_name(name)?;
                Ok((Os::shm_path(name), alarm))
            })
            .collect::<Result<Vec<(PathBuf, Arc<Alarm>)>>>()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let poll_stop = Arc::new((Mutex::new(false), Condvar::new()));
        #[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
        let inotify = inotify::Watch::new(&entries).ok().map(Arc::new);
        let thread = {
            let stopped = Arc::clone(&stopped);
            let poll_stop = Arc::clone(&poll_stop);
            #[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
            let inotify = inotify.clone();
            std::thread::Builder::new()
                .name("filemap-names".into())
                .spawn(move || {
                    #[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
                    if let Some(inotify) = inotify {
                        // Returns on stop, or if the watch broke: then poll.
                        inotify.ring_on_changes(&entries, &stopped);
                    }
                    let (lock, cvar) = &*poll_stop;
                    let mut stop = locked(lock);
                    while !*stop && !stopped.load(Ordering::SeqCst) {
                        stop = cvar
                            .wait_timeout(stop, NameWatch::POLL_INTERVAL)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        entries.iter().for_each(|(_, alarm)| alarm.ring());
                    }
                })
                .map_err(|source| Error::Io {
                    op: "start the name-watch thread",
                    name: String::new(),
                    source,
                })?
        };
        Ok(NameWatch {
            stopped,
            poll_stop,
            #[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
            inotify,
            thread: Some(thread),
        })
    }

    /// Whether this watch rings every [`NameWatch::POLL_INTERVAL`] rather
    /// than when a name changes: `false` only where the OS could be asked
    /// to tell (on Linux, unless the directory could not be watched).
    pub fn polls(&self) -> bool {
        #[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
        return self.inotify.is_none();
        #[cfg(not(all(target_os = "linux", not(feature = "posix-backend"))))]
        return true;
    }

    /// End the thread and wait for it. The alarms are left as they are.
    pub fn stop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        #[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
        if let Some(inotify) = &self.inotify {
            inotify.unblock();
        }
        *locked(&self.poll_stop.0) = true;
        self.poll_stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NameWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
mod inotify {
    use std::mem::MaybeUninit;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    use rustix::io::Errno;

    use super::{locked, Alarm};

    /// One inotify instance watching the directories of the regions' files.
    pub struct Watch {
        fd: OwnedFd,
        /// Each entry's directory's watch descriptor, in the entries' order.
        entry_dirs: Vec<i32>,
        /// The watch descriptors, one per directory; removed to unblock
        /// the reader (the kernel then queues an `IN_IGNORED` event).
        dirs: Mutex<Vec<i32>>,
    }

    impl Watch {
        pub fn new(entries: &[(PathBuf, Arc<Alarm>)]) -> rustix::io::Result<Watch> {
            let fd = inotify::init(CreateFlags::CLOEXEC)?;
            let mut dirs = Vec::new();
            let mut entry_dirs = Vec::new();
            for (path, _) in entries {
                let dir = path.parent().ok_or(Errno::INVAL)?;
                let wd = inotify::add_watch(
                    &fd,
                    dir,
                    WatchFlags::CREATE
                        | WatchFlags::DELETE
                        | WatchFlags::MOVED_FROM
                        | WatchFlags::MOVED_TO
                        | WatchFlags::ONLYDIR,
                )?;
                entry_dirs.push(wd);
                // The same directory gives the same descriptor.
                if !dirs.contains(&wd) {
                    dirs.push(wd);
                }
            }
            Ok(Watch {
                fd,
                entry_dirs,
                dirs: Mutex::new(dirs),
            })
        }

        /// Ring an entry's alarm at every event naming its file in its
        /// directory (every alarm when events were lost); return once
        /// `stopped` is set and the reader unblocked, or if a watch breaks
        /// (after ringing every alarm).
        pub fn ring_on_changes(&self, entries: &[(PathBuf, Arc<Alarm>)], stopped: &AtomicBool) {
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut reader = inotify::Reader::new(&self.fd, &mut buf);
            let ring_all = || entries.iter().for_each(|(_, alarm)| alarm.ring());
            loop {
                let event = match reader.next() {
                    Ok(event) => event,
                    Err(Errno::INTR) => continue,
                    Err(_) => return ring_all(),
                };
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let flags = event.events();
                if flags.contains(ReadFlags::IGNORED) {
                    // A directory went away or was unmounted.
                    return ring_all();
                }
                if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                    ring_all();
                    continue;
                }
                let Some(name) = event.file_name() else {
                    continue;
                };
                for ((path, alarm), wd) in entries.iter().zip(&self.entry_dirs) {
                    if *wd == event.wd()
                        && path.file_name().map(|f| f.as_bytes()) == Some(name.to_bytes())
                    {
                        alarm.ring();
                    }
                }
            }
        }

        /// Wake the reader: remove the watches (each queues `IN_IGNORED`).
        pub fn unblock(&self) {
            for wd in locked(&self.dirs).drain(..) {
                let _ = inotify::remove_watch(&self.fd, wd);
            }
        }
    }
}
