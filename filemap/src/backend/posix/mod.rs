//! The `posix` backend, for macOS and FreeBSD (and on Linux with the cargo
//! feature `posix-backend`, so that its shared logic is tested there).
//!
//! **Objects.** A region is a POSIX shared-memory object (`shm_open(2)`)
//! named by a hash of the region name, whose header keeps the full name
//! (`shm.rs`), or a regular file ([`Builder::path`](crate::Builder::path)).
//!
//! **Creation.** A creator makes the object exclusively (`O_CREAT |
//! O_EXCL`), gives it its size (`ftruncate(2)`), writes the header and the
//! name, claims its attach slot, and stores the magic last: the magic is
//! the "ready" mark. An opener that finds the object short or without its
//! magic waits for it a bounded time ([`INIT_WAIT`]). A file is built
//! complete under a temporary name and linked to its own (`link(2)`).
//! A creator killed before the magic leaves a half-made object: an opener
//! replaces it once its creator is proven gone (by the creator's claimed
//! attach slot, or, before the claim, by the creation lock the creator
//! holds on its registry entry, which names it), never while the creator
//! may live (`Opener::replace_abandoned`).
//!
//! **Lifetime** cannot use `flock(2)`: macOS shared-memory descriptors do
//! not support it. It uses the attach table instead, whose slots name
//! each handle's process by pid and start time, under a lifetime lock
//! (the header's `life` word, held for microseconds, taken over from a
//! dead holder):
//! - a closing handle frees its slot, then, under the lifetime lock, finds
//!   whether any slot still names a live process; if none does and the
//!   region is not persistent, it marks the region removed
//!   ([`FLAG_REMOVED`]) and removes its name;
//! - an opener takes the lifetime lock before claiming its slot; a
//!   non-persistent region with no live slot is stale (all its users died)
//!   and is removed and replaced, as on Linux; a region marked removed is
//!   being removed, and the opener starts again;
//! - `remove` and `clean_stale` mark the region removed under the lock
//!   before removing its name, so no later closer removes a name that by
//!   then leads to a new region.
//!
//! **Registry.** macOS cannot list its shared-memory objects, so every
//! region's name is also kept as an empty file `filemap.<name>` in a
//! per-user directory (`$TMPDIR/filemap-<uid>`), made by the creator and
//! removed with the region; `list`, `inspect` of a vanished region and
//! `clean_stale` read it, as on Windows. Entries are opened only to make
//! them, the way region files are opened (no symlink followed, no FIFO
//! waited on): a creator that finds anything but a regular file at its
//! entry refuses the region ([`Error::NotARegion`] naming the entry);
//! the others only list the directory, `lstat(2)` and `unlink(2)` entries,
//! but for the creation lock (`registry::EntryLock`), taken on an entry
//! opened the same way, without creating it.
//!
//! **Lock.** `lock.rs`'s word, naming the owning *process* (pid and start
//! time), because macOS and FreeBSD cannot check another process's
//! thread ids; this process's threads pass a process-local [`Gate`] per
//! region one at a time (which thread holds which region; re-entry is
//! caught there), and only the thread inside takes the word. Waits go through `wait.rs`
//! (futex, `_umtx_op`, `os_sync_wait_on_address`/`__ulock_wait`) and
//! liveness through the Unix process facts (`unix/process.rs`: `kill(2)`
//! plus the process start time).

mod shm;
mod wait;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use self::shm::Object;
use super::seam::{
    open_retrying, parent_dir, too_small, Attempts, Backend, ErrorClass, Mapped, OpenMode, Opened,
    Request, Step,
};
use super::unix::{self, Fd, Mapping, Unix};
use crate::attach::{self, Liveness, Process};
use crate::error::{Error, Result};
use crate::info::{region_info, RegionInfo};
use crate::layout::{self, Header, HEADER_SIZE, NAME_BYTES, SLOTS};
use crate::lock::{self, owner_word, word_owner, LockError, LOCK_ID_MASK};
use crate::notify::Wake;

/// Set in the header's `flags`, under the lifetime lock, right before the
/// region's name is removed: openers that mapped it meanwhile start again,
/// and no later closer removes the name (it may lead to a new region by
/// then).
pub const FLAG_REMOVED: u32 = 2;

/// Prefix of registry entries and temporary files.
const PREFIX: &str = "filemap.";
/// How long an opener waits for a creator to size the object and store
/// the magic.
pub const INIT_WAIT: Duration = Duration::from_secs(1);

/// One open handle.
pub(crate) struct Os {
    fd: Fd,
    map: Mapped<Mapping>,
    object: Object,
    /// The region name (registry entries are by name).
    name: String,
    /// Whether this handle's region is in the registry (named regions).
    registered: bool,
    lock_timeout: Duration,
    /// This process's gate to the region lock (see [`Gate`]).
    gate: Arc<Gate>,
}

impl Backend for Os {
    /// Registry entries are `filemap.<name>` files, within the 255-byte
    /// file-name limit (and the header keeps up to [`NAME_BYTES`]).
    const MAX_NAME_LEN: usize = 255 - PREFIX.len();

    type Host = Unix;
    type Map = Mapping;

    fn shm_path(name: &str) -> PathBuf {
        Object::for_name(name).shown()
    }

    fn open(req: &Request<'_>) -> Result<Opened<Os>> {
        let object = match req.path {
            Some(path) => Object::File(path.to_owned()),
            None => Object::for_name(req.name),
        };
        let opener = Opener {
            req,
            shown: object.shown(),
            object,
        };
        open_retrying(req, &opener)
    }

    fn mapped(&self) -> &Mapped<Mapping> {
        &self.map
    }

    /// `fallocate(2)` on Linux; nothing on macOS and FreeBSD, whose
    /// objects take pages when touched (see `unix::back`).
    fn back(&self, offset: usize, len: usize) -> io::Result<()> {
        unix::back(&self.fd, offset as u64, len as u64)
    }

