//! The public API: regions, the builder, guards and the value types.
//!
//! Platform-free. Opening, lifetime, the lock and wake-ups are the
//! backend's (`backend/`); the publish/read protocol is `protocol.rs`; the
//! attach table is `attach.rs`. This module wires them together and turns
//! their outcomes into [`Error`]s that name the region.

#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attach;
use crate::backend::{Backend, Opened, Os, Request, Wake};
use crate::error::{Error, NameRule, Result};
use crate::layout::{self, Header, WriterId};
use crate::loan::WriteLoan;
use crate::lock::LockError;
use crate::notify;
use crate::protocol::{Corrupt, View};
use crate::watch::Watcher;

/// Capacity of a region when the builder names none: 4096 bytes.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Smallest capacity accepted: 32 bytes.
pub const MIN_CAPACITY: usize = 32;
/// Largest capacity accepted: 1 GiB (the mapping holds two buffers).
pub const MAX_CAPACITY: usize = 1 << 30;
/// Longest region name in bytes: what the backing object's name allows
/// (Linux: the 255-byte file-name limit less the `filemap.` prefix;
/// macOS and FreeBSD: the same limit on the registry entry
/// `filemap.<name>`; Windows: the longest kernel object name filemap
/// makes, `Global\filemap.<name>.wake.<pid>.<slot>`, within `MAX_PATH`).
pub const MAX_NAME_LEN: usize = <Os as Backend>::MAX_NAME_LEN;
/// How long blocking calls wait for the region lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Check a region name against the naming rules.
///
/// # Errors
/// [`Error::InvalidName`] naming the rule the name breaks.
pub fn validate_name(name: &str) -> Result<()> {
    let rule = if name.is_empty() {
        Some(NameRule::Empty)
    } else if name.len() > MAX_NAME_LEN {
        Some(NameRule::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        })
    } else if name.contains(['/', '\\']) {
        Some(NameRule::Separator)
    } else if name.chars().any(char::is_control) {
        Some(NameRule::ControlCharacter)
    } else if name == "." || name == ".." {
        Some(NameRule::Dots)
    } else {
        None
    };
    match rule {
        Some(rule) => Err(Error::InvalidName {
            name: name.to_owned(),
            rule,
        }),
        None => Ok(()),
    }
}

/// Path of the shared-memory object backing region `name`. On Windows
/// this is the kernel object name `Local\filemap.<name>`, not a file.
/// Path of the shared-memory object backing region `name`. On Windows
/// this is the kernel object name `Local\filemap.<name>`, not a file.
pub fn shm_path(name: &str) -> PathBuf {
    Os::shm_path(name)
}

/// What an open may do with an existing or missing region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    CreateOrAttach,
    CreateOnly,
    OpenOnly,
}

/// Configures and opens a region; made by [`FileMap::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct Builder {
    name: String,
    capacity: Option<u64>,
    mode: OpenMode,
    permissions: u32,
    persistent: Option<bool>,
    path: Option<PathBuf>,
    lock_timeout: Duration,
    global: bool,
}

impl Builder {
    /// Capacity in bytes of a region this handle creates (default
    /// [`DEFAULT_CAPACITY`]). When attaching, the existing region's capacity
    /// wins; [`FileMap::capacity`] reports it.
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Fail with [`Error::AlreadyExists`] instead of attaching.
    pub fn create_only(mut self) -> Self {
        self.mode = OpenMode::CreateOnly;
        self
    }

    /// Fail with [`Error::NotFound`] instead of creating.
    pub fn open_only(mut self) -> Self {
        self.mode = OpenMode::OpenOnly;
        self
    }

    /// Permission bits of a region this handle creates (default `0o600`,
    /// owner only).
    pub fn mode(mut self, permissions: u32) -> Self {
        self.permissions = permissions & 0o777;
        self
    }

