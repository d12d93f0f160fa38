//! The Linux backend: a region is a file `filemap.<name>` in `/dev/shm`
//! (or any regular file, [`Builder::path`](crate::Builder::path)),
//! mapped shared; the lock is a futex word naming the owning thread; wake-ups
//! are a futex on the notify word.
//!
//! **Creation** builds the whole file unnamed (`O_TMPFILE`, or a temporary
//! name), initialises its header and only then gives it its name with
//! `linkat(2)`, which fails if the name is taken: no opener ever sees a
//! half-made region.
//!
//! **Lifetime** uses `flock(2)` locks on the backing file, which the
//! kernel holds for us and drops when a process dies, so no scribble can
//! keep a region alive or kill it: every handle holds a shared lock; a
//! closing handle that can upgrade to exclusive is the last one and
//! removes a non-persistent region's name; an opener that can take the
//! exclusive lock of a non-persistent region has found a stale one (all
//! its users died) and replaces it. Every name removal runs under an
//! exclusive `flock` of the directory, so a check-then-unlink never
//! removes a name another process just gave to a new region.
//!
//! **The lock** is `lock.rs`'s word, naming the owning thread by its id
//! and start time; `/proc` proves an owner dead. So all processes sharing
//! a region must share a pid namespace.

mod sys;

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::seam::{
    open_retrying, parent_dir, too_small, Attempts, Backend, Mapped, OpenMode, Opened, Request,
    Step,
};
use super::unix::{self, futex, tasks, Fd, Mapping, Unix};
use crate::attach::{self, Liveness, Process};
use crate::error::{Error, Result};
use crate::info::{region_info, RegionInfo};
use crate::layout::{self, Header, SLOTS};
use crate::lock::{self, owner_word, word_owner, LockError, LOCK_ID_MASK};
use crate::notify::Wake;

/// Prefix of every backing file's name.
const PREFIX: &str = "filemap.";

/// One open handle: the backing file (holding its shared `flock`) and the
/// mapping.
pub(crate) struct Os {
    fd: Fd,
    map: Mapped<Mapping>,
    path: PathBuf,
}

impl Backend for Os {
    /// The backing file is `filemap.<name>`, within the 255-byte file-name
    /// limit.
    const MAX_NAME_LEN: usize = 255 - PREFIX.len();

    type Host = Unix;
    type Map = Mapping;

    fn shm_path(name: &str) -> PathBuf {
        sys::shm_dir().join(format!("{PREFIX}{name}"))
    }

    fn open(req: &Request<'_>) -> Result<Opened<Os>> {
        let path = req
            .path
            .map_or_else(|| Os::shm_path(req.name), Path::to_owned);
        open_retrying(req, &Opener { req, path: &path })
    }

    fn mapped(&self) -> &Mapped<Mapping> {
        &self.map
    }

    fn back(&self, offset: usize, len: usize) -> io::Result<()> {
        unix::back(&self.fd, offset as u64, len as u64)
    }

    fn unback(&self, offset: usize, len: usize) {
        unix::unback(&self.fd, offset as u64, len as u64);
    }

    #[inline]
    fn lock(&self, timeout: Duration) -> std::result::Result<bool, LockError> {
        lock::acquire(self.header(), &ThreadOwner, timeout)
    }

    #[inline]
    fn unlock(&self) -> bool {
        lock::release(self.header(), &ThreadOwner, ThreadOwner::me().tid)
    }

    /// Through a fresh mapping of the header's page: watched like every
    /// mapping, so if the file no longer holds that page the fault only
    /// gives this mapping zeros too, and the release finds nothing to do.
    fn unlock_lost(&self) {
        let me = ThreadOwner::me().tid;
        match Mapping::header_again(&self.fd) {
            Some(header) => {
                lock::release(header.header(), &ThreadOwner, me);
            }
            // Not held in the region, then, but no longer by this thread.
            None => lock::Owner::released(&ThreadOwner, me),
        }
    }

    /// The lock word names the thread, which any thread of the process
    /// may clear on its behalf.
    fn unlock_for(&self, tid: u32) {
        lock::release(self.header(), &ThreadOwner, tid);
    }

    fn is_removed(&self) -> bool {
        !unix::names_file(&self.path, &self.fd).unwrap_or(true)
    }

    #[inline]
    fn is_lost(&self) -> bool {
        self.map.is_lost()
    }

    fn backing_size(&self) -> u64 {
        unix::file_size(&self.fd).unwrap_or(0)
    }