    fn unback(&self, offset: usize, len: usize) {
        unix::unback(&self.fd, offset as u64, len as u64);
    }

    /// Through this process's gate first (one thread of the process at a
    /// time, re-entry caught there), then the cross-process word.
    fn lock(&self, timeout: Duration) -> std::result::Result<bool, LockError> {
        let start = Instant::now();
        self.gate.enter(timeout)?;
        let left = timeout.saturating_sub(start.elapsed());
        let owner = ProcessOwner { gate: &self.gate };
        let taken = lock::acquire(self.header(), &owner, left);
        if taken.is_err() {
            self.gate.leave(thread_number());
        }
        taken
    }

    fn unlock(&self) -> bool {
        self.release(thread_number())
    }

    /// Through a fresh mapping of the header's page (watched like every
    /// mapping: a page the object no longer has gives zeros, and nothing
    /// to release); the gate is left whatever happens, or this process's
    /// other threads would wait at it for ever.
    fn unlock_lost(&self) {
        let tid = thread_number();
        if let Some(header) = Mapping::header_again(&self.fd) {
            let owner = ProcessOwner { gate: &self.gate };
            lock::release(header.header(), &owner, tid);
        }
        self.gate.leave(tid);
    }

    /// The gate names the thread: any thread may release on its behalf.
    fn unlock_for(&self, tid: u32) {
        self.release(tid);
    }

    fn is_removed(&self) -> bool {
        self.header().flags.load(Acquire) & FLAG_REMOVED != 0
            || self.object.names(&self.fd) == Some(false)
    }

    #[inline]
    fn is_lost(&self) -> bool {
        self.map.is_lost()
    }

    fn backing_size(&self) -> u64 {
        unix::file_size(&self.fd).unwrap_or(0)
    }

    fn close(&self) {
        let h = self.header();
        if h.is_persistent() {
            return;
        }
        let Ok(_life) = LifeLock::take(h, self.lock_timeout) else {
            // A stalled process holds the lifetime lock: leave the name;
            // the next opener finds the region stale and replaces it.
            return;
        };
        if h.flags.load(Acquire) & FLAG_REMOVED == 0 && !any_alive(h) {
            h.flags.fetch_or(FLAG_REMOVED, Release);
            let _ = self.object.unlink();
            if self.registered {
                registry::remove(&self.name);
            }
        }
    }

    fn inspect(name: &str) -> Result<RegionInfo> {
        let object = Object::for_name(name);
        let shown = object.shown();
        match object.open(false) {
            Ok(fd) => {
                let (map, capacity) = map_ready(name, &shown, &fd, false, true)?;
                check_name(name, &shown, map.header())?;
                Ok(region_info::<Os>(name, &shown, map.header(), capacity))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if registry::contains(name) {
                    // Its users died and the object went (a reboot, or a
                    // `shm_unlink` by hand): only the entry is left.
                    return Ok(RegionInfo {
                        name: name.to_owned(),
                        path: registry::entry(name).unwrap_or(shown),
                        capacity: 0,
                        max_capacity: 0,
                        len: 0,
                        generation: 0,
                        last_writer: crate::snapshot::WriterId::default(),
                        persistent: false,
                        attached: Vec::new(),
                        stale: true,
                    });
                }
                Err(Error::NotFound {
                    name: name.to_owned(),
                })
            }
            Err(e) => Err(Os::io_error(name, &shown, "shm_open", e)),
        }
    }

    fn list() -> Result<Vec<(String, Result<RegionInfo>)>> {
        let mut regions: Vec<_> = registry::names()
            .into_iter()
            .map(|name| {
                let info = Os::inspect(&name);
                (name, info)
            })
            .collect();
        regions.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(regions)
    }

    fn remove(name: &str) -> Result<()> {
        let object = Object::for_name(name);
        let shown = object.shown();
        let fd = match object.open(true) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return if registry::remove(name) {
                    Ok(())
                } else {
                    Err(Error::NotFound {
                        name: name.to_owned(),
                    })
                };
            }
            Err(e) => return Err(Os::io_error(name, &shown, "shm_open", e)),
        };
        // A region of ours: mark it removed under its lifetime lock. Not a
        // region at all (garbage, a half-made object): just remove it.
        if let Ok((map, _)) = map_ready(name, &shown, &fd, true, false) {
            let h = map.header();
            check_name(name, &shown, h)?;
            let timeout = lock::DEFAULT_LOCK_TIMEOUT;
            let _life = LifeLock::take(h, timeout)?;
            h.flags.fetch_or(FLAG_REMOVED, Release);
            object
                .unlink()
                .map_err(|e| Os::io_error(name, &shown, "shm_unlink", e))?;
        } else {
            object
                .unlink()
                .map_err(|e| Os::io_error(name, &shown, "shm_unlink", e))?;
        }
        registry::remove(name);
        Ok(())
    }

    fn clean_stale() -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for name in registry::names() {
            let object = Object::for_name(&name);
            let shown = object.shown();
            let fd = match object.open(true) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if registry::remove(&name) {
                        removed.push(name);
                    }
                    continue;
                }
                Err(_) => continue,
            };
            let Ok((map, _)) = map_ready(&name, &shown, &fd, true, true) else {
                continue;
            };
            let h = map.header();
            if check_name(&name, &shown, h).is_err() || h.is_persistent() {
                continue;
            }
            let Ok(_life) = LifeLock::take(h, Duration::from_millis(100)) else {
                continue;
            };
            if h.flags.load(Acquire) & FLAG_REMOVED == 0 && !any_alive(h) {
                h.flags.fetch_or(FLAG_REMOVED, Release);
                if object.unlink().is_ok() {
                    registry::remove(&name);
                    removed.push(name);
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn tid() -> u32 {
        thread_number()
    }
}

impl Os {
    /// Release the lock held by thread `tid` of this process: the word,
    /// then the gate.
    fn release(&self, tid: u32) -> bool {
        let owner = ProcessOwner { gate: &self.gate };
        let released = lock::release(self.header(), &owner, tid);
        self.gate.leave(tid);
        released
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
        wait::wait(&h.notify, asleep, timeout)
    }

    fn wake_all(&self, h: &Header) {
        wait::wake_all(&h.notify);
    }

    fn idle(&self) {
        self.map.verify(&self.fd);
    }
}

/// A number for the calling thread, unique in this process (what the
/// [`Gate`] and [`Backend::unlock_for`] take): the OS thread id
/// would need a different call on each system, and nothing outside this
/// process ever sees it.
fn thread_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        static NUMBER: u32 = NEXT.fetch_add(1, Relaxed);
    }
    NUMBER.with(|n| *n)
}