    /// Keep a region this handle creates after its last handle closes,
    /// until [`FileMap::remove`]. Default: `false`, except for file-backed
    /// regions ([`Builder::path`]), which persist unless told otherwise.
    /// On Windows a file-backed region is always persistent: asking for
    /// `persistent(false)` with a path gives [`Error::UnsupportedOption`]
    /// (see `docs/platforms.md`).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = Some(persistent);
        self
    }

    /// Back the region by the regular file at `path` instead of shared
    /// memory, so it survives reboots. A symlink at `path` is refused.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// How long [`FileMap::write`], [`FileMap::lock`] and friends wait for
    /// the region lock before [`Error::Timeout`] (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Windows: name the region's kernel objects in the `Global\`
    /// namespace (visible to every session; creating them needs the
    /// `SeCreateGlobalPrivilege`) instead of `Local\` (this session).
    /// No effect on other platforms, where names are host-wide already.
    pub fn global(mut self, global: bool) -> Self {
        self.global = global;
        self
    }

    /// Create or attach to the region.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidCapacity`],
    /// [`Error::NotFound`] (with `open_only`), [`Error::AlreadyExists`]
    /// (with `create_only`), [`Error::PermissionDenied`],
    /// [`Error::OutOfSpace`], [`Error::IncompatibleVersion`],
    /// [`Error::NotARegion`], [`Error::Truncated`], [`Error::Corrupted`],
    /// [`Error::TooManyAttached`], [`Error::Io`].
    pub fn open(self) -> Result<FileMap> {
        validate_name(&self.name)?;
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY as u64);
        if !(MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&capacity) {
            return Err(Error::InvalidCapacity {
                requested: capacity,
                min: MIN_CAPACITY,
                max: MAX_CAPACITY,
            });
        }
        let request = Request {
            name: &self.name,
            capacity: capacity as usize,
            mode: self.mode,
            permissions: self.permissions,
            persistent: self.persistent,
            path: self.path.as_deref(),
            lock_timeout: self.lock_timeout,
            global: self.global,
        };
        let opened = Os::open(&request)?;
        Ok(FileMap {
            inner: Arc::new(Inner::new(&self.name, self.lock_timeout, opened)),
        })
    }
}

fn next_handle_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Relaxed)
}

pub(crate) struct Inner {
    /// The backend's handle: the mapping and the OS objects.
    pub(crate) os: Os,
    name: String,
    path: PathBuf,
    capacity: usize,
    existed: bool,
    slot: usize,
    /// This handle's writer id, recorded with its publishes.
    pub(crate) id: WriterId,
    lock_timeout: Duration,
    /// The fork epoch the handle was opened at: another epoch means this
    /// is a forked child's copy, which must not be used.
    epoch: u32,
    /// How soon changes have been arriving, for adaptive waits.
    learner: notify::Learner,
}

impl Inner {
    fn new(name: &str, lock_timeout: Duration, opened: Opened<Os>) -> Inner {
        let Opened {
            os,
            path,
            capacity,
            existed,
            slot,
        } = opened;
        Inner {
            os,
            name: name.to_owned(),
            path,
            capacity,
            existed,
            slot,
            id: WriterId {
                pid: Os::pid(),
                handle: next_handle_number(),
            },
            lock_timeout,
            epoch: Os::fork_epoch(),
            learner: notify::Learner::new(Os::online_cpus()),
        }
    }

    fn header(&self) -> &Header {
        self.os.header()
    }

