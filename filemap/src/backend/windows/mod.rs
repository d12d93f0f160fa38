//! Windows: opening, lifetime and the registry of names.
//!
//! A region is a named section (file mapping object)
//! `Local\filemap.<name>`; the kernel removes it when its last handle
//! closes, in whatever way its processes end, which is the default
//! lifetime. Create-or-open is atomic in the kernel (`ERROR_ALREADY_EXISTS`
//! means attach); the creator initialises the header and stores the magic
//! last, and an attacher that finds no magic yet waits a bounded time for
//! it. Persistent regions keep their bytes in a file `filemap.<name>` in a
//! per-user directory and the named section is made over that file, so
//! every opener still meets the others by the section's name. Windows
//! cannot cheaply enumerate kernel object names, so [`FileMap::list`] reads
//! a registry kept in that directory: the persistent files, and a marker
//! `live\filemap.<name>` per non-persistent region (best effort: made by
//! each opener, removed by the last closer; a marker whose section is gone
//! is a stale entry). See `docs/platforms.md`.
//!
//! This module makes no system call itself: those live in `sys.rs`.

mod sys;

use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

use super::seam::{
    open_retrying, parent_dir, too_small, Attempts, Backend, Mapped, OpenMode, Opened, Request,
    Step,
};
use crate::attach::{self, attached_pids, Process};
use crate::error::{Error, Result};
use crate::info::{region_info, RegionInfo};
use crate::layout::{self, Header, HEADER_SIZE, SLOTS};
use crate::lock::{record_owner, LockError};
use crate::notify::Wake;
use crate::snapshot::WriterId;

/// Prefix of every kernel object and file name.
const PREFIX: &str = "filemap.";
/// How long an attacher waits for a creator to store the magic.
const INIT_WAIT: Duration = Duration::from_secs(1);
/// Open attempts (each lost race or dead creator costs one) before `open`
/// gives up.
const OPEN_ATTEMPTS: u32 = 10;
/// `ERROR_FILE_INVALID`: a section over an empty file.
const ERROR_FILE_INVALID: i32 = 1006;

/// Kernel object name of region `name`: `Local\filemap.<name>`.
fn object_name(global: bool, name: &str) -> String {
    format!("{}{PREFIX}{name}", sys::namespace(global))
}

/// The file holding persistent region `name`.
fn persistent_file(name: &str) -> PathBuf {
    sys::user_dir().join(format!("{PREFIX}{name}"))
}

/// The registry marker of non-persistent region `name`.
fn marker_file(name: &str) -> PathBuf {
    sys::user_dir().join("live").join(format!("{PREFIX}{name}"))
}

/// One open handle: the section, its view, and the handle's other
/// kernel objects.
pub(crate) struct Os {
    /// The section (and its file, for file-backed regions), held open.
    _fd: sys::Fd,
    map: Mapped<sys::Mapping>,
    name: String,
    mutex: sys::NamedMutex,
    wakers: sys::Wakers,
    /// A file to delete when the last process closes: the registry marker
    /// of a non-persistent region.
    cleanup: Option<PathBuf>,
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

/// One `open` of a region.
struct Opener<'a> {
    req: &'a Request<'a>,
}