/// This process's gate to one region's lock: which of its threads holds
/// it, or is taking it. The lock word names the owning *process* (pid and
/// start time), so the threads of one process first pass this gate one at
/// a time, and only the thread inside takes the word:
///
/// | word names   | gate holder      | meaning                                  |
/// |--------------|------------------|------------------------------------------|
/// | (any)        | the caller       | re-entry: `WouldDeadlock` (at the gate)  |
/// | (any)        | another thread   | a live local owner: wait at the gate     |
/// | this process | the caller       | scribbled (no other thread of ours can hold it): take over |
/// | another pid  | the caller       | wait; take over once that process is proven dead |
///
/// Gates are per region and per fork epoch: a forked child, whose copy of
/// a gate may name a thread of its parent, gets fresh ones.
pub(crate) struct Gate {
    holder: Mutex<Option<u32>>,
    freed: Condvar,
}

impl Gate {
    /// The gate of region `key` in this process (at this fork epoch).
    fn of(key: u64) -> Arc<Gate> {
        type Gates = Mutex<Vec<(u64, u32, Arc<Gate>)>>;
        static GATES: Gates = Mutex::new(Vec::new());
        let epoch = unix::fork_epoch();
        let mut gates = GATES.lock().unwrap_or_else(|e| e.into_inner());
        gates.retain(|(_, e, _)| *e == epoch);
        if let Some((_, _, gate)) = gates.iter().find(|(k, _, _)| *k == key) {
            return Arc::clone(gate);
        }
        let gate = Arc::new(Gate {
            holder: Mutex::new(None),
            freed: Condvar::new(),
        });
        gates.push((key, epoch, Arc::clone(&gate)));
        gate
    }

    fn holder(&self) -> std::sync::MutexGuard<'_, Option<u32>> {
        self.holder.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pass the gate for the calling thread, waiting at most `timeout`
    /// for another thread of this process to leave it.
    fn enter(&self, timeout: Duration) -> std::result::Result<(), LockError> {
        let me = thread_number();
        let start = Instant::now();
        let mut holder = self.holder();
        if *holder == Some(me) {
            return Err(LockError::WouldDeadlock);
        }
        while holder.is_some() {
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited).filter(|l| !l.is_zero()) else {
                return Err(LockError::Timeout {
                    waited,
                    holder_pid: Some(unix::pid()),
                });
            };
            holder = self
                .freed
                .wait_timeout(holder, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *holder = Some(me);
        Ok(())
    }

    /// Thread `tid` leaves the gate (if it holds it).
    fn leave(&self, tid: u32) {
        let mut holder = self.holder();
        if *holder == Some(tid) {
            *holder = None;
            drop(holder);
            self.freed.notify_one();
        }
    }

    fn is_held_by(&self, tid: u32) -> bool {
        *self.holder() == Some(tid)
    }
}

/// The lock word names the owning process: its pid and start time; see
/// [`Gate`] for how this process's threads are told apart.
struct ProcessOwner<'a> {
    gate: &'a Gate,
}

/// This process's lock word, per fork epoch (a forked child has another
/// pid and start time).
fn own_process_word() -> u64 {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    static EPOCH: AtomicU32 = AtomicU32::new(u32::MAX);
    let epoch = unix::fork_epoch();
    if EPOCH.load(Acquire) == epoch {
        return CACHE.load(Relaxed);
    }
    let word = owner_word(unix::pid(), Os::own_start_time());
    CACHE.store(word, Relaxed);
    EPOCH.store(epoch, Release);
    word
}

impl lock::Owner for ProcessOwner<'_> {
    fn own_word(&self) -> u64 {
        own_process_word()
    }

    /// Only the gate's holder (the caller, who has not taken the word
    /// yet) takes the word, so a word naming this process is nobody's
    /// here: scribbled.
    fn holds_it(&self) -> bool {
        false
    }

    fn acquired(&self) {}

    fn released(&self, _tid: u32) {}

    fn owns(&self, word: u64, tid: u32) -> bool {
        word_owner(word).0 == unix::pid() & LOCK_ID_MASK as u32 && self.gate.is_held_by(tid)
    }

    fn is_dead(&self, word: u64) -> bool {
        process_word_is_dead(word)
    }

    fn process_of(&self, word: u64) -> Option<u32> {
        Some(word_owner(word).0).filter(|&pid| pid != 0)
    }

    fn wait(&self, word: &AtomicU64, expected: u32, timeout: Duration) {
        wait::wait_low(word, expected, timeout);
    }

    fn wake(&self, word: &AtomicU64, count: u32) -> usize {
        wait::wake_low(word, count)
    }

    fn pid(&self) -> u32 {
        unix::pid()
    }
}