    /// The one way into the region's shared memory: every operation that
    /// reads or writes it enters here and reports through
    /// [`Inner::leave`], so none can forget the two facts that make a
    /// handle unusable (see [`Inner::usable`]).
    #[inline]
    fn enter(&self) -> Result<View<'_>> {
        self.usable()?;
        Ok(self.os.view())
    }

    /// After an operation entered by [`Inner::enter`]: if the file shrank
    /// meanwhile, the operation ran on zero pages of our own (see
    /// `backend/unix/fault.rs`) and did nothing that counts, so it must
    /// not be reported as done.
    #[inline]
    fn leave<T>(&self, done: T) -> Result<T> {
        // Orders this check after the operation's loads: a thread that
        // read the zero pages finds the mark set before they were mapped.
        std::sync::atomic::fence(Acquire);
        if self.os.is_lost() {
            return Err(self.lost());
        }
        Ok(done)
    }

    /// The region name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The current generation (one atomic load).
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.header().line.generation.load(Acquire)
    }

    /// `Err(ForkedHandle)` in a forked child: the parent may close the
    /// handle, and with it a non-persistent region, at any time, and the
    /// lock, lifetime lock and attach slot are the parent's.
    /// `Err(Truncated)` once the backing file shrank under the mapping.
    #[inline]
    pub(crate) fn usable(&self) -> Result<()> {
        if Os::fork_epoch() != self.epoch {
            return Err(self.forked());
        }
        if self.os.is_lost() {
            return Err(self.lost());
        }
        Ok(())
    }

    #[cold]
    fn lost(&self) -> Error {
        Error::Truncated {
            name: self.name.clone(),
            size: self.os.backing_size(),
            needed: layout::region_size(self.capacity) as u64,
        }
    }

    #[cold]
    fn forked(&self) -> Error {
        Error::ForkedHandle {
            name: self.name.clone(),
            opened_by: self.id.pid,
            pid: Os::pid(),
        }
    }

    /// Whether this is a forked child's copy of the handle.
    pub(crate) fn in_forked_child(&self) -> bool {
        Os::fork_epoch() != self.epoch
    }

    fn corrupted(&self, field: &'static str, value: u64) -> Error {
        Error::Corrupted {
            name: self.name.clone(),
            field,
            value,
        }
    }

    fn corrupt(&self, c: Corrupt) -> Error {
        self.corrupted(c.field, c.value)
    }

    /// Optimistic lock-free read; `None` when writers kept moving.
    #[inline]
    pub(crate) fn try_read(&self, out: &mut Vec<u8>) -> Result<Option<Stamp>> {
        let read = self.enter()?.try_read(out);
        self.leave(read)?.map_err(|c| self.corrupt(c))
    }

    /// Read the published content while holding the lock (it cannot move).
    fn read_locked(&self, out: &mut Vec<u8>) -> Result<Stamp> {
        let read = self.enter()?.read_locked(out);
        self.leave(read)?.map_err(|c| self.corrupt(c))
    }

    fn lock(&self) -> Result<bool> {
        self.enter()?;
        let locked = self.os.lock(self.lock_timeout);
        if locked.is_err() {
            // Waited in vain: the file may have shrunk meanwhile (the lock
            // word's page may outlive the rest), which says more.
            self.os.idle();
        }
        let owner_died = self.leave(locked)?.map_err(|e| match e {
            LockError::Timeout { waited, holder_pid } => Error::Timeout {
                what: "the region lock",
                waited,
                holder_pid,
            },
            LockError::WouldDeadlock => Error::WouldDeadlock {
                name: self.name.clone(),
            },
            LockError::Failed { op, code } => Error::Io {
                op,
                name: self.name.clone(),
                source: std::io::Error::from_raw_os_error(code),
            },
        })?;
        if owner_died {
            // The dead owner may have published without waking anyone.
            notify::published(self.header(), &self.os);
        }
        Ok(owner_died)
    }

    /// Publish `content` as the next generation. The caller holds the lock
    /// and has checked `content.len() <= capacity`.
    fn publish_locked(&self, content: &[u8]) -> Result<u64> {
        let view = self.enter()?;
        let (next, index) = view.begin_publish();
        view.store(index, content);
        let generation = view.finish_publish(next, index, content.len(), self.id);
        notify::published(self.header(), &self.os);
        self.leave(generation)
    }

    /// Start publishing the next generation (see
    /// [`View::begin_publish`]); the caller holds the lock.
    pub(crate) fn begin_publish(&self) -> Result<(u64, usize)> {
        let begun = self.enter()?.begin_publish();
        self.leave(begun)
    }

    /// Store the whole content of buffer `index` (see [`View::store`]);
    /// the caller holds the lock.
    pub(crate) fn store(&self, index: usize, content: &[u8]) -> Result<()> {
        self.enter()?.store(index, content);
        self.leave(())
    }

    /// Copy `bytes` into buffer `index` at `offset`, for a content longer
    /// than the buffer's line holds (see [`View::store_at`]);
    /// the caller holds the lock.
    pub(crate) fn store_at(&self, index: usize, offset: usize, bytes: &[u8]) -> Result<()> {
        self.enter()?.store_at(index, offset, bytes);
        self.leave(())
    }

    /// Publish buffer `index`, filled with `len` bytes, as generation
    /// `next`, and wake the waiters.
    pub(crate) fn finish_publish(&self, next: u64, index: usize, len: usize) -> Result<u64> {
        let next = self.enter()?.finish_publish(next, index, len, self.id);
        notify::published(self.header(), &self.os);
        self.leave(next)
    }

    /// Release the lock taken by this thread. A forked child's copy
    /// releases nothing (the lock is its parent's): `ForkedHandle`.
    pub(crate) fn unlock(&self) -> Result<()> {
        self.enter()?;
        self.os.unlock();
        self.leave(())
    }

    /// The generation a wait on this handle returns at once, without
    /// waiting, when the handle can no longer be used (a forked child's
    /// copy, or a mapping whose file shrank): the caller's next call
    /// reports why.
    #[inline]
    fn unusable_now(&self) -> Option<u64> {
        self.usable().is_err().then(|| self.generation())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.in_forked_child() || self.os.is_lost() {
            // A forked child's copy: the slot and the lifetime lock (shared
            // through the inherited open file) are the parent's. A lost
            // mapping holds our own zero pages, which say nothing about
            // the region (not even whether it is persistent): leave its
            // name alone; closing the file releases what this handle held.
            return;
        }
        attach::release(self.header(), self.slot, self.id.pid);
        // No sweep here: a liveness check per slot on every close would
        // cost more than the whole close; opening reclaims dead slots.
        self.os.close();
    }
}

/// A generation and who published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The generation: 0 for a new region, bumped by every publish.
    pub generation: u64,
    /// Who published it (`pid` 0 for a region nobody wrote yet).
    pub writer: WriterId,
}