impl Opener<'_> {
    fn error(&self, path: &Path, op: &'static str, e: io::Error) -> Error {
        Os::io_error(self.req.name, path, op, e)
    }

    fn open(&self) -> Result<Opened<Os>> {
        if let Some(path) = self.req.path {
            return self.open_file_backed(path);
        }
        let object = object_name(self.req.global, self.req.name);
        let named = Named {
            opener: self,
            shown: PathBuf::from(&object),
            file_path: persistent_file(self.req.name),
            object,
        };
        open_retrying(self.req, &named)
    }

    /// Attach to an existing section; `Retry` when its creator never
    /// finished initialising it.
    fn attach(&self, fd: sys::Fd, path: &Path, object: &str) -> Result<Step<Os>> {
        if self.req.mode == OpenMode::CreateOnly {
            return Err(Error::AlreadyExists {
                name: self.req.name.to_owned(),
            });
        }
        let (map, size, ready) = map_view(self.req.name, path, &fd, true)?;
        if !ready {
            return Ok(Step::Retry);
        }
        let max_capacity =
            layout::validate_header(self.req.name, path, map.header(), map.len(), size)?;
        let cleanup = self.marker().filter(|_| !map.header().is_persistent());
        self.finish(path, fd, map, max_capacity, true, object, cleanup)
            .map(Step::Done)
    }

    /// Create a paging-file section; attach if another process won.
    ///
    /// A region that cannot grow gets a section committed whole
    /// (`SEC_COMMIT`), as it always did. One that can is laid out for its
    /// maximum but only reserved (`SEC_RESERVE`): the header and the
    /// first `capacity` bytes of each buffer are committed now, and each
    /// growth commits its new range (`Backend::back`), so the commit
    /// charge follows the capacity, not the maximum.
    fn create_section(&self, shown: &Path, object: &str) -> Result<Step<Os>> {
        let (capacity, max_capacity) = (self.req.capacity, self.req.max_capacity);
        let size = layout::region_size(max_capacity) as u64;
        let reserve = max_capacity > capacity;
        let (fd, existed) = sys::create_section(None, Some(object), size, true, reserve)
            .map_err(|e| self.space_error(shown, "CreateFileMapping", e, size))?;
        if existed {
            return self.attach(fd, shown, object);
        }
        let map = sys::Mapping::new(&fd, true).map_err(|e| self.error(shown, "MapView", e))?;
        // Before the header: an attacher that finds the magic finds the
        // capacity's pages committed.
        map.commit_buffers(max_capacity, capacity).map_err(|e| {
            let needed = layout::backed_size(capacity) as u64;
            self.space_error(shown, "VirtualAlloc", e, needed)
        })?;
        layout::init_header(map.header(), capacity, max_capacity, false, Os::pid());
        let cleanup = self.marker();
        self.finish(shown, fd, map, max_capacity, false, object, cleanup)
            .map(Step::Done)
    }

    /// Create a persistent region: a file made complete under a temporary
    /// name and then linked under its own (failing if the name is taken),
    /// so no opener ever finds a half-made file; then the named section
    /// over it.
    fn create_persistent(&self, file_path: &Path, object: &str) -> Result<Step<Os>> {
        let dir = sys::user_dir();
        sys::ensure_dir(&dir).map_err(|e| self.error(&dir, "CreateDirectory", e))?;
        if !self.make_file(file_path, true)? {
            return Ok(Step::Retry);
        }
        let file = sys::open_file(file_path, false, true)
            .map_err(|e| self.error(file_path, "CreateFile", e))?;
        let (fd, existed) = sys::create_section(Some(file), Some(object), 0, true, false)
            .map_err(|e| self.error(file_path, "CreateFileMapping", e))?;
        if !existed {
            let map =
                sys::Mapping::new(&fd, true).map_err(|e| self.error(file_path, "MapView", e))?;
            let size = fd
                .file_len()
                .map_err(|e| self.error(file_path, "GetFileSize", e))?
                .unwrap_or(0);
            let max_capacity =
                layout::validate_header(self.req.name, file_path, map.header(), map.len(), size)?;
            return self
                .finish(file_path, fd, map, max_capacity, false, object, None)
                .map(Step::Done);
        }
        // A section of that name appeared meanwhile. Over our file (an
        // opener found it first) it is ours; a non-persistent one won the
        // race and our file must go.
        let step = self.attach(fd, file_path, object)?;
        if let Step::Done(opened) = &step {
            if !opened.os.header().is_persistent() {
                let _ = sys::remove_file(file_path);
            }
        }
        Ok(step)
    }

    /// Make a complete region file at `path`: build it under a temporary
    /// name in the same directory, then hard-link it to `path`. `false`
    /// when `path` exists already (another creator won).
    fn make_file(&self, path: &Path, persistent: bool) -> Result<bool> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Relaxed);
        // Process ids are soon reused on Windows, and a creator that died
        // here leaves its temporary file behind: the name also carries the
        // process's start time, so no later process can collide with it.
        let temp = parent_dir(path).join(format!(
            ".filemap-init.{}.{}.{n}",
            sys::pid(),
            sys::own_start_time()
        ));
        let result = self.fill_file(&temp, persistent).and_then(|()| {
            match std::fs::hard_link(&temp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(self.error(path, "CreateHardLink", e)),
            }
        });
        let _ = sys::remove_file(&temp);
        result
    }

    fn fill_file(&self, temp: &Path, persistent: bool) -> Result<()> {
        let (capacity, max_capacity) = (self.req.capacity, self.req.max_capacity);
        let size = layout::region_size(max_capacity) as u64;
        let file =
            sys::open_file(temp, true, true).map_err(|e| self.error(temp, "CreateFile", e))?;
        file.set_len(size)
            .map_err(|e| self.space_error(temp, "SetEndOfFile", e, size))?;
        let (fd, _) = sys::create_section(Some(file), None, 0, true, false)
            .map_err(|e| self.space_error(temp, "CreateFileMapping", e, size))?;
        let map = sys::Mapping::new(&fd, true).map_err(|e| self.error(temp, "MapView", e))?;
        layout::init_header(map.header(), capacity, max_capacity, persistent, Os::pid());
        Ok(())
    }

    /// `.path(file)`: an unnamed section over the file; the lock and wake
    /// objects are named after a hash of the file's canonical path.
    fn open_file_backed(&self, path: &Path) -> Result<Opened<Os>> {
        // Linux removes a non-persistent file under an exclusive flock that
        // openers re-check after taking their shared one. Windows has no
        // race-free "remove the file if I am still its last user": a closer
        // that checked the attach table could delete the file under an
        // opener that had just opened it, and the next opener would make a
        // second region under the same path. Refuse rather than split.
        if self.req.persistent == Some(false) {
            return Err(Error::UnsupportedOption {
                option: "a non-persistent file-backed region (`path(..)` with `persistent(false)`)",
                reason: "Windows cannot remove the file race-free when its last user closes; \
                         keep it persistent and delete the file when done, or use a named region",
            });
        }
        open_retrying(self.req, &FileBacked { opener: self, path })
    }

    /// Attach to the region file `file` at `path` (made by this open
    /// unless it `existed`).
    fn attach_file(&self, path: &Path, file: std::fs::File, existed: bool) -> Result<Step<Os>> {
        if existed && self.req.mode == OpenMode::CreateOnly {
            return Err(Error::AlreadyExists {
                name: self.req.name.to_owned(),
            });
        }
        let canonical =
            std::fs::canonicalize(path).map_err(|e| self.error(path, "GetFinalPathName", e))?;
        let object = format!(
            "{}{PREFIX}path.{:016x}",
            sys::namespace(self.req.global),
            sys::hash_name(&canonical.to_string_lossy().to_lowercase())
        );
        let fd = match sys::create_section(Some(file), None, 0, true, false) {
            Ok((fd, _)) => fd,
            Err(e) if e.raw_os_error() == Some(ERROR_FILE_INVALID) => return Err(too_small(path)),
            Err(e) => return Err(self.error(path, "CreateFileMapping", e)),
        };
        // A file's view is always ready: files are named complete.
        let (map, size, _) = map_view(self.req.name, path, &fd, true)?;
        let max_capacity =
            layout::validate_header(self.req.name, path, map.header(), map.len(), size)?;
        // Never removed on close, even if a header says non-persistent
        // (see `open_file_backed`).
        self.finish(path, fd, map, max_capacity, existed, &object, None)
            .map(Step::Done)
    }

    /// The registry marker this handle keeps, if any. The registry covers
    /// the `Local\` namespace only (`list`, `inspect` and `clean_stale`
    /// look there): a `Global\` region gets no marker, or `list` would call
    /// it stale, `clean_stale` would delete its marker, and its last closer
    /// would delete the marker of a live `Local\` region of the same name.
    fn marker(&self) -> Option<PathBuf> {
        (!self.req.global).then(|| marker_file(self.req.name))
    }

    fn space_error(&self, path: &Path, op: &'static str, e: io::Error, size: u64) -> Error {
        Os::space_error(self.req.name, path, op, e, size)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        path: &Path,
        fd: sys::Fd,
        map: sys::Mapping,
        max_capacity: usize,
        existed: bool,
        object: &str,
        cleanup: Option<PathBuf>,
    ) -> Result<Opened<Os>> {
        let mutex = sys::create_mutex(&format!("{object}.lock"))
            .map_err(|e| self.error(path, "CreateMutex", e))?;
        let slot = attach::claim::<Os>(map.header()).ok_or_else(|| Error::TooManyAttached {
            name: self.req.name.to_owned(),
            max: SLOTS,
        })?;
        if let Some(marker) = cleanup.as_deref().filter(|_| self.req.path.is_none()) {
            // Best effort: the registry only serves `list`.
            let _ = sys::ensure_dir(parent_dir(marker)).and_then(|()| sys::touch(marker));
        }
        // SAFETY: `map` is a read-write view of the whole section, starting
        // at the 64 KiB allocation granularity and holding
        // `region_size(max_capacity)` bytes: `max_capacity` was validated
        // against its length, or is the one the section was made with; it
        // lives as long as the handle. `Mapping::new` committed its
        // header's page; a view it found committed whole names no `Reach`,
        // and one of a reserved section says ready only the bytes of each
        // buffer it committed (`Mapping::commit_buffers`).
        let map = unsafe { Mapped::new(map, max_capacity) };
        Ok(Opened {
            os: Os {
                _fd: fd,
                map,
                name: self.req.name.to_owned(),
                mutex,
                wakers: sys::Wakers::new(format!("{object}.wake."), slot, SLOTS),
                cleanup,
            },
            path: path.to_owned(),
            max_capacity,
            existed,
            slot,
        })
    }
}

