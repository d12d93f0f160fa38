//! The public API: regions, the builder, guards and the value types.
//!
//! Platform-free, and the top of the stack: nothing below imports it.
//! Opening, lifetime, the lock and wake-ups are the backend's
//! (`backend/`); one handle's state and its way into the region's memory
//! are `handle.rs`; the publish/read protocol is `protocol.rs`. This
//! module gives them their public shape.

#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{validate_name, Backend, OpenMode, Os, Request};
use crate::error::{Error, Result};
use crate::handle::Inner;
use crate::info::RegionInfo;
use crate::layout::{DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY};
use crate::loan::WriteLoan;
use crate::lock::DEFAULT_LOCK_TIMEOUT;
use crate::notify;
use crate::snapshot::{Published, Snapshot, Stamp, Updated, WriterId};
use crate::watch::Watcher;

/// Path of the shared-memory object backing region `name`. On Windows
/// this is the kernel object name `Local\filemap.<name>`, not a file.
pub fn shm_path(name: &str) -> PathBuf {
    Os::shm_path(name)
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
            .field("name", &self.inner.name())
            .field("path", &self.inner.path())
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
        self.inner.path()
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
                name: self.inner.name().to_owned(),
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
        WriteLoan::new(&self.inner, owner_died)
    }

    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
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
        self.inner.info()
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
            .field("name", &self.inner.name())
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
        let name = || self.inner.name().to_owned();
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