impl Stamp {
    /// `content` with this stamp.
    pub(crate) fn with<T>(self, content: T) -> Snapshot<T> {
        Snapshot {
            content,
            generation: self.generation,
            writer: self.writer,
        }
    }
}

/// Content read from a region with its generation and writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<T = Vec<u8>> {
    /// The content.
    pub content: T,
    /// The generation it was published as.
    pub generation: u64,
    /// Who published it.
    pub writer: WriterId,
}

impl<T> Snapshot<T> {
    /// The generation and writer, without the content.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            generation: self.generation,
            writer: self.writer,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The new generation.
    pub generation: u64,
    /// The lock's previous owner died holding it; its unpublished write
    /// was discarded and the published content is intact.
    pub owner_died: bool,
}

/// What [`FileMap::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Updated<R> {
    /// The closure's return value.
    pub value: R,
    /// The generation after the update (unchanged if nothing was published).
    pub generation: u64,
    /// Whether the content changed and was published.
    pub published: bool,
    /// The lock's previous owner died holding it.
    pub owner_died: bool,
}

/// A snapshot of a region's header, for introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region name.
    pub name: String,
    /// The backing file.
    pub path: PathBuf,
    /// Capacity in bytes.
    pub capacity: usize,
    /// Length of the published content in bytes.
    pub len: usize,
    /// Current generation.
    pub generation: u64,
    /// Who published the current generation.
    pub last_writer: WriterId,
    /// Whether the region outlives its last handle.
    pub persistent: bool,
    /// Live processes attached (from the attach table).
    pub attached: Vec<u32>,
    /// Non-persistent and nobody attached: its users died without closing.
    /// The next open replaces it; [`FileMap::clean_stale`] removes it.
    pub stale: bool,
}

/// A handle to a named shared-memory region.
///
/// Dropping the last handle of a non-persistent region (in any process)
/// removes the region. A `FileMap` is `Send + Sync`; share it between
/// threads by reference or `Arc`.
pub struct FileMap {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMap")
            .field("name", &self.inner.name)
            .field("path", &self.inner.path)
            .field("capacity", &self.inner.capacity)
            .field("existed_already", &self.inner.existed)
            .field("id", &self.inner.id)
            .finish()
    }
}

