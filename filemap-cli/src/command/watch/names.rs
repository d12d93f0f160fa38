//! Waking a waiter when a region's name appears or goes away, without a
//! periodic wake-up where the OS can tell: on Linux an `inotify(7)` watch
//! on the directory of the regions' files; elsewhere (macOS, FreeBSD: their
//! shared-memory objects are in no directory one can watch; Windows) a
//! poll every [`POLL`].
//!
//! An [`Alarm`] is what a waiter waits on: a [`CancelToken`] it gives
//! `FileMap::wait_change`, renewed at every ring so the waiter can wait
//! again, and a counter with a condition variable for a waiter that has no
//! region yet. [`Alarm::stop`] ends every wait for good (Ctrl-C).

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use filemap::CancelToken;

/// How often the name is looked at where no directory watch is possible.
pub const POLL: Duration = Duration::from_millis(100);

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
    fn state(&self) -> MutexGuard<'_, State> {
        // Plain assignments under the lock: consistent whatever panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token for the next wait and the ring count, or `None` once
    /// stopped. Take it *before* looking at what the alarm rings for: a
    /// ring after the look cancels this token (or a later one).
    pub fn arm(&self) -> Option<(CancelToken, u64)> {
        let s = self.state();
        (!s.stopped).then(|| (s.token.clone(), s.rings))
    }

    /// Something may have changed: end the current wait (its token is
    /// cancelled and a fresh one takes its place) and the blocked
    /// [`Alarm::wait`]s.
    pub fn ring(&self) {
        let mut s = self.state();
        s.token.cancel();
        if !s.stopped {
            s.token = CancelToken::new();
        }
        s.rings = s.rings.wrapping_add(1);
        self.rung.notify_all();
    }

    /// End every wait, now and from now on.
    pub fn stop(&self) {
        let mut s = self.state();
        s.stopped = true;
        s.token.cancel();
        self.rung.notify_all();
    }

    /// Block until a ring after the count `after` (`true`) or a stop
    /// (`false`).
    pub fn wait(&self, after: u64) -> bool {
        let mut s = self.state();
        while !s.stopped && s.rings == after {
            s = self.rung.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        !s.stopped
    }
}

/// Ring `alarm` whenever the directory entry `path` is created, removed
/// or renamed (Linux), or every [`POLL`] (elsewhere, or when the directory
/// cannot be watched). The watch is in place when this returns, so a
/// change made after it is never missed. The thread lives as long as the
/// process.
pub fn watch(path: &Path, alarm: Arc<Alarm>) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    let events = inotify::Watch::new(path).ok();
    #[cfg(not(target_os = "linux"))]
    let events: Option<std::convert::Infallible> = None;
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("filemap-names".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            if let Some(mut events) = events {
                // Returns only if the watch broke: poll from then on.
                events.ring_on_changes(&path, &alarm);
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (path, events);
            loop {
                std::thread::sleep(POLL);
                alarm.ring();
            }
        })?;
    Ok(())
}

#[cfg(target_os = "linux")]
mod inotify {
    use std::mem::MaybeUninit;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::Path;

    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    use rustix::io::Errno;

    use super::Alarm;

    /// An inotify watch on the directory of a region's file.
    pub struct Watch {
        fd: OwnedFd,
    }

    impl Watch {
        pub fn new(path: &Path) -> rustix::io::Result<Watch> {
            let dir = path.parent().ok_or(Errno::INVAL)?;
            let fd = inotify::init(CreateFlags::CLOEXEC)?;
            inotify::add_watch(
                &fd,
                dir,
                WatchFlags::CREATE
                    | WatchFlags::DELETE
                    | WatchFlags::MOVED_FROM
                    | WatchFlags::MOVED_TO
                    | WatchFlags::ONLYDIR,
            )?;
            Ok(Watch { fd })
        }

        /// Ring `alarm` at every event naming `path`'s file (and when
        /// events were lost); return if the watch breaks.
        pub fn ring_on_changes(&mut self, path: &Path, alarm: &Alarm) {
            let Some(file) = path.file_name() else { return };
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut reader = inotify::Reader::new(&self.fd, &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(event) => event,
                    Err(Errno::INTR) => continue,
                    Err(_) => return,
                };
                let flags = event.events();
                if flags.contains(ReadFlags::IGNORED) {
                    // The directory itself went away or was unmounted.
                    alarm.ring();
                    return;
                }
                let ours = event
                    .file_name()
                    .is_some_and(|name| name.to_bytes() == file.as_bytes());
                if ours || flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                    alarm.ring();
                }
            }
        }
    }
}