/// Whether the process a word names (pid and start time) is proven gone:
/// `kill(2)` says no such process, it is a zombie, or a live process with
/// that pid started at another time. Unknown counts as alive.
fn process_word_is_dead(word: u64) -> bool {
    let (pid, start) = word_owner(word);
    match Unix::liveness(pid) {
        Liveness::Dead => true,
        Liveness::Unknown => false,
        Liveness::Alive { start_time } => {
            start != 0 && start_time != 0 && start_time as u32 != start
        }
    }
}

/// Whether any attach slot names a live process (stops at the first).
fn any_alive(h: &Header) -> bool {
    h.slots.iter().any(|slot| {
        let pid = slot.pid.load(Acquire);
        pid != 0
            && pid != attach::RECLAIMING
            && attach::slot_alive::<Os>(pid, slot.start_time.load(Relaxed))
    })
}

/// The lifetime lock (the header's `life` word), held while a handle
/// claims or gives up its place and while a name is removed. Held for
/// microseconds; its holder is named by pid and start time, so a dead
/// holder's lock is taken over.
struct LifeLock<'a> {
    word: &'a AtomicU64,
    mine: u64,
}

impl<'a> LifeLock<'a> {
    fn take(h: &'a Header, timeout: Duration) -> Result<LifeLock<'a>> {
        let word = &h.life;
        let mine = own_process_word();
        let start = Instant::now();
        let mut pause = Duration::from_micros(20);
        loop {
            let current = word.load(Relaxed);
            let free = current == 0
                || (word_owner(current).0 != word_owner(mine).0 && process_word_is_dead(current));
            if free
                && word
                    .compare_exchange(current, mine, Acquire, Relaxed)
                    .is_ok()
            {
                return Ok(LifeLock { word, mine });
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: "the region's lifetime lock (another process holds it)",
                    waited: start.elapsed(),
                    holder_pid: Some(word_owner(current).0).filter(|&p| p != 0),
                });
            }
            // Another thread of ours holds it (for microseconds), or a
            // live process does: back off.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }
}

impl Drop for LifeLock<'_> {
    fn drop(&mut self) {
        let _ = self.word.compare_exchange(self.mine, 0, Release, Relaxed);
    }
}

/// Write the full region name into the header.
fn store_name(h: &Header, name: &str) {
    let bytes = name.as_bytes();
    for (i, word) in h.name.iter().enumerate() {
        let mut chunk = [0u8; 8];
        if let Some(part) = bytes.get(i * 8..) {
            let take = part.len().min(8);
            chunk[..take].copy_from_slice(&part[..take]);
        }
        word.store(u64::from_le_bytes(chunk), Relaxed);
    }
    h.name_len.store(bytes.len() as u32, Relaxed);
}

/// The full name kept in the header (validated: at most [`NAME_BYTES`]).
fn stored_name(h: &Header) -> Option<Vec<u8>> {
    let len = h.name_len.load(Relaxed) as usize;
    if len > NAME_BYTES {
        return None;
    }
    let mut bytes: Vec<u8> = h
        .name
        .iter()
        .flat_map(|w| w.load(Relaxed).to_le_bytes())
        .collect();
    bytes.truncate(len);
    Some(bytes)
}

/// An object whose header holds another name is another region whose
/// name hashes the same: refuse it.
fn check_name(name: &str, shown: &Path, h: &Header) -> Result<()> {
    match stored_name(h) {
        Some(found) if found == name.as_bytes() => Ok(()),
        Some(found) if found.is_empty() => Err(Error::NotARegion {
            path: shown.display().to_string(),
            reason: "its header holds no region name",
        }),
        found => Err(Error::NameCollision {
            name: name.to_owned(),
            other: found
                .map(|f| String::from_utf8_lossy(&f).into_owned())
                .unwrap_or_default(),
        }),
    }
}