impl FileMap {
    /// Start configuring region `name`.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            capacity: None,
            mode: OpenMode::CreateOrAttach,
            permissions: 0o600,
            persistent: None,
            path: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            global: false,
        }
    }

    /// Create or attach to region `name` with the default settings.
    ///
    /// # Errors
    /// As [`Builder::open`].
    pub fn open(name: impl Into<String>) -> Result<FileMap> {
        Self::builder(name).open()
    }

    /// The region name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The backing file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Capacity in bytes: the most content a publish may carry.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Whether this handle attached to a region that existed before.
    pub fn existed_already(&self) -> bool {
        self.inner.existed
    }

    /// Whether the region outlives its last handle.
    pub fn is_persistent(&self) -> bool {
        self.inner.header().is_persistent()
    }

    /// This handle's writer id, as recorded with its publishes.
    pub fn id(&self) -> WriterId {
        self.inner.id
    }

    /// Who published the current generation (one atomic load; it may
    /// already be stale when it returns, like any unlocked read).
    #[inline]
    pub fn last_writer(&self) -> WriterId {
        WriterId::unpack(self.inner.header().last_writer())
    }

    /// The current generation (one atomic load).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// Publish `content` as the region's whole new content.
    ///
    /// Readers see either the previous content or this one, never a mix.
    /// Takes the cross-process lock for the copy.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (nothing written), [`Error::Timeout`] when the
    /// lock stays held past the lock timeout, [`Error::WouldDeadlock`].
    pub fn write(&self, content: &[u8]) -> Result<Published> {
        self.check_fits(content.len())?;
        let owner_died = self.inner.lock()?;
        let generation = self.inner.publish_locked(content);
        self.inner.unlock()?;
        Ok(Published {
            generation: generation?,
            owner_died,
        })
    }

    /// Publish `content` only if the region is still at generation
    /// `expected` (compare-and-publish): a write made after reading
    /// generation `expected` never overwrites a change it has not seen.
    ///
    /// # Errors
    /// [`Error::Conflict`] with the generation found when the region moved
    /// (nothing written); otherwise as [`FileMap::write`].
    pub fn write_if(&self, expected: u64, content: &[u8]) -> Result<Published> {
        self.check_fits(content.len())?;
        let owner_died = self.inner.lock()?;
        let found = self.inner.generation();
        if found != expected {
            self.inner.unlock()?;
            return Err(Error::Conflict {
                name: self.inner.name.clone(),
                expected,
                found,
            });
        }
        let generation = self.inner.publish_locked(content);
        self.inner.unlock()?;
        Ok(Published {
            generation: generation?,
            owner_died,
        })
    }

    /// Publish a string. See [`FileMap::write`].
    ///
    /// # Errors
    /// As [`FileMap::write`].
    pub fn write_str(&self, text: &str) -> Result<Published> {
        self.write(text.as_bytes())
    }

    /// Publish lines joined by `'\n'` (no trailing newline). See
    /// [`FileMap::write`]; [`FileMap::read_lines`] gives them back.
    ///
    /// # Errors
    /// As [`FileMap::write`].
    pub fn write_lines<I, S>(&self, lines: I) -> Result<Published>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.write(join_lines(lines).as_bytes())
    }

    fn check_fits(&self, len: usize) -> Result<()> {
        self.inner.usable()?;
        if len > self.inner.capacity {
            return Err(Error::TooLarge {
                len,
                capacity: self.inner.capacity,
            });
        }
        Ok(())
    }

    /// Read the published content into `buf` (replacing what it held) and
    /// return its stamp. Lock-free; allocates nothing once `buf` has room.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when the header holds an impossible length;
    /// [`Error::Timeout`] only if writers keep the content moving so fast
    /// that the reader falls back to the lock and cannot get it.
    #[inline]
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<Stamp> {
        if let Some(stamp) = self.inner.try_read(buf)? {
            return Ok(stamp);
        }
        self.read_slow(buf)
    }

    #[cold]
    fn read_slow(&self, buf: &mut Vec<u8>) -> Result<Stamp> {
        self.inner.lock()?;
        let stamp = self.inner.read_locked(buf);
        self.inner.unlock()?;
        stamp
    }

    /// Read the published content. See [`FileMap::read_into`].
    ///
    /// # Errors
    /// As [`FileMap::read_into`].
    pub fn read(&self) -> Result<Snapshot> {
        let mut content = Vec::new();
        Ok(self.read_into(&mut content)?.with(content))
    }

    /// Read the content as UTF-8 text.
    ///
    /// # Errors
    /// As [`FileMap::read_into`], and [`Error::NotUtf8`].
    pub fn read_string(&self) -> Result<Snapshot<String>> {
        let snap = self.read()?;
        let stamp = snap.stamp();
        let content = String::from_utf8(snap.content).map_err(|e| Error::NotUtf8 {
            valid_up_to: e.utf8_error().valid_up_to(),
        })?;
        Ok(stamp.with(content))
    }

    /// Read the content as lines (split at `'\n'`; empty content is no
    /// lines).
    ///
    /// # Errors
    /// As [`FileMap::read_string`].
    pub fn read_lines(&self) -> Result<Snapshot<Vec<String>>> {
        let snap = self.read_string()?;
        Ok(snap.stamp().with(split_lines(&snap.content)))
    }

    /// Take the cross-process lock for a read-modify-write.
    ///
    /// While the guard lives, no other handle publishes. If the previous
    /// owner died holding the lock, [`Guard::owner_died`] says so.
    ///
    /// # Errors
    /// [`Error::Timeout`] naming the holding process after the lock
    /// timeout; [`Error::WouldDeadlock`] when this thread holds it already.
    pub fn lock(&self) -> Result<Guard<'_>> {
        self.inner.usable()?;
        let owner_died = self.inner.lock()?;
        Ok(Guard {
            map: self,
            owner_died,
            _not_send: PhantomData,
        })
    }

    /// Take the cross-process lock with a guard that owns its share of the
    /// handle instead of borrowing it, for callers that keep the guard in
    /// a structure of their own (language bindings, state machines).
    ///
    /// The lock still belongs to the thread that took it: the guard may
    /// move, but [`OwnedGuard::read`], [`OwnedGuard::publish`] and
    /// [`OwnedGuard::unlock`] called from another thread return
    /// [`Error::WrongThread`] and leave it held.
    ///
    /// # Errors
    /// As [`FileMap::lock`].
    pub fn lock_owned(&self) -> Result<OwnedGuard> {
        self.inner.usable()?;
        let owner_died = self.inner.lock()?;
        Ok(OwnedGuard {
            inner: Arc::clone(&self.inner),
            owner_died,
            thread: std::thread::current().id(),
            tid: Os::tid(),
            held: true,
        })
    }

    /// Lend the inactive buffer, under the lock, to be filled in place
    /// through [`std::io::Write`] and published by [`WriteLoan::commit`]:
    /// a serialiser writes straight into the region, with no intermediate
    /// `Vec` of the whole content. Readers see nothing until the commit; a
    /// loan dropped uncommitted, or grown past the capacity
    /// ([`Error::TooLarge`]), leaves the published content as it was.
    ///
    /// ```
    /// # fn main() -> filemap::Result<()> {
    /// # let name = format!("doc-loan-{}", std::process::id());
    /// use std::io::Write;
    /// let map = filemap::FileMap::open(&name)?;
    /// let mut loan = map.loan()?;
    /// write!(loan, "{} {}", "speed", 12.5).unwrap();
    /// let published = loan.commit()?;
    /// assert_eq!(map.read()?.content, b"speed 12.5");
    /// assert_eq!(map.generation(), published.generation);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`FileMap::lock`].
    pub fn loan(&self) -> Result<WriteLoan<'_>> {
        self.inner.usable()?;
        let owner_died = self.inner.lock()?;
        WriteLoan::new(self, owner_died)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Whether the region's name no longer leads to this region: it was
    /// removed ([`FileMap::remove`], `filemap rm`), or removed and made
    /// anew. This handle still works, but no process that opens the name
    /// from now on will see its changes. Windows: always `false` (a
    /// section stays reachable by name while handles to it are open).
    pub fn is_removed(&self) -> bool {
        self.inner.os.is_removed()
    }

    /// Read-modify-write under the lock: `f` gets the current content and
    /// may change it; a changed content is published when `f` returns.
    /// N processes incrementing a counter this way never lose an update.
    ///
    /// # Errors
    /// As [`FileMap::lock`]; [`Error::TooLarge`] if `f` grew the content
    /// past the capacity (nothing is published); [`Error::Corrupted`].
    pub fn update<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> Result<Updated<R>> {
        let mut guard = self.lock()?;
        let current = guard.read()?;
        let mut content = current.content.clone();
        let value = f(&mut content);
        let owner_died = guard.owner_died();
        if content == current.content {
            return Ok(Updated {
                value,
                generation: current.generation,
                published: false,
                owner_died,
            });
        }
        let published = guard.publish(&content)?;
        Ok(Updated {
            value,
            generation: published.generation,
            published: true,
            owner_died,
        })
    }

    /// Block until the generation differs from `seen` and return the new
    /// one, or `None` when `timeout` passes first (`None` timeout: wait as
    /// long as it takes). Sleeps in the kernel (futex); wakes within
    /// microseconds of a publish.
    ///
    /// Every wait returns at once, with the generation read now, on a
    /// handle that can no longer be used (a forked child's copy, or one
    /// whose file shrank under it: see [`Error::Truncated`]); the next
    /// call that returns a `Result` says why.
    pub fn wait_change(&self, seen: u64, timeout: Option<Duration>) -> Option<u64> {
        if let Some(now) = self.inner.unusable_now() {
            return Some(now);
        }
        let h = self.inner.header();
        let slot = &h.slots[self.inner.slot];
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        notify::sleep_until(h, slot, &self.inner.os, seen, deadline)
    }

    /// Like [`FileMap::wait_change`], but busy-polls for a short while
    /// first when that has recently paid off: latency close to
    /// [`FileMap::wait_change_spin`]'s when the peer answers promptly, and
    /// close to no CPU when changes come rarely.
    ///
    /// The handle learns from its spins: a change a spin caught sets the
    /// next budget (about twice the moving average of those gaps, at most
    /// 50 µs, polling with the CPU's pause instruction); after four empty
    /// spins in a row it sleeps at once, but for a full probe every eight
    /// waits, which teaches it to spin again when the peer turns prompt. At
    /// most one thread fewer than the machine has cores spin on a region at
    /// once, across all processes, so spinners never starve the writer
    /// they wait for. Sleeping is exactly [`FileMap::wait_change`]'s.
    pub fn wait_change_adaptive(&self, seen: u64, timeout: Option<Duration>) -> Option<u64> {
        if let Some(now) = self.inner.unusable_now() {
            return Some(now);
        }
        let h = self.inner.header();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        notify::adaptive(
            h,
            &h.slots[self.inner.slot],
            &self.inner.os,
            seen,
            deadline,
            &self.inner.learner,
        )
    }

    /// Like [`FileMap::wait_change`], but busy-polls the generation instead
    /// of sleeping: lowest latency, one core kept busy.
    pub fn wait_change_spin(&self, seen: u64, timeout: Option<Duration>) -> Option<u64> {
        if let Some(now) = self.inner.unusable_now() {
            return Some(now);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        notify::spin(self.inner.header(), &self.inner.os, seen, deadline)
    }

    /// Call `callback` from a background thread with every change published
    /// by another handle (in this or another process), skipping this
    /// handle's own writes. Bursts are coalesced: the callback may skip
    /// intermediate generations but always gets the latest content. The
    /// thread waits as [`FileMap::wait_change_adaptive`] does: promptly
    /// when changes come fast, at no CPU cost when they come rarely.
    /// Dropping the returned [`Watcher`] stops the thread. The watcher
    /// keeps the region attached (and so alive) until it is dropped, even
    /// after every `FileMap` handle is gone.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned.
    pub fn watch<F>(&self, callback: F) -> Result<Watcher>
    where
        F: FnMut(Result<Snapshot>) + Send + 'static,
    {
        self.inner.usable()?;
        crate::watch::spawn(Arc::clone(&self.inner), callback)
    }

    /// Introspect this region.
    pub fn info(&self) -> RegionInfo {
        let inner = &self.inner;
        region_info(&inner.name, &inner.path, inner.header(), inner.capacity)
    }

    /// Introspect region `name` without attaching to it.
    ///
    /// # Errors
    /// As [`Builder::open`] with `open_only`.
    pub fn inspect(name: &str) -> Result<RegionInfo> {
        validate_name(name)?;
        Os::inspect(name)
    }

    /// Every shared-memory region on this host, each with its info or the
    /// error that prevented reading it (permissions, corruption...).
    ///
    /// Windows cannot enumerate kernel object names cheaply, so there this
    /// lists a registry kept by filemap in `%LOCALAPPDATA%\filemap`
    /// (persistent regions' files and a marker per live region; best
    /// effort, `Local\` namespace only); a marker whose section is gone
    /// is reported stale. macOS and FreeBSD (the `posix` backend) cannot
    /// list their shared-memory objects either: there this lists the
    /// per-user registry `$TMPDIR/filemap-<uid>` in the same way.
    ///
    /// # Errors
    /// [`Error::Io`] when the shared-memory directory cannot be listed.
    pub fn list() -> Result<Vec<(String, Result<RegionInfo>)>> {
        Os::list()
    }

    /// Remove region `name`'s name now. Processes attached keep their
    /// mapping; new opens create a new region.
    ///
    /// Windows: deletes a persistent region's file (and a stale registry
    /// entry). The section itself stays reachable by name until its last
    /// handle closes, so opens meanwhile attach to the old region; a live
    /// non-persistent region cannot be removed, it goes with its last handle.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`],
    /// [`Error::PermissionDenied`], [`Error::Io`].
    pub fn remove(name: &str) -> Result<()> {
        validate_name(name)?;
        Os::remove(name)
    }

    /// Remove every stale region (non-persistent, no live process attached)
    /// and return their names. (Windows: the registry entries of regions
    /// whose users all died; the kernel removed the regions themselves.)
    ///
    /// # Errors
    /// As [`FileMap::list`].
    pub fn clean_stale() -> Result<Vec<String>> {
        Os::clean_stale()
    }
}

