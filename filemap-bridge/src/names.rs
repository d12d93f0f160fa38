//! Waking a region's watcher when the region's name appears or goes away
//! (`filemap rm`, perhaps followed by a new region of that name), without a
//! periodic wake-up where the OS can tell: on Linux an `inotify(7)` watch
//! on the directory of the regions' files; elsewhere (macOS, FreeBSD: their
//! shared-memory objects are in no directory one can watch) a look every
//! [`POLL`].
//!
//! An [`Alarm`] is what a watcher waits on: a [`CancelToken`] it gives
//! `FileMap::wait_change`, renewed at every ring so the watcher can wait
//! again, and a counter with a condition variable for a watcher with
//! nothing to wait on. [`Alarm::stop`] ends every wait for good (the
//! bridge's shutdown).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use filemap::CancelToken;

/// How often the names are looked at where no directory watch is possible.
pub const POLL: Duration = Duration::from_millis(200);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain assignments under these locks: consistent whatever panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A renewable [`CancelToken`] and a ring counter; see the module docs.
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

impl Alarm {
    /// The token for the next wait and the ring count, or `None` once
    /// stopped. Take it *before* looking at what the alarm rings for: a
    /// ring after the look cancels this token (or a later one).
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

    /// End every wait, now and from now on.
    pub fn stop(&self) {
        let mut s = locked(&self.state);
        s.stopped = true;
        s.token.cancel();
        self.rung.notify_all();
    }

    /// Block until a ring after the count `after` (`true`) or a stop
    /// (`false`).
    pub fn wait(&self, after: u64) -> bool {
        let mut s = locked(&self.state);
        while !s.stopped && s.rings == after {
            s = self.rung.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        !s.stopped
    }
}

/// The thread ringing each region's alarm when its name changes; stopped
/// (and joined) by [`NameWatch::stop`] or on drop.
pub struct NameWatch {
    stopped: Arc<AtomicBool>,
    /// Wakes the polling loop at once on stop.
    poll_stop: Arc<(Mutex<bool>, Condvar)>,
    #[cfg(target_os = "linux")]
    inotify: Option<Arc<inotify::Watch>>,
    thread: Option<JoinHandle<()>>,
}

impl NameWatch {
    /// Ring each alarm whenever its path's directory entry is created,
    /// removed or renamed (Linux), or every [`POLL`] (elsewhere, or when a
    /// directory cannot be watched). The watch is in place when this
    /// returns, so a change made after it is never missed.
    pub fn start(entries: Vec<(PathBuf, Arc<Alarm>)>) -> std::io::Result<NameWatch> {
        let stopped = Arc::new(AtomicBool::new(false));
        let poll_stop = Arc::new((Mutex::new(false), Condvar::new()));
        #[cfg(target_os = "linux")]
        let inotify = inotify::Watch::new(&entries).ok().map(Arc::new);
        let thread = {
            let stopped = Arc::clone(&stopped);
            let poll_stop = Arc::clone(&poll_stop);
            #[cfg(target_os = "linux")]
            let inotify = inotify.clone();
            std::thread::Builder::new()
                .name("names".into())
                .spawn(move || {
                    #[cfg(target_os = "linux")]
                    if let Some(inotify) = inotify {
                        // Returns on stop, or if the watch broke: then poll.
                        inotify.ring_on_changes(&entries, &stopped);
                    }
                    let ring_all = || entries.iter().for_each(|(_, alarm)| alarm.ring());
                    let (lock, cvar) = &*poll_stop;
                    let mut stop = locked(lock);
                    while !*stop && !stopped.load(Ordering::SeqCst) {
                        stop = cvar
                            .wait_timeout(stop, POLL)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        ring_all();
                    }
                })?
        };
        Ok(NameWatch {
            stopped,
            poll_stop,
            #[cfg(target_os = "linux")]
            inotify,
            thread: Some(thread),
        })
    }

    /// End the thread and wait for it.
    pub fn stop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        #[cfg(target_os = "linux")]
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

#[cfg(target_os = "linux")]
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
        /// `stopped` is set and the reader unblocked, or if a watch breaks.
        /// (Regions' files share one directory but with `Builder::path`,
        /// which the bridge does not use; each is matched by its own.)
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