/// Map an existing object and validate its header, first waiting (up to
/// [`INIT_WAIT`], when `wait` says so) for a creator still sizing it (an
/// empty object) or storing the magic (a zero one).
fn map_ready(
    name: &str,
    shown: &Path,
    fd: &Fd,
    writable: bool,
    wait: bool,
) -> Result<(Mapping, usize)> {
    let start = Instant::now();
    let young = || wait && start.elapsed() < INIT_WAIT;
    let size = loop {
        let size = unix::file_size(fd).map_err(|e| Os::io_error(name, shown, "fstat", e))?;
        if size >= HEADER_SIZE as u64 {
            break size;
        }
        // Sizing is one `ftruncate`: only an empty object is young.
        if size != 0 || !young() {
            return Err(too_small(shown));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let map_len = size.min(layout::region_size(layout::MAX_CAPACITY) as u64) as usize;
    let map =
        Mapping::new(fd, map_len, writable).map_err(|e| Os::io_error(name, shown, "mmap", e))?;
    while map.header().magic.load(Acquire) == 0 && young() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let max_capacity = layout::validate_header(name, shown, map.header(), map.len(), size)?;
    Ok((map, max_capacity))
}

/// A shared-memory object its creator has not made ready (yet).
enum HalfMade {
    /// Not sized yet.
    Empty,
    /// Sized, without its magic: its header.
    Sized(Mapping),
}

/// Whether `fd` is half made: empty, or sized with a header that
/// `layout::init_header` never wrote (no magic, and none of the fields it
/// stores before the magic, nor a publish). A region once ready whose
/// magic a peer zeroed is not half made: it stays refused, never
/// replaced, so its content is not lost to the next opener.
fn half_made(fd: &Fd) -> Option<HalfMade> {
    match unix::file_size(fd).ok()? {
        0 => Some(HalfMade::Empty),
        size if size < HEADER_SIZE as u64 => None,
        _ => {
            let map = Mapping::new(fd, HEADER_SIZE, true).ok()?;
            let h = map.header();
            let untouched = h.magic.load(Acquire) == 0
                && h.version.load(Relaxed) == 0
                && h.max_capacity.load(Relaxed) == 0
                && h.line.generation.load(Relaxed) == 0;
            untouched.then_some(HalfMade::Sized(map))
        }
    }
}

/// Whether `fd` holds a header with a magic (ready, or scribbled).
fn is_ready(fd: &Fd) -> bool {
    Mapping::header_again(fd).is_some_and(|map| map.header().magic.load(Acquire) != 0)
}

/// What the attach table of a half-made object says of its creator.
enum Claim {
    /// No slot is claimed: the creator had not got that far.
    None,
    /// A slot names a process that may be alive (or is being reclaimed).
    Alive,
    /// Slots are claimed, each by a process proven gone.
    Dead,
}

/// Only the creator claims a slot before the magic is stored: openers
/// claim theirs once they see it.
fn creator_claim(h: &Header) -> Claim {
    let mut claim = Claim::None;
    for slot in &h.slots {
        let pid = slot.pid.load(Acquire);
        if pid == 0 {
            continue;
        }
        if pid == attach::RECLAIMING || attach::slot_alive::<Os>(pid, slot.start_time.load(Relaxed))
        {
            return Claim::Alive;
        }
        claim = Claim::Dead;
    }
    claim
}

/// Whether `fd`'s object belongs to this user, and this process runs as
/// that user only (real and effective user ids the same): only then was
/// it made through this process's registry.
fn made_by_this_user(fd: &Fd) -> bool {
    let uid = rustix::process::getuid().as_raw();
    uid == rustix::process::geteuid().as_raw()
        && rustix::fs::fstat(fd).is_ok_and(|st| st.st_uid == uid)
}

/// Remove region `name`'s registry entry after a failed creation: under
/// the creation lock when held.
fn unregister(name: &str, entry: Option<registry::EntryLock>) {
    match entry {
        Some(entry) => entry.remove(name),
        None => {
            registry::remove(name);
        }
    }
}

/// One `open` of a region.
struct Opener<'a> {
    req: &'a Request<'a>,
    object: Object,
    shown: PathBuf,
}

impl Attempts for Opener<'_> {
    type Backend = Os;
    type Found = Fd;

    /// Each lost race to a closer, creator or remover costs one.
    const ATTEMPTS: u32 = 100;
    const UNSTABLE: &'static str =
        "a stable region (other processes kept creating and removing it)";

    fn find(&self) -> Result<Option<Fd>> {
        match self.object.open(true) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("open", e)),
        }
    }

    /// Attach to the existing object `fd`, or find it stale and remove it.
    fn attach(&self, fd: Fd) -> Result<Step<Os>> {
        // Files are named complete: only a shared-memory object can be
        // caught before its creator finished.
        let young = matches!(self.object, Object::Shm(_));
        let (map, max_capacity) = match map_ready(self.req.name, &self.shown, &fd, true, young) {
            Ok(ready) => ready,
            Err(e) if young => return self.replace_abandoned(&fd, e),
            Err(e) => return Err(e),
        };
        let h = map.header();
        if matches!(self.object, Object::Shm(_)) {
            check_name(self.req.name, &self.shown, h)?;
        }
        let life = LifeLock::take(h, self.req.lock_timeout)?;
        if h.flags.load(Acquire) & FLAG_REMOVED != 0 {
            // Being removed (or removed and replaced): look again.
            return Ok(Step::Retry);
        }
        if !h.is_persistent() && !any_alive(h) {
            // Every user of this non-persistent region died without
            // closing: it is gone in spirit. Replace it.
            h.flags.fetch_or(FLAG_REMOVED, Release);
            self.object.unlink().map_err(|e| self.error("unlink", e))?;
            return Ok(Step::Retry);
        }
        if self.req.mode == OpenMode::CreateOnly {
            return Err(Error::AlreadyExists {
                name: self.req.name.to_owned(),
            });
        }
        let slot = self.claim(h)?;
        drop(life);
        Ok(self.done(fd, map, max_capacity, true, slot))
    }

    /// Create the region: exclusively, ready (magic stored) last.
    fn create(&self) -> Result<Step<Os>> {
        match &self.object {
            Object::Shm(object) => {
                // The registry entry first, locked and naming this
                // process until the object is ready (one that is not a
                // plain file refuses the region before anything is made).
                let Some(entry) = self.creation_lock()? else {
                    return Ok(Step::Retry);
                };
                if let Some(entry) = &entry {
                    entry.name_creator();
                }
                let fd = match shm::shm_create(object, self.req.permissions) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Step::Retry),
                    Err(e) => {
                        unregister(self.req.name, entry);
                        return Err(self.error("shm_open", e));
                    }
                };
                crate::stall::stall_at("created");
                let made = self.fill(&fd, &self.shown, false);
                let (map, slot) = match made {
                    Ok(made) => made,
                    Err(e) => {
                        let _ = self.object.unlink();
                        unregister(self.req.name, entry);
                        return Err(e);
                    }
                };
                // Ready (the magic is stored): the lock goes, the entry
                // stays, emptied.
                drop(entry);
                Ok(self.done(fd, map, self.req.max_capacity, false, slot))
            }
            Object::File(path) => self.create_file(path),
        }
    }
}