impl Inner {
    /// One adaptive wait of a watcher: spin while that pays (see
    /// [`FileMap::wait_change_adaptive`]), then sleep once, at most
    /// `timeout`, unless `cancel` is set. Returns the generation found.
    pub(crate) fn wait_once(&self, seen: u64, timeout: Duration, cancel: &AtomicBool) -> u64 {
        let h = self.header();
        let slot = &h.slots[self.slot];
        let start = Instant::now();
        if let Some(generation) =
            notify::spin_phase(h, slot, &self.os, seen, None, &self.learner, start)
        {
            return generation;
        }
        notify::wait_once(h, slot, &self.os, seen, timeout, Some(cancel))
    }

    pub(crate) fn interrupt_waits(&self) {
        notify::interrupt(self.header(), &self.os);
    }
}

/// What [`FileMap::info`] and the backends' `inspect` report of a region
/// whose header was validated with capacity `capacity`.
pub(crate) fn region_info(name: &str, path: &Path, h: &Header, capacity: usize) -> RegionInfo {
    let generation = h.line.generation.load(Acquire);
    let buffer = &h.line.buffers[(generation & 1) as usize];
    let len = buffer.len.load(Relaxed).min(capacity as u64) as usize;
    let persistent = h.is_persistent();
    let attached = attach::attached_pids(h);
    RegionInfo {
        name: name.to_owned(),
        path: path.to_owned(),
        capacity,
        len,
        generation,
        last_writer: WriterId::unpack(buffer.writer.load(Relaxed)),
        persistent,
        stale: !persistent && attached.is_empty(),
        attached,
    }
}