    /// The last handle takes the exclusive lock and removes the name.
    fn close(&self) {
        if !self.header().is_persistent() && sys::try_lock_exclusive(&self.fd).unwrap_or(false) {
            let _ = unlink_if_named(&self.path, &self.fd);
        }
    }

    fn inspect(name: &str) -> Result<RegionInfo> {
        inspect_path(name, &Os::shm_path(name))
    }

    fn list() -> Result<Vec<(String, Result<RegionInfo>)>> {
        let dir = sys::shm_dir();
        let entries = unix::list_dir(dir).map_err(|e| Os::io_error("*", dir, "readdir", e))?;
        let mut regions: Vec<_> = entries
            .into_iter()
            .filter_map(unix::name_to_string)
            .filter_map(|file| file.strip_prefix(PREFIX).map(str::to_owned))
            .filter(|name| Os::is_valid_name(name))
            .map(|name| {
                let info = Os::inspect(&name);
                (name, info)
            })
            .collect();
        regions.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(regions)
    }

    fn remove(name: &str) -> Result<()> {
        let path = Os::shm_path(name);
        let _dir = lock_dir_of(&path).map_err(|e| Os::io_error(name, &path, "flock", e))?;
        unix::unlink(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                name: name.to_owned(),
            },
            _ => Os::io_error(name, &path, "unlink", e),
        })
    }

    fn clean_stale() -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for (name, info) in Os::list()? {
            if !info.is_ok_and(|i| i.stale) {
                continue;
            }
            let path = Os::shm_path(&name);
            let Ok(fd) = unix::open_existing(&path, false) else {
                continue;
            };
            // Only a region nobody holds open can be taken exclusively.
            if sys::try_lock_exclusive(&fd).unwrap_or(false)
                && !sys::is_unlinked(&fd).unwrap_or(true)
                && unlink_if_named(&path, &fd).is_ok()
                && sys::is_unlinked(&fd).unwrap_or(false)
            {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    fn tid() -> u32 {
        tasks::tid()
    }
}

impl Wake for Os {
    fn sleep(
        &self,
        h: &Header,
        asleep: u32,
        _token: u64,
        _prepared: bool,
        timeout: Duration,
    ) -> bool {
        futex::wait(&h.notify, asleep, timeout)
    }

    fn wake_all(&self, h: &Header) {
        futex::wake(&h.notify, i32::MAX as u32);
    }

    fn idle(&self) {
        self.map.verify(&self.fd);
    }
}

/// The lock word names the owning thread: its id and start time.
struct ThreadOwner;

/// What the lock needs to know of the calling thread, in one record so
/// that taking and releasing a lock reads one thread-local.
#[derive(Clone, Copy)]
struct Me {
    /// The fork epoch the record was made at: a forked child's thread has
    /// another id and holds none of its parent's locks.
    epoch: u32,
    /// `gettid(2)`.
    tid: u32,
    /// `owner_word(tid, start time)` (the start time is a `/proc` read).
    word: u64,
    /// Region locks this thread holds: tells re-entry (a deadlock) from a
    /// lock word that merely names this thread because it was scribbled.
    held: usize,
}

thread_local! {
    static ME: Cell<Me> = const {
        Cell::new(Me { epoch: 0, tid: 0, word: 0, held: 0 })
    };
}

impl ThreadOwner {
    /// The calling thread's record, made once per thread and fork epoch
    /// (epoch 0, the initial one, is never current).
    #[inline]
    fn me() -> Me {
        let me = ME.get();
        if me.epoch == unix::fork_epoch() {
            me
        } else {
            Self::me_now()
        }
    }

    #[cold]
    fn me_now() -> Me {
        let tid = tasks::tid();
        let me = Me {
            epoch: unix::fork_epoch(),
            tid,
            word: owner_word(tid, tasks::own_thread_start_time()),
            held: 0,
        };
        ME.set(me);
        me
    }
}

impl lock::Owner for ThreadOwner {
    /// `owner_word(this thread, its start time)`, computed once per thread
    /// and fork epoch.
    #[inline]
    fn own_word(&self) -> u64 {
        Self::me().word
    }

    fn holds_it(&self) -> bool {
        Self::me().held > 0
    }

    #[inline]
    fn acquired(&self) {
        let mut me = Self::me();
        me.held += 1;
        ME.set(me);
    }

    #[inline]
    fn released(&self, tid: u32) {
        let mut me = Self::me();
        if tid == me.tid {
            me.held = me.held.saturating_sub(1);
            ME.set(me);
        }
    }

    fn owns(&self, word: u64, tid: u32) -> bool {
        word_owner(word).0 == tid & LOCK_ID_MASK as u32
    }

    /// Proof is: no task with that id (`kill(2)` says `ESRCH`), a zombie,
    /// or a live task whose start time differs from the one in the word
    /// (the id was reused, or the word is garbage). A start time of 0 in
    /// the word ("unknown") or an unreadable `/proc` proves nothing.
    fn is_dead(&self, word: u64) -> bool {
        let (owner, start) = word_owner(word);
        match tasks::liveness(owner) {
            Liveness::Dead => true,
            Liveness::Unknown => false,
            Liveness::Alive { start_time } => {
                start != 0 && start_time != 0 && start_time as u32 != start
            }
        }
    }

    fn process_of(&self, word: u64) -> Option<u32> {
        tasks::process_of_thread(word_owner(word).0)
    }

    fn wait(&self, word: &AtomicU64, expected: u32, timeout: Duration) {
        futex::wait_low(word, expected, timeout);
    }

    fn wake(&self, word: &AtomicU64, count: u32) -> usize {
        futex::wake_low(word, count)
    }

    fn pid(&self) -> u32 {
        unix::pid()
    }
}

/// One `open` of region `req.name` at `path`.
struct Opener<'a> {
    req: &'a Request<'a>,
    path: &'a Path,
}