/// An open by name: the live section `object`, else the persistent file
/// `file_path` (a section made over it), else a new region.
struct Named<'a> {
    opener: &'a Opener<'a>,
    object: String,
    /// The section's name, shown to users.
    shown: PathBuf,
    file_path: PathBuf,
}

impl Attempts for Named<'_> {
    type Backend = Os;
    /// A section and the path it is shown as.
    type Found = (sys::Fd, PathBuf);

    const ATTEMPTS: u32 = OPEN_ATTEMPTS;
    const UNSTABLE: &'static str =
        "a region whose creator finished initialising it (creators kept dying or racing)";

    fn find(&self) -> Result<Option<(sys::Fd, PathBuf)>> {
        let opener = self.opener;
        // 1. A live region of that name.
        match sys::open_section(&self.object, true) {
            Ok(fd) => return Ok(Some((fd, self.shown.clone()))),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(opener.error(&self.shown, "OpenFileMapping", e)),
        }
        // 2. A persistent region's file, with no live section yet.
        let path = &self.file_path;
        match sys::open_file(path, false, true) {
            Ok(file) => match sys::create_section(Some(file), Some(&self.object), 0, true, false) {
                Ok((fd, _)) => Ok(Some((fd, path.clone()))),
                // Persistent files get their name only when complete, so
                // an empty one is foreign (or truncated), not young.
                Err(e) if e.raw_os_error() == Some(ERROR_FILE_INVALID) => Err(too_small(path)),
                Err(e) => Err(opener.error(path, "CreateFileMapping", e)),
            },
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(opener.error(path, "CreateFile", e)),
        }
    }

    fn attach(&self, (fd, path): (sys::Fd, PathBuf)) -> Result<Step<Os>> {
        self.opener.attach(fd, &path, &self.object)
    }

    /// 3. Create it.
    fn create(&self) -> Result<Step<Os>> {
        let opener = self.opener;
        if opener.req.persistent.unwrap_or(false) {
            opener.create_persistent(&self.file_path, &self.object)
        } else {
            opener.create_section(&self.shown, &self.object)
        }
    }
}