impl Opener<'_> {
    fn error(&self, op: &'static str, e: io::Error) -> Error {
        Os::io_error(self.req.name, &self.shown, op, e)
    }

    /// The creation lock on the region's registry entry (`Some(None)`
    /// without a registry). While another process holds it (creating the
    /// region, or replacing a half-made one), wait: `None` (look again)
    /// once the object exists, a timeout error if it does not appear
    /// within [`INIT_WAIT`].
    fn creation_lock(&self) -> Result<Option<Option<registry::EntryLock>>> {
        let start = Instant::now();
        loop {
            match registry::add(self.req.name)? {
                registry::Added::Locked(lock) => return Ok(Some(Some(lock))),
                registry::Added::Unregistered => return Ok(Some(None)),
                registry::Added::Busy => {}
            }
            match self.object.open(false) {
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.error("shm_open", e)),
            }
            if start.elapsed() >= INIT_WAIT {
                return Err(Error::Timeout {
                    what: "the region's creation lock (another process is creating it)",
                    waited: start.elapsed(),
                    holder_pid: None,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `map_ready` refused the shared-memory object `fd` with `refused`:
    /// if it is half made (empty, or without its magic) and its creator is
    /// proven gone, remove it and look again; otherwise fail with
    /// `refused`, as an opener always did.
    ///
    /// - A creator that claimed its attach slot is named there (pid and
    ///   start time): a half-made object whose claimed slots all name
    ///   dead processes is removed under its lifetime lock, marked
    ///   removed first, as a stale region is (no other opener removes
    ///   the name after that: they find the mark and look again).
    /// - Before its claim, the creator holds the creation lock on the
    ///   region's registry entry, which names it: an opener that takes
    ///   that lock and finds it naming a dead process removes the object
    ///   under the lock. No creator makes an object while the lock is
    ///   held, so the object at the name then is the dead creator's (or
    ///   a ready one, or none), looked at again under the lock.
    fn replace_abandoned(&self, fd: &Fd, refused: Error) -> Result<Step<Os>> {
        match half_made(fd) {
            Some(HalfMade::Sized(map)) => match creator_claim(map.header()) {
                Claim::Alive => return Err(refused),
                Claim::Dead => return self.remove_half_made(map.header(), refused),
                Claim::None => {}
            },
            Some(HalfMade::Empty) => {}
            None => return Err(refused),
        }
        // Only an object of this user was made through this user's
        // registry (another user's creator locks its own entry).
        let Some(entry) = registry::lock(self.req.name, INIT_WAIT) else {
            return Err(refused);
        };
        let fd = match self.object.open(true) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Step::Retry),
            Err(_) => return Err(refused),
        };
        if !made_by_this_user(&fd) {
            return Err(refused);
        }
        let step = match half_made(&fd) {
            None if is_ready(&fd) => Ok(Step::Retry),
            None => Err(refused),
            Some(HalfMade::Empty) if entry.creator_died() => {
                self.object.unlink().map_err(|e| self.error("unlink", e))?;
                Ok(Step::Retry)
            }
            Some(HalfMade::Empty) => Err(refused),
            Some(HalfMade::Sized(map)) => match creator_claim(map.header()) {
                Claim::Alive => Err(refused),
                Claim::Dead => self.remove_half_made(map.header(), refused),
                Claim::None if entry.creator_died() => self.remove_half_made(map.header(), refused),
                Claim::None => Err(refused),
            },
        };
        drop(entry);
        step
    }

    /// Remove the half-made object whose header is `h`, its creator gone:
    /// under its lifetime lock, marked removed first.
    fn remove_half_made(&self, h: &Header, refused: Error) -> Result<Step<Os>> {
        let _life = LifeLock::take(h, self.req.lock_timeout)?;
        if h.flags.load(Acquire) & FLAG_REMOVED != 0 || h.magic.load(Acquire) != 0 {
            // Removed by another opener (or ready after all): look again.
            return Ok(Step::Retry);
        }
        if matches!(creator_claim(h), Claim::Alive) {
            return Err(refused);
        }
        h.flags.fetch_or(FLAG_REMOVED, Release);
        self.object.unlink().map_err(|e| self.error("unlink", e))?;
        Ok(Step::Retry)
    }

    fn claim(&self, h: &Header) -> Result<usize> {
        attach::claim::<Os>(h).ok_or_else(|| Error::TooManyAttached {
            name: self.req.name.to_owned(),
            max: SLOTS,
        })
    }

    /// Size `fd`, map it and initialise the header with this handle's
    /// slot claimed; the magic last.
    fn fill(&self, fd: &Fd, shown: &Path, persistent: bool) -> Result<(Mapping, usize)> {
        let (capacity, max_capacity) = (self.req.capacity, self.req.max_capacity);
        let size = layout::region_size(max_capacity);
        let backed = layout::backed_size(capacity) as u64;
        if max_capacity == capacity {
            shm::set_size(fd, size as u64)
        } else {
            unix::size_for_growth(fd, capacity, max_capacity)
        }
        .map_err(|e| Os::space_error(self.req.name, shown, "ftruncate", e, backed))?;
        crate::stall::stall_at("sized");
        let map = Mapping::new(fd, size, true).map_err(|e| self.error("mmap", e))?;
        let h = map.header();
        store_name(h, self.req.name);
        // Claimed before the magic: an opener that sees the region ready
        // also sees a live user, and never takes it for stale.
        let slot = self.claim(h)?;
        crate::stall::stall_at("claimed");
        let persistent = persistent || self.req.persistent.unwrap_or(false);
        layout::init_header(h, capacity, max_capacity, persistent, Os::pid());
        Ok((map, slot))
    }

    /// A file region: built complete under a temporary name in the same
    /// directory, then linked to its own (failing if the name is taken).
    fn create_file(&self, path: &Path) -> Result<Step<Os>> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Relaxed);
        let temp = parent_dir(path).join(format!(
            ".{PREFIX}init.{}.{}.{n}",
            unix::pid(),
            Os::own_start_time()
        ));
        let fd = shm::file_create(&temp, self.req.permissions)
            .map_err(|e| Os::io_error(self.req.name, &temp, "open", e))?;
        // A file-backed region persists unless told otherwise.
        let persistent = self.req.persistent.unwrap_or(true);
        let made =
            self.fill(&fd, &temp, persistent)
                .and_then(|made| match shm::link(&temp, path) {
                    Ok(()) => Ok(Some(made)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
                    Err(e) => Err(self.error("link", e)),
                });
        let _ = unix::unlink(&temp);
        Ok(match made? {
            Some((map, slot)) => self.done(fd, map, self.req.max_capacity, false, slot),
            None => Step::Retry,
        })
    }

    fn done(
        &self,
        fd: Fd,
        map: Mapping,
        max_capacity: usize,
        existed: bool,
        slot: usize,
    ) -> Step<Os> {
        // SAFETY: `map` is a page-aligned shared mapping of the object,
        // read-write, holding `region_size(max_capacity)` bytes:
        // `max_capacity` was validated against its length (`map_ready`) or
        // is the one the object was sized for (`fill`); it lives as long as
        // the handle.
        let map = unsafe { Mapped::new(map, max_capacity) };
        Step::Done(Opened {
            os: Os {
                fd,
                map,
                gate: Gate::of(self.object.key()),
                registered: matches!(self.object, Object::Shm(_)),
                object: self.object.clone(),
                name: self.req.name.to_owned(),
                lock_timeout: self.req.lock_timeout,
            },
            path: self.shown.clone(),
            max_capacity,
            existed,
            slot,
        })
    }
}