/// Holds the region lock; see [`FileMap::lock`]. Released on drop.
///
/// The lock belongs to the thread that took it, so a guard cannot move to
/// another thread:
///
/// ```compile_fail
/// fn is_send<T: Send>() {}
/// is_send::<filemap::Guard<'static>>();
/// ```
pub struct Guard<'a> {
    map: &'a FileMap,
    owner_died: bool,
    /// The lock belongs to the thread that took it (its id is the lock
    /// word): a guard must not move to another thread.
    _not_send: PhantomData<*const ()>,
}

impl Guard<'_> {
    /// Whether the previous owner died holding the lock.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// The published content; stable while the guard lives.
    ///
    /// # Errors
    /// [`Error::Corrupted`].
    pub fn read(&self) -> Result<Snapshot> {
        let mut content = Vec::new();
        Ok(self.map.inner.read_locked(&mut content)?.with(content))
    }

    /// The published content into `buf` (replacing what it held).
    ///
    /// # Errors
    /// [`Error::Corrupted`].
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<Stamp> {
        self.map.inner.read_locked(buf)
    }

    /// Publish `content`; the lock stays held.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (nothing written).
    pub fn publish(&mut self, content: &[u8]) -> Result<Published> {
        self.map.check_fits(content.len())?;
        Ok(Published {
            generation: self.map.inner.publish_locked(content)?,
            owner_died: self.owner_died,
        })
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // A handle that became unusable meanwhile has nothing to release.
        let _ = self.map.inner.unlock();
    }
}