/// An open of a region file (`.path(file)`).
struct FileBacked<'a> {
    opener: &'a Opener<'a>,
    path: &'a Path,
}

impl Attempts for FileBacked<'_> {
    type Backend = Os;
    type Found = std::fs::File;

    const ATTEMPTS: u32 = OPEN_ATTEMPTS;
    const UNSTABLE: &'static str =
        "a stable region file (other processes kept creating and removing it)";

    fn find(&self) -> Result<Option<std::fs::File>> {
        match sys::open_file(self.path, false, true) {
            Ok(file) => Ok(Some(file)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.opener.error(self.path, "CreateFile", e)),
        }
    }

    fn attach(&self, file: std::fs::File) -> Result<Step<Os>> {
        self.opener.attach_file(self.path, file, true)
    }

    fn create(&self) -> Result<Step<Os>> {
        let opener = self.opener;
        if !opener.make_file(self.path, true)? {
            return Ok(Step::Retry);
        }
        let file = sys::open_file(self.path, false, true)
            .map_err(|e| opener.error(self.path, "CreateFile", e))?;
        opener.attach_file(self.path, file, false)
    }
}

/// Map `fd`'s whole view and measure the region: the mapping, its size
/// (the file's length, or the section's view length), and whether it is
/// ready. Files are built complete before they get their name, so only a
/// paging-file section can be caught before its creator finished; it gets
/// [`INIT_WAIT`] to store the magic, and `ready` is false if it did not.
fn map_view(
    name: &str,
    path: &Path,
    fd: &sys::Fd,
    writable: bool,
) -> Result<(sys::Mapping, u64, bool)> {
    let map =
        sys::Mapping::new(fd, writable).map_err(|e| Os::io_error(name, path, "MapView", e))?;
    if map.len() < HEADER_SIZE {
        return Err(too_small(path));
    }
    let file_len = fd
        .file_len()
        .map_err(|e| Os::io_error(name, path, "GetFileSize", e))?;
    let ready = file_len.is_some() || wait_for_magic(map.header());
    let size = file_len.unwrap_or(map.len() as u64);
    if size < HEADER_SIZE as u64 {
        return Err(too_small(path));
    }
    Ok((map, size, ready))
}