impl Attempts for Opener<'_> {
    type Backend = Os;
    type Found = Fd;

    /// Each lost race to a closer or creator costs one.
    const ATTEMPTS: u32 = 100;
    const UNSTABLE: &'static str =
        "a stable region name (other processes kept creating and removing it)";

    fn find(&self) -> Result<Option<Fd>> {
        match unix::open_existing(self.path, true) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("open", e)),
        }
    }

    /// Attach to the existing file `fd`, or find it stale and remove it.
    fn attach(&self, fd: Fd) -> Result<Step<Os>> {
        let alone = sys::try_lock_exclusive(&fd).map_err(|e| self.error("flock", e))?;
        if !alone {
            self.lock_shared(&fd)?;
        }
        // The last handle may have removed the name before we locked.
        let (size, links) = sys::size_and_links(&fd).map_err(|e| self.error("fstat", e))?;
        if links == 0 {
            return Ok(Step::Retry);
        }
        let (map, max_capacity) = map_sized(self.req.name, self.path, &fd, size, true)?;
        let persistent = map.header().is_persistent();
        if alone && !persistent {
            // Every user of this non-persistent region died without closing:
            // it is gone in spirit. Replace it.
            unlink_if_named(self.path, &fd).map_err(|e| self.error("unlink", e))?;
            return Ok(Step::Retry);
        }
        if self.req.mode == OpenMode::CreateOnly {
            return Err(Error::AlreadyExists {
                name: self.req.name.to_owned(),
            });
        }
        if alone {
            self.lock_shared(&fd)?;
        }
        self.finish(fd, map, max_capacity, true).map(Step::Done)
    }

    /// Create a region at `path`, fully initialised before its name appears.
    fn create(&self) -> Result<Step<Os>> {
        let file = sys::create_unnamed(parent_dir(self.path), self.req.permissions)
            .map_err(|e| self.error("create", e))?;
        let (capacity, max_capacity) = (self.req.capacity, self.req.max_capacity);
        let size = layout::region_size(max_capacity);
        let backed = layout::backed_size(capacity) as u64;
        if max_capacity == capacity {
            sys::reserve(&file.fd, size as u64)
        } else {
            unix::size_for_growth(&file.fd, capacity, max_capacity)
        }
        .map_err(|e| Os::space_error(self.req.name, self.path, "fallocate", e, backed))?;
        let map = Mapping::new(&file.fd, size, true).map_err(|e| self.error("mmap", e))?;
        let persistent = self.req.persistent.unwrap_or(self.req.path.is_some());
        layout::init_header(map.header(), capacity, max_capacity, persistent, Os::pid());
        // Nobody else can have opened a file without a name yet.
        if !sys::try_lock_shared(&file.fd).map_err(|e| self.error("flock", e))? {
            return Err(self.error(
                "flock",
                io::Error::other("a new file was locked by another process"),
            ));
        }
        match sys::publish_name(&file, self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Step::Retry),
            Err(e) => return Err(self.error("link", e)),
        }
        let sys::Unnamed { fd, .. } = file;
        self.finish(fd, map, max_capacity, false).map(Step::Done)
    }
}