/// The per-user registry of region names: `$TMPDIR/filemap-<uid>`, one
/// empty file `filemap.<name>` per region. Best effort: it only serves
/// `list`, `inspect` of a vanished region and `clean_stale`.
mod registry {
    use super::*;

    /// The registry directory, made (mode 0700) on first use; `None` when
    /// it cannot be made or is not a directory of ours (another user made
    /// it first in a shared temporary directory).
    fn dir() -> Option<&'static Path> {
        static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
        DIR.get_or_init(|| {
            use std::os::unix::fs::{DirBuilderExt, MetadataExt};
            let uid = rustix::process::getuid().as_raw();
            let dir = std::env::temp_dir().join(format!("filemap-{uid}"));
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
            let meta = std::fs::symlink_metadata(&dir).ok()?;
            (meta.is_dir() && meta.uid() == uid).then_some(dir)
        })
        .as_deref()
    }

    /// The entry of region `name`.
    pub fn entry(name: &str) -> Option<PathBuf> {
        dir().map(|dir| dir.join(format!("{PREFIX}{name}")))
    }

    /// What [`add`] did.
    pub enum Added {
        /// The entry is made and locked: this process may create the
        /// region (until the lock is dropped).
        Locked(EntryLock),
        /// Another process holds the entry's lock: it is creating the
        /// region, or replacing a half-made one.
        Busy,
        /// No entry could be made or locked (no registry directory, a
        /// full or read-only temporary directory, `flock(2)` not
        /// supported there): the registry is best effort; the region is
        /// made without its creation lock, as before it had one.
        Unregistered,
    }

    /// Record region `name` and take its creation lock: its entry, a
    /// regular file, made if missing (mode 0600) and locked (`flock(2)`,
    /// never waiting). The entry is opened the way region files are
    /// (`unix::open_or_create_regular`): a symbolic link there is refused,
    /// never followed, and a FIFO is refused without blocking, as is
    /// anything else but a regular file: [`Error::NotARegion`] naming the
    /// entry and what it is. A lock taken on an entry that was removed
    /// (or replaced) meanwhile is dropped and taken again on the new one.
    pub fn add(name: &str) -> Result<Added> {
        let Some(path) = entry(name) else {
            return Ok(Added::Unregistered);
        };
        for _ in 0..8 {
            let fd =
                match unix::open_or_create_regular(&path, rustix::fs::Mode::from_raw_mode(0o600)) {
                    Ok(fd) => fd,
                    Err(e) => {
                        return match refusal(&path, &e) {
                            Some(reason) => Err(Error::NotARegion {
                                path: path.display().to_string(),
                                reason,
                            }),
                            None => Ok(Added::Unregistered),
                        }
                    }
                };
            match EntryLock::try_take(fd, &path) {
                Taken::Locked(lock) => return Ok(Added::Locked(lock)),
                Taken::Busy => return Ok(Added::Busy),
                Taken::Unsupported => return Ok(Added::Unregistered),
                Taken::Moved => continue,
            }
        }
        Ok(Added::Unregistered)
    }

    /// Take the creation lock of region `name`'s existing entry, waiting
    /// for it at most `wait`; `None` if there is no such entry (or no
    /// registry), it is not a regular file (opened without following a
    /// symbolic link or waiting on a FIFO), or its lock stayed held.
    pub fn lock(name: &str, wait: Duration) -> Option<EntryLock> {
        let path = entry(name)?;
        let start = Instant::now();
        loop {
            let fd = unix::open_existing(&path, true).ok()?;
            match EntryLock::try_take(fd, &path) {
                Taken::Locked(lock) => return Some(lock),
                Taken::Unsupported => return None,
                Taken::Busy | Taken::Moved if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Taken::Busy | Taken::Moved => return None,
            }
        }
    }

    enum Taken {
        Locked(EntryLock),
        Busy,
        Moved,
        Unsupported,
    }

    /// A registry entry's creation lock (`flock(2)`, exclusive), held by
    /// a creator from before it makes the object until the object is
    /// ready, and by an opener while it judges (and removes) a half-made
    /// object. The kernel drops it when its holder dies. While a creator
    /// holds it, the entry holds the creator's process word (pid and
    /// start time, 16 hex digits); the entry is emptied again when the
    /// lock is dropped. So an entry found unlocked and naming a process
    /// that is gone tells of a creator killed mid-creation.
    pub struct EntryLock {
        fd: Fd,
    }

    impl EntryLock {
        fn try_take(fd: Fd, path: &Path) -> Taken {
            use rustix::fs::FlockOperation;
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => return Taken::Busy,
                Err(rustix::io::Errno::INTR) => return Taken::Moved,
                Err(_) => return Taken::Unsupported,
            }
            // Locked: but removing an entry takes its lock first, so the
            // lock counts only if the entry still has its name.
            match unix::names_file(path, &fd) {
                Ok(true) => Taken::Locked(EntryLock { fd }),
                _ => Taken::Moved,
            }
        }

        /// Write this process's word into the entry (before the object is
        /// made).
        pub fn name_creator(&self) {
            let word = format!("{:016x}", own_process_word());
            let _ = rustix::fs::ftruncate(&self.fd, 0);
            let _ = rustix::io::pwrite(&self.fd, word.as_bytes(), 0);
        }

        /// Whether the entry names a creator that is proven gone (pid and
        /// start time; an empty or unreadable entry names nobody).
        pub fn creator_died(&self) -> bool {
            let mut buf = [0u8; 16];
            match rustix::io::pread(&self.fd, &mut buf, 0) {
                Ok(16) => std::str::from_utf8(&buf)
                    .ok()
                    .and_then(|text| u64::from_str_radix(text, 16).ok())
                    .is_some_and(|word| word != 0 && process_word_is_dead(word)),
                _ => false,
            }
        }

        /// Remove the entry, under its lock.
        pub fn remove(self, name: &str) {
            if let Some(path) = entry(name) {
                if unix::names_file(&path, &self.fd).unwrap_or(false) {
                    let _ = unix::unlink(&path);
                }
            }
        }
    }

    impl Drop for EntryLock {
        fn drop(&mut self) {
            // Empty again: the creator it named is done (or was judged
            // gone and its object removed). Closing the descriptor drops
            // the lock.
            let _ = rustix::fs::ftruncate(&self.fd, 0);
        }
    }

    /// Why the entry at `path` was refused, when `e` is a refusal (a
    /// symbolic link, or not a regular file) rather than a failure to
    /// make it.
    fn refusal(path: &Path, e: &io::Error) -> Option<&'static str> {
        use std::os::unix::fs::FileTypeExt;
        match Os::classify(e) {
            ErrorClass::Symlink => {
                return Some("a registry entry must be an empty regular file; this is a symbolic link, not followed")
            }
            ErrorClass::NotRegular(_) => {}
            _ => return None,
        }
        // What it is, for the message: `lstat(2)` neither follows nor
        // blocks.
        let kind = std::fs::symlink_metadata(path).ok().map(|m| m.file_type());
        Some(match kind {
            Some(t) if t.is_fifo() => {
                "a registry entry must be an empty regular file; this is a FIFO (named pipe)"
            }
            Some(t) if t.is_socket() => {
                "a registry entry must be an empty regular file; this is a socket"
            }
            Some(t) if t.is_dir() => {
                "a registry entry must be an empty regular file; this is a directory"
            }
            Some(t) if t.is_char_device() || t.is_block_device() => {
                "a registry entry must be an empty regular file; this is a device"
            }
            _ => "a registry entry must be an empty regular file; this is something else",
        })
    }

    /// Remove region `name`'s entry; whether there was one. An entry
    /// whose creation lock is held is left: another process is creating
    /// the region again under it.
    pub fn remove(name: &str) -> bool {
        let Some(path) = entry(name) else {
            return false;
        };
        match unix::open_existing(&path, true) {
            Ok(fd) => match EntryLock::try_take(fd, &path) {
                Taken::Locked(lock) => {
                    let removed = unix::unlink(&path).is_ok();
                    drop(lock);
                    removed
                }
                Taken::Busy | Taken::Moved => false,
                Taken::Unsupported => std::fs::remove_file(path).is_ok(),
            },
            // Not a plain file of ours (a symbolic link, a FIFO): removed
            // without being opened (`unlink(2)` follows nothing).
            Err(_) => std::fs::remove_file(path).is_ok(),
        }
    }

    /// Whether region `name` has an entry (a regular file; `lstat(2)`:
    /// a symbolic link is not followed).
    pub fn contains(name: &str) -> bool {
        entry(name).is_some_and(|path| {
            std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_file())
        })
    }

    /// Every region name in the registry.
    pub fn names() -> Vec<String> {
        let Some(dir) = dir() else {
            return Vec::new();
        };
        unix::list_dir(dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(unix::name_to_string)
            .filter_map(|file| file.strip_prefix(PREFIX).map(str::to_owned))
            .filter(|name| Os::is_valid_name(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_the_header_and_others_collide() {
        let h = Header::zeroed();
        let name = "n".repeat(Os::MAX_NAME_LEN);
        store_name(&h, &name);
        let shown = Path::new("/fm.test");
        assert!(check_name(&name, shown, &h).is_ok());
        assert!(matches!(
            check_name("another", shown, &h),
            Err(Error::NameCollision { .. })
        ));
        h.name_len.store(NAME_BYTES as u32 + 1, Relaxed);
        assert!(check_name(&name, shown, &h).is_err());
    }

    #[test]
    fn object_names_fit_macos() {
        let Object::Shm(object) = Object::for_name(&"x".repeat(Os::MAX_NAME_LEN)) else {
            unreachable!()
        };
        assert!(object.len() <= 31, "{object}");
        assert!(object.starts_with('/'));
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_its_owner() {
        let me = own_process_word();
        assert!(!process_word_is_dead(me));
        let (pid, start) = word_owner(me);
        assert_ne!(start, 0, "start time known");
        assert!(process_word_is_dead(owner_word(pid, u64::from(start) + 1)));
        assert!(process_word_is_dead(owner_word(0x3fff_fff0, 1)));
    }

    #[test]
    fn a_dead_holders_lifetime_lock_is_taken_over() {
        let h = Header::zeroed();
        h.life.store(owner_word(0x3fff_fff0, 1), Relaxed);
        let life = LifeLock::take(&h, Duration::from_secs(1)).unwrap();
        assert_eq!(h.life.load(Relaxed), own_process_word());
        drop(life);
        assert_eq!(h.life.load(Relaxed), 0);
    }
}