/// Wait up to [`INIT_WAIT`] for a creator to store the magic; `false` if
/// it never did (it died mid-way, or is stuck).
fn wait_for_magic(h: &Header) -> bool {
    let start = Instant::now();
    while h.magic.load(Acquire) == 0 {
        if start.elapsed() > INIT_WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

thread_local! {
    /// Keys of the region mutexes this thread holds (Windows mutexes are
    /// recursive, so the kernel would let a re-entry through).
    static HELD_MUTEXES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl Backend for Os {
    /// The longest kernel object name filemap makes,
    /// `Global\filemap.<name>.wake.<pid>.<slot>`, must fit `MAX_PATH` (260)
    /// characters with its terminating NUL, which leaves 224.
    const MAX_NAME_LEN: usize =
        259 - "Global\\".len() - PREFIX.len() - ".wake.4294967295.127".len();

    type Host = sys::Windows;
    type Map = sys::Mapping;

    /// The kernel object name `Local\filemap.<name>`, not a file.
    fn shm_path(name: &str) -> PathBuf {
        PathBuf::from(object_name(false, name))
    }

    fn open(req: &Request<'_>) -> Result<Opened<Os>> {
        Opener { req }.open()
    }

    fn mapped(&self) -> &Mapped<sys::Mapping> {
        &self.map
    }

    const BACK_OP: &'static str = "VirtualAlloc";

    /// Commit the pages of a reserved section (a region that grows)
    /// through this handle's view: the section's pages, for every view.
    /// Committed pages of a section cannot be given back while it lives,
    /// so a growth that failed half-way keeps what it committed (charged)
    /// for the next growth to use: `unback` does nothing.
    fn back(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.commit(offset, len)
    }

    /// Take the region's named mutex. `Ok(true)` when the previous owner
    /// ended without releasing it (`WAIT_ABANDONED`): the published content
    /// is intact, its half-written inactive buffer is simply ignored.
    fn lock(&self, timeout: Duration) -> std::result::Result<bool, LockError> {
        let h = self.header();
        let key = self.mutex.key();
        if HELD_MUTEXES.with(|held| held.borrow().contains(&key)) {
            return Err(LockError::WouldDeadlock);
        }
        let start = Instant::now();
        let owner_died = match self.mutex.wait(timeout) {
            sys::MutexWait::Acquired => false,
            sys::MutexWait::Abandoned => true,
            sys::MutexWait::Failed(code) => {
                return Err(LockError::Failed {
                    op: "WaitForSingleObject",
                    code,
                })
            }
            sys::MutexWait::TimedOut => {
                let pid = h.lock_pid.load(Relaxed);
                return Err(LockError::Timeout {
                    waited: start.elapsed(),
                    holder_pid: (pid != 0).then_some(pid),
                });
            }
        };
        record_owner(h, sys::tid(), Os::pid());
        HELD_MUTEXES.with(|held| held.borrow_mut().push(key));
        Ok(owner_died)
    }

    fn unlock(&self) -> bool {
        let key = self.mutex.key();
        HELD_MUTEXES.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(i) = held.iter().rposition(|&k| k == key) {
                held.swap_remove(i);
            }
        });
        self.header().lock_pid.store(0, Relaxed);
        self.mutex.release()
    }

    /// A kernel mutex can only be released by its owner thread: an
    /// [`OwnedGuard`](crate::OwnedGuard) dropped on another thread leaves
    /// it held until that thread ends (then abandoned: `owner_died`).
    fn unlock_for(&self, _tid: u32) {}

    /// A section stays reachable by name while handles to it are open.
    fn is_removed(&self) -> bool {
        false
    }

    /// The section goes with its last handle by itself; the last process
    /// also removes the registry marker.
    fn close(&self) {
        if let Some(path) = &self.cleanup {
            let h = self.header();
            if !h.is_persistent() && attached_pids::<Os>(h).is_empty() {
                let _ = sys::remove_file(path);
                // An opener that claimed a slot after our check may have
                // touched the marker before our delete: its claim is
                // visible now, so give the live region its marker back.
                if *path == marker_file(&self.name) && !attached_pids::<Os>(h).is_empty() {
                    let _ = sys::touch(path);
                }
            }
        }
    }

    fn inspect(name: &str) -> Result<RegionInfo> {
        inspect_named(name)
    }

    fn list() -> Result<Vec<(String, Result<RegionInfo>)>> {
        list_regions()
    }

    fn remove(name: &str) -> Result<()> {
        remove_named(name)
    }

    fn clean_stale() -> Result<Vec<String>> {
        clean_stale_regions()
    }

    fn tid() -> u32 {
        sys::tid()
    }
}

/// Windows has no cross-process futex (`WaitOnAddress` is process-local):
/// each attach slot has a named semaphore, see `notify.rs`.
impl Wake for Os {
    fn prepare(&self) -> bool {
        self.wakers.prepare()
    }

    fn token(&self) -> u64 {
        self.wakers.token()
    }

    /// The semaphore keeps a post that races ahead of the sleep, so the
    /// value announced plays no part here. Windows has no signals to cut
    /// a sleep short: never interrupted.
    fn sleep(
        &self,
        _h: &Header,
        _asleep: u32,
        token: u64,
        prepared: bool,
        timeout: Duration,
    ) -> bool {
        if prepared {
            self.wakers.sleep(token, timeout);
        } else {
            // No semaphore could be made: poll.
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
        }
        false
    }

    /// Post the semaphore of each slot whose waiter count is non-zero.
    fn wake_all(&self, h: &Header) {
        for (index, slot) in h.slots.iter().enumerate() {
            let waiting = slot.waiters.load(std::sync::atomic::Ordering::SeqCst);
            let pid = slot.pid.load(Acquire);
            if waiting != 0 && pid != 0 {
                self.wakers.wake(index, pid);
            }
        }
    }

    /// Only this handle's own sleepers need waking: post its semaphore.
    fn interrupt(&self, _h: &Header) {
        self.wakers.interrupt();
    }
}

/// Introspect region `name` without attaching: its live section, else
/// its persistent file, else a stale registry marker.
fn inspect_named(name: &str) -> Result<RegionInfo> {
    let object = object_name(false, name);
    let shown = PathBuf::from(&object);
    match sys::open_section(&object, false) {
        Ok(fd) => return info_of(name, &shown, &fd),
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(Os::io_error(name, &shown, "OpenFileMapping", e)),
    }
    let file_path = persistent_file(name);
    match sys::open_file(&file_path, false, false) {
        Ok(file) => {
            let (fd, _) = match sys::create_section(Some(file), None, 0, false, false) {
                Ok(made) => made,
                // A section over an empty file: not a region.
                Err(e) if e.raw_os_error() == Some(ERROR_FILE_INVALID) => {
                    return Err(too_small(&file_path))
                }
                Err(e) => return Err(Os::io_error(name, &file_path, "CreateFileMapping", e)),
            };
            return info_of(name, &file_path, &fd);
        }
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(Os::io_error(name, &file_path, "CreateFile", e)),
    }
    let marker = marker_file(name);
    if marker.is_file() {
        return Ok(RegionInfo {
            name: name.to_owned(),
            path: marker,
            capacity: 0,
            max_capacity: 0,
            len: 0,
            generation: 0,
            last_writer: WriterId::default(),
            persistent: false,
            attached: Vec::new(),
            stale: true,
        });
    }
    Err(Error::NotFound {
        name: name.to_owned(),
    })
}

fn info_of(name: &str, path: &Path, fd: &sys::Fd) -> Result<RegionInfo> {
    // A section still in its creator's hands gets the time an attacher
    // gives it; if the magic never comes, the header check says so.
    let (map, size, _ready) = map_view(name, path, fd, false)?;
    let max_capacity = layout::validate_header(name, path, map.header(), map.len(), size)?;
    Ok(region_info::<Os>(name, path, map.header(), max_capacity))
}

/// Region names in a registry directory (`filemap.<name>` files).
fn names_in(dir: &Path) -> Vec<String> {
    sys::list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(sys::name_to_string)
        .filter_map(|file| file.strip_prefix(PREFIX).map(str::to_owned))
        .filter(|name| Os::is_valid_name(name))
        .collect()
}

/// Every region in the registry: persistent files and live markers.
fn list_regions() -> Result<Vec<(String, Result<RegionInfo>)>> {
    let dir = sys::user_dir();
    let mut names: Vec<String> = names_in(&dir)
        .into_iter()
        .filter(|name| persistent_file(name).is_file())
        .chain(names_in(&dir.join("live")))
        .collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|name| {
            let info = inspect_named(&name);
            (name, info)
        })
        .collect())
}