impl Opener<'_> {
    fn error(&self, op: &'static str, e: io::Error) -> Error {
        Os::io_error(self.req.name, self.path, op, e)
    }

    /// Take the shared lifetime lock. Exclusive holders (a closing or
    /// replacing handle) keep it for microseconds, but any process that can
    /// open the file could hold it forever, so the wait is bounded.
    fn lock_shared(&self, fd: &Fd) -> Result<()> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        while !sys::try_lock_shared(fd).map_err(|e| self.error("flock", e))? {
            if start.elapsed() >= self.req.lock_timeout {
                return Err(Error::Timeout {
                    what: "the region's lifetime lock (another process holds it exclusively)",
                    waited: start.elapsed(),
                    holder_pid: None,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        Ok(())
    }

    fn finish(
        &self,
        fd: Fd,
        map: Mapping,
        max_capacity: usize,
        existed: bool,
    ) -> Result<Opened<Os>> {
        let slot = attach::claim::<Os>(map.header()).ok_or_else(|| Error::TooManyAttached {
            name: self.req.name.to_owned(),
            max: SLOTS,
        })?;
        // SAFETY: `map` is a page-aligned shared mapping of the file,
        // read-write, holding `region_size(max_capacity)` bytes:
        // `max_capacity` was validated against its length (`map_sized`) or
        // is the one the file was made with (`create`); it lives as long as
        // the handle.
        let map = unsafe { Mapped::new(map, max_capacity) };
        Ok(Opened {
            os: Os {
                fd,
                map,
                path: self.path.to_owned(),
            },
            path: self.path.to_owned(),
            max_capacity,
            existed,
            slot,
        })
    }
}

/// Map an existing backing file and validate its header. Returns the
/// mapping and the maximum capacity, which is read once here and trusted
/// from then on by this handle only.
fn map_existing(name: &str, path: &Path, fd: &Fd, writable: bool) -> Result<(Mapping, usize)> {
    let size = unix::file_size(fd).map_err(|e| Os::io_error(name, path, "fstat", e))?;
    map_sized(name, path, fd, size, writable)
}

/// As [`map_existing`], for a file known to be `size` bytes long.
fn map_sized(
    name: &str,
    path: &Path,
    fd: &Fd,
    size: u64,
    writable: bool,
) -> Result<(Mapping, usize)> {
    if size < layout::HEADER_SIZE as u64 {
        return Err(too_small(path));
    }
    let map_len = size.min(layout::region_size(layout::MAX_CAPACITY) as u64) as usize;
    let map =
        Mapping::new(fd, map_len, writable).map_err(|e| Os::io_error(name, path, "mmap", e))?;
    if writable {
        // Touch the header first with a write, so the kernel maps its page
        // alone: a first read of a file mapping also maps up to 15 more
        // pages of the file around it ("fault-around"), which a short
        // attach + close would pay to map and unmap. A compare-and-swap of
        // 0 for 0 changes nothing, and on x86 writes even when it fails
        // (an OR of 0 would be compiled to a plain load).
        let _ = map.header().magic.compare_exchange(0, 0, Relaxed, Relaxed);
    }
    let capacity = layout::validate_header(name, path, map.header(), map.len(), size)?;
    Ok((map, capacity))
}

fn inspect_path(name: &str, path: &Path) -> Result<RegionInfo> {
    let fd = unix::open_existing(path, false).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            name: name.to_owned(),
        },
        _ => Os::io_error(name, path, "open", e),
    })?;
    let (map, max_capacity) = map_existing(name, path, &fd, false)?;
    Ok(region_info::<Os>(name, path, map.header(), max_capacity))
}

/// Remove `path` if it still names `fd`'s file. All filemap unlinks run
/// under an exclusive lock on the directory, so this check-then-unlink
/// cannot remove a name another handle just gave to a new region.
fn unlink_if_named(path: &Path, fd: &Fd) -> io::Result<()> {
    let _dir = lock_dir_of(path)?;
    if unix::names_file(path, fd)? {
        unix::unlink(path)?;
    }
    Ok(())
}

/// Lock the directory holding `path` for a name change; waits at most a
/// second (the lock is held for microseconds), then goes ahead without.
fn lock_dir_of(path: &Path) -> io::Result<Option<sys::DirLock>> {
    let dir = parent_dir(path);
    let start = Instant::now();
    loop {
        if let Some(lock) = sys::try_lock_dir(dir)? {
            return Ok(Some(lock));
        }
        if start.elapsed() > Duration::from_secs(1) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