/// Holds the region lock, owning its share of the handle; see
/// [`FileMap::lock_owned`]. Released by [`OwnedGuard::unlock`] or on drop.
///
/// The guard is `Send` so that it can live in any structure, but the lock
/// belongs to the thread that took it: used from another thread, every
/// method returns [`Error::WrongThread`] and the lock stays held. Dropped
/// on another thread, it is released there on Linux (the lock word names
/// the thread, which any thread of the process can clear); on Windows the
/// kernel mutex can only be released by its owner thread, so it stays held
/// until that thread ends, and the next taker is then told `owner_died`.
pub struct OwnedGuard {
    inner: Arc<Inner>,
    owner_died: bool,
    thread: std::thread::ThreadId,
    /// The OS id of the thread that took the lock.
    tid: u32,
    held: bool,
}

impl std::fmt::Debug for OwnedGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedGuard")
            .field("name", &self.inner.name)
            .field("owner_died", &self.owner_died)
            .field("held", &self.held)
            .finish()
    }
}

impl OwnedGuard {
    /// Whether the previous owner died holding the lock.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Whether the guard still holds the lock (it has not been unlocked).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// `Ok` when the lock is held and this is the thread that took it.
    fn check(&self) -> Result<()> {
        let name = || self.inner.name.clone();
        if !self.held {
            return Err(Error::NotLocked { name: name() });
        }
        if std::thread::current().id() != self.thread {
            return Err(Error::WrongThread { name: name() });
        }
        Ok(())
    }

    /// The published content; stable while the lock is held.
    ///
    /// # Errors
    /// [`Error::WrongThread`], [`Error::NotLocked`], [`Error::Corrupted`].
    pub fn read(&self) -> Result<Snapshot> {
        self.check()?;
        let mut content = Vec::new();
        Ok(self.inner.read_locked(&mut content)?.with(content))
    }

    /// Publish `content`; the lock stays held.
    ///
    /// # Errors
    /// [`Error::WrongThread`], [`Error::NotLocked`], [`Error::TooLarge`]
    /// (nothing written).
    pub fn publish(&mut self, content: &[u8]) -> Result<Published> {
        self.check()?;
        if content.len() > self.inner.capacity {
            return Err(Error::TooLarge {
                len: content.len(),
                capacity: self.inner.capacity,
            });
        }
        Ok(Published {
            generation: self.inner.publish_locked(content)?,
            owner_died: self.owner_died,
        })
    }

    /// Release the lock now.
    ///
    /// # Errors
    /// [`Error::WrongThread`] (the lock stays held), [`Error::NotLocked`]
    /// when it was released already, [`Error::ForkedHandle`] in a forked
    /// child (the lock is the parent's, and stays held by it).
    pub fn unlock(&mut self) -> Result<()> {
        self.check()?;
        self.inner.unlock()?;
        self.held = false;
        Ok(())
    }
}

impl Drop for OwnedGuard {
    fn drop(&mut self) {
        if !self.held || self.inner.in_forked_child() {
            return;
        }
        if std::thread::current().id() == self.thread {
            let _ = self.inner.unlock();
        } else {
            self.inner.os.unlock_for(self.tid);
        }
    }
}

/// Join lines with `'\n'`.
pub(crate) fn join_lines<I, S>(lines: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut text = String::new();
    for (i, line) in lines.into_iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(line.as_ref());
    }
    text
}

/// Split text at `'\n'`; empty text is no lines.
pub(crate) fn split_lines(text: &str) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_owned).collect()
    }
}