/// Delete persistent region `name`'s file (it goes when its last handle
/// closes; a live section stays reachable by name until then) and a
/// stale registry marker.
fn remove_named(name: &str) -> Result<()> {
    let file_path = persistent_file(name);
    let removed_file = match sys::remove_file(&file_path) {
        Ok(()) => true,
        Err(e) if not_found(&e) => false,
        Err(e) => return Err(Os::io_error(name, &file_path, "DeleteFile", e)),
    };
    let had_marker = marker_file(name).is_file();
    if had_marker {
        remove_marker_if_gone(name);
    }
    if removed_file || had_marker {
        Ok(())
    } else {
        Err(Error::NotFound {
            name: name.to_owned(),
        })
    }
}

/// Delete the registry markers whose section is gone.
fn clean_stale_regions() -> Result<Vec<String>> {
    let live_dir = sys::user_dir().join("live");
    let mut removed = Vec::new();
    for name in names_in(&live_dir) {
        if remove_marker_if_gone(&name) {
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Delete region `name`'s registry marker if its section is gone; `true`
/// if it was deleted and stays so. A creator makes the section, then
/// claims its slot, then touches the marker: one that did all that between
/// our check and our delete has its section seen by the check after the
/// delete, and gets its marker back.
fn remove_marker_if_gone(name: &str) -> bool {
    let section_gone = || {
        matches!(
            sys::open_section(&object_name(false, name), false),
            Err(e) if not_found(&e)
        )
    };
    let marker = marker_file(name);
    if !section_gone() || sys::remove_file(&marker).is_err() {
        return false;
    }
    if section_gone() {
        return true;
    }
    let _ = sys::touch(&marker);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the builder asks by default, for region `name`.
    fn request(name: &str, persistent: Option<bool>, global: bool) -> Request<'_> {
        Request {
            name,
            capacity: layout::DEFAULT_CAPACITY,
            max_capacity: layout::DEFAULT_CAPACITY,
            mode: OpenMode::CreateOrAttach,
            permissions: 0o600,
            persistent,
            path: None,
            lock_timeout: Duration::from_secs(10),
            global,
        }
    }

    /// A persistent creator that loses the race to a non-persistent one
    /// still initialising its section must wait for the magic, not take
    /// its own file's length for the section and fail with `NotARegion`.
    #[test]
    fn a_persistent_creator_waits_for_a_racing_non_persistent_creator() {
        let nanos = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("unit-race-{}-{nanos}", sys::pid());
        let object = object_name(false, &name);
        let capacity = 64;
        let size = layout::region_size(capacity) as u64;
        let (fd, existed) = sys::create_section(None, Some(&object), size, true, false).unwrap();
        assert!(!existed);
        let map = sys::Mapping::new(&fd, true).unwrap();
        let request = Request {
            name: &name,
            capacity,
            max_capacity: capacity,
            mode: OpenMode::CreateOrAttach,
            permissions: 0o600,
            persistent: Some(true),
            path: None,
            lock_timeout: Duration::from_secs(10),
            global: false,
        };
        let file_path = persistent_file(&name);
        let made = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                layout::init_header(map.header(), capacity, capacity, false, Os::pid());
            });
            Opener { req: &request }.create_persistent(&file_path, &object)
        });
        let opened = match made {
            Ok(Step::Done(opened)) => opened,
            Ok(Step::Retry) => panic!("retried although the creator finished"),
            Err(e) => panic!("{e}"),
        };
        assert!(!opened.os.header().is_persistent());
        assert!(!file_path.exists(), "the losing persistent file is deleted");
    }

    /// Temporary files left by a creator that died, in a process whose id
    /// this process now has, must not make `open` fail.
    #[test]
    fn a_dead_creators_temporary_files_do_not_block_creation() {
        let dir = sys::user_dir();
        sys::ensure_dir(&dir).unwrap();
        let left: Vec<PathBuf> = (0..256)
            .map(|n| dir.join(format!(".filemap-init.{}.{n}", sys::pid())))
            .collect();
        for path in &left {
            std::fs::write(path, b"").unwrap();
        }
        let name = format!("unit-temp-{}", sys::pid());
        let opened = Os::open(&request(&name, Some(true), false));
        for path in &left {
            let _ = std::fs::remove_file(path);
        }
        let opened = opened.unwrap();
        attach::release(opened.os.header(), opened.slot, sys::pid());
        opened.os.close();
        drop(opened);
        Os::remove(&name).unwrap();
    }

    /// A handle whose wake semaphore cannot be made still works (it polls),
    /// so only a look inside tells that the longest name got one.
    #[test]
    fn a_handle_with_the_longest_name_gets_its_wake_semaphore() {
        let name = format!("unit-sem-{}-", sys::pid());
        let name = format!("{name}{}", "n".repeat(Os::MAX_NAME_LEN - name.len()));
        for global in [false, true] {
            let opened = Os::open(&request(&name, None, global)).unwrap();
            assert!(opened.os.wakers.prepare(), "global: {global}");
            attach::release(opened.os.header(), opened.slot, sys::pid());
            opened.os.close();
        }
    }

    /// `inspect` (and so `list`) meeting a section whose creator has not
    /// stored the magic yet waits for it, as an attacher does.
    #[test]
    fn inspect_waits_for_a_creator_still_initialising() {
        let name = format!("unit-inspect-{}", sys::pid());
        let capacity = 64;
        let size = layout::region_size(capacity) as u64;
        let object = object_name(false, &name);
        let (fd, _) = sys::create_section(None, Some(&object), size, true, false).unwrap();
        let map = sys::Mapping::new(&fd, true).unwrap();
        let info = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                layout::init_header(map.header(), capacity, capacity, false, Os::pid());
            });
            inspect_named(&name)
        });
        assert_eq!(info.unwrap().capacity, capacity);
    }
}
