//! The public API: a region's handle ([`FileMap`]), its builder and its
//! lock guards.
//!
//! Platform-free, and the top of the stack: nothing below imports it.
//! Opening, lifetime, the lock and wake-ups are the backend's
//! (`backend/`); one handle's state and its way into the region's memory
//! are `handle.rs`; the publish/read protocol is `protocol.rs`; waits are
//! `wait.rs` over `notify.rs`. This module gives them their public shape.
//! Text and typed values are extension traits (`text.rs`, `value.rs`);
//! functions on regions by name are `admin.rs`.

#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{validate_name, Backend, OpenMode, Os, Request};
use crate::error::{Error, Result};
use crate::handle::Inner;
use crate::info::RegionInfo;
use crate::layout::{DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY};
use crate::loan::WriteLoan;
use crate::lock::DEFAULT_LOCK_TIMEOUT;
use crate::protocol::Sink;
use crate::snapshot::{Published, Snapshot, Stamp, Updated, WriterId};
use crate::wait::{self, Wait};
use crate::watch::Watcher;

/// A buffer [`FileMap::read_into`] fills: a `Vec<u8>` (cleared and filled
/// with the content, reusing its allocation) or a `[u8]` slice (which must
/// hold the content: else [`Error::BufferTooSmall`] says how long it is),
/// or a `[MaybeUninit<u8>]` slice, as a `[u8]` one but with no need to
/// initialise it first: after `Ok(stamp)` its first `stamp.len` bytes are
/// the content (the rest as they were). Implemented for those three only.
pub trait ReadBuffer: Sink {}

impl<T: Sink + ?Sized> ReadBuffer for T {}

/// Configures and opens a region; made by [`FileMap::builder`].
///
/// ```
/// use std::time::Duration;
///
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-builder-{}", std::process::id());
/// let map = filemap::FileMap::builder(&name)
///     .capacity(64 * 1024)
///     .create_only() // AlreadyExists if another process made it
///     .lock_timeout(Duration::from_secs(1))
///     .open()?;
/// assert_eq!(map.capacity(), 64 * 1024);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct Builder {
    name: String,
    capacity: Option<usize>,
    max_capacity: Option<usize>,
    mode: OpenMode,
    permissions: u32,
    persistent: Option<bool>,
    path: Option<PathBuf>,
    lock_timeout: Duration,
    global: bool,
}

impl Builder {
    /// Capacity in bytes of a region this handle creates (default
    /// [`DEFAULT_CAPACITY`]): the most content a publish carries without
    /// growing the region. When attaching, the existing region's capacity
    /// wins; [`FileMap::capacity`] reports it.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// The most a region this handle creates may grow to, in bytes
    /// (default: the capacity, so the region never grows). Between
    /// [`Builder::capacity`] and [`MAX_CAPACITY`].
    ///
    /// A publish of more than the current capacity and at most this
    /// grows the region first, under the lock, and succeeds; every handle
    /// already attached (guards, loans, waiters, watchers included) keeps
    /// working, without reopening. Past the maximum, a publish is
    /// [`Error::TooLarge`] with both numbers. The region costs what its
    /// current capacity uses: on Linux the backing file is sized for the
    /// maximum but sparse, and growing allocates the new pages
    /// (`fallocate(2)`) before anything is written into them, so a full
    /// `/dev/shm` is [`Error::OutOfSpace`] for that publish, the region
    /// keeping its content and capacity. Each process maps the maximum
    /// (address space only). See `docs/growth.md` for each system.
    ///
    /// ```
    /// # fn main() -> filemap::Result<()> {
    /// # let name = format!("doc-grow-{}", std::process::id());
    /// let map = filemap::FileMap::builder(&name)
    ///     .capacity(4096)
    ///     .max_capacity(1 << 20)
    ///     .open()?;
    /// map.write(&vec![7u8; 100_000])?; // grows the region
    /// assert!(map.capacity() >= 100_000);
    /// assert_eq!(map.max_capacity(), 1 << 20);
    /// let past = map.write(&vec![7u8; (1 << 20) + 1]).unwrap_err();
    /// assert!(matches!(past, filemap::Error::TooLarge { max_capacity, .. } if max_capacity == 1 << 20));
    /// # Ok(()) }
    /// ```
    ///
    /// When attaching, the existing region's maximum wins;
    /// [`FileMap::max_capacity`] reports it.
    pub fn max_capacity(mut self, bytes: usize) -> Self {
        self.max_capacity = Some(bytes);
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
    /// owner only). Unix only; ignored on Windows, where a region's
    /// objects get the creating user's default security.
    pub fn permissions(mut self, permissions: u32) -> Self {
        self.permissions = permissions & 0o777;
        self
    }

    /// Keep a region this handle creates after its last handle closes,
    /// until [`admin::remove`](crate::admin::remove). Default: `false`, except for file-backed
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

    /// How long [`FileMap::write`], [`FileMap::lock`] and the others that
    /// take the lock wait for
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
    /// [`Error::InvalidMaxCapacity`],
    /// [`Error::NotFound`] (with `open_only`), [`Error::AlreadyExists`]
    /// (with `create_only`), [`Error::PermissionDenied`],
    /// [`Error::OutOfSpace`], [`Error::IncompatibleVersion`],
    /// [`Error::NotARegion`], [`Error::Truncated`], [`Error::Corrupted`],
    /// [`Error::TooManyAttached`], [`Error::Io`].
    pub fn open(self) -> Result<FileMap> {
        validate_name(&self.name)?;
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY);
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(Error::InvalidCapacity {
                requested: capacity as u64,
                min: MIN_CAPACITY,
                max: MAX_CAPACITY,
            });
        }
        let max_capacity = self.max_capacity.unwrap_or(capacity);
        if !(capacity..=MAX_CAPACITY).contains(&max_capacity) {
            return Err(Error::InvalidMaxCapacity {
                requested: max_capacity as u64,
                capacity,
                max: MAX_CAPACITY,
            });
        }
        let request = Request {
            name: &self.name,
            capacity,
            max_capacity,
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
///
/// Its methods, by what they do:
/// - open: [`FileMap::open`], [`FileMap::builder`];
/// - describe: [`name`](FileMap::name), [`capacity`](FileMap::capacity),
///   [`existed_already`](FileMap::existed_already),
///   [`is_removed`](FileMap::is_removed),
///   [`writer_id`](FileMap::writer_id),
///   [`generation`](FileMap::generation), [`info`](FileMap::info);
/// - publish: [`write`](FileMap::write), [`write_if`](FileMap::write_if),
///   [`update`](FileMap::update), [`loan`](FileMap::loan), or
///   [`lock`](FileMap::lock) / [`lock_owned`](FileMap::lock_owned) and
///   publish through the guard;
/// - read: [`read`](FileMap::read), [`read_into`](FileMap::read_into);
/// - follow changes: [`wait_change`](FileMap::wait_change),
///   [`watch`](FileMap::watch).
///
/// Text and typed values are extension traits ([`TextExt`](crate::TextExt),
/// `ValueExt` with the `serde` feature; both in [`prelude`](crate::prelude));
/// functions on regions by name (list, inspect, remove, clean up) are in
/// [`admin`](crate::admin).
///
/// ```
/// use filemap::prelude::*;
///
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-filemap-{}", std::process::id());
/// let map = FileMap::open(&name)?; // create, or attach if it exists
/// let published = map.write(b"hello")?;
/// let snap = map.read()?;
/// assert_eq!((&snap.content[..], snap.generation), (&b"hello"[..], published.generation));
/// # Ok(()) }
/// ```
pub struct FileMap {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMap")
            .field("name", &self.inner.name())
            .field("path", &self.inner.path())
            .field("capacity", &self.inner.capacity())
            .field("max_capacity", &self.inner.max_capacity)
            .field("existed_already", &self.inner.existed)
            .field("writer_id", &self.inner.id)
            .finish()
    }
}

impl FileMap {
    /// Start configuring region `name`.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            capacity: None,
            max_capacity: None,
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

    /// Capacity in bytes now: the most content a publish carries without
    /// growing the region. It grows (see [`Builder::max_capacity`]) up to
    /// [`FileMap::max_capacity`], and never shrinks.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The most the capacity may grow to, in bytes: the most content a
    /// publish may carry. Equal to [`FileMap::capacity`] for a region made
    /// without [`Builder::max_capacity`].
    pub fn max_capacity(&self) -> usize {
        self.inner.max_capacity
    }

    /// Whether this handle attached to a region that existed before.
    pub fn existed_already(&self) -> bool {
        self.inner.existed
    }

    /// Whether the region's name no longer leads to this region: it was
    /// removed ([`admin::remove`](crate::admin::remove), `filemap rm`), or
    /// removed and made anew. This handle still works, but no process that
    /// opens the name from now on will see its changes. Windows: always
    /// `false` (a section stays reachable by name while handles to it are
    /// open).
    pub fn is_removed(&self) -> bool {
        self.inner.os.is_removed()
    }

    /// This handle's writer id, recorded with its publishes: what
    /// [`Snapshot::writer`] and [`RegionInfo::last_writer`] show.
    pub fn writer_id(&self) -> WriterId {
        self.inner.id
    }

    /// The current generation (one atomic load).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// What the region's header says now: its path, capacity, generation
    /// and last writer, whether it is persistent, who is attached.
    pub fn info(&self) -> RegionInfo {
        self.inner.info()
    }

    /// Publish `content` as the region's whole new content.
    ///
    /// Readers see either the previous content or this one, never a mix.
    /// Takes the cross-process lock for the copy.
    ///
    /// A content longer than the capacity and at most the maximum
    /// capacity grows the region first (see [`Builder::max_capacity`]).
    ///
    /// # Errors
    /// [`Error::TooLarge`] past the maximum capacity (nothing written),
    /// [`Error::OutOfSpace`] when the system cannot back a growth (nothing
    /// written, the region as it was), [`Error::Timeout`] when the
    /// lock stays held past the lock timeout, [`Error::WouldDeadlock`].
    pub fn write(&self, content: &[u8]) -> Result<Published> {
        self.inner.check_fits(content.len())?;
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
        self.inner.check_fits(content.len())?;
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
                changed: false,
                owner_died,
            });
        }
        let published = guard.publish(&content)?;
        Ok(Updated {
            value,
            generation: published.generation,
            changed: true,
            owner_died,
        })
    }

    /// Read the published content. Lock-free: readers never block a
    /// writer, nor each other.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when the header holds an impossible length;
    /// [`Error::Timeout`] only if writers keep the content moving so fast
    /// that the reader falls back to the lock and cannot get it.
    pub fn read(&self) -> Result<Snapshot> {
        let mut content = Vec::new();
        Ok(self.read_into(&mut content)?.with(content))
    }

    /// Read the published content into `buf` and return its length,
    /// generation and writer; allocates nothing once `buf` has room.
    ///
    /// `buf` is a `Vec<u8>`, cleared and filled with the content, or a
    /// `[u8]` slice, whose first [`Stamp::len`] bytes receive it.
    ///
    /// ```
    /// # fn main() -> filemap::Result<()> {
    /// # let name = format!("doc-read-into-{}", std::process::id());
    /// let map = filemap::FileMap::open(&name)?;
    /// map.write(b"twelve bytes")?;
    /// let mut buf = [0u8; 64];
    /// let stamp = map.read_into(&mut buf[..])?;
    /// assert_eq!(&buf[..stamp.len], b"twelve bytes");
    ///
    /// let short = map.read_into(&mut buf[..4]).unwrap_err();
    /// assert!(matches!(short, filemap::Error::BufferTooSmall { needed: 12, len: 4, .. }));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] with the length needed when a slice is
    /// shorter than the content (nothing copied); otherwise as
    /// [`FileMap::read`].
    #[inline]
    pub fn read_into<B: ReadBuffer + ?Sized>(&self, buf: &mut B) -> Result<Stamp> {
        self.inner.read(buf)
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
            inner: &self.inner,
            owner_died,
            _not_send: PhantomData,
        })
    }

    /// Take the cross-process lock with a guard that owns its share of the
    /// handle instead of borrowing it, for callers that keep the guard in
    /// a structure of their own (language bindings, state machines). It
    /// reads and publishes as [`Guard`] does.
    ///
    /// The lock still belongs to the thread that took it: the guard may
    /// move, but its methods called from another thread return
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

    /// Wait until the generation differs from `seen` and return the new
    /// one. `wait` says how: sleeping, spinning or adaptively, until when,
    /// and which [`CancelToken`](crate::CancelToken) may end it.
    ///
    /// ```
    /// # fn main() -> filemap::Result<()> {
    /// # let name = format!("doc-wait-{}", std::process::id());
    /// use std::time::Duration;
    /// use filemap::{ErrorKind, FileMap, Wait};
    ///
    /// let map = FileMap::open(&name)?;
    /// let seen = map.generation();
    /// let quiet = map.wait_change(seen, Wait::sleep().timeout(Duration::from_millis(10)));
    /// assert_eq!(quiet.unwrap_err().kind(), ErrorKind::Timeout);
    ///
    /// map.write(b"news")?;
    /// assert_eq!(map.wait_change(seen, Wait::adaptive())?, seen + 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Timeout`] at the deadline, [`Error::Cancelled`] once the
    /// token is cancelled, and at once [`Error::ForkedHandle`] or
    /// [`Error::Truncated`] on a handle that can no longer be used (also
    /// when it becomes so during the wait).
    pub fn wait_change(&self, seen: u64, wait: Wait<'_>) -> Result<u64> {
        wait::wait_change(&self.inner, seen, wait)
    }

    /// Call `callback` from a background thread with every change published
    /// by another handle (in this or another process), skipping this
    /// handle's own writes. Bursts are coalesced: the callback may skip
    /// intermediate generations but always gets the latest content. The
    /// thread waits as [`Strategy::Adaptive`](crate::Strategy::Adaptive)
    /// does: promptly when changes come fast, at no CPU cost when they come
    /// rarely. Dropping the returned [`Watcher`] stops the thread. The
    /// watcher keeps the region attached (and so alive) until it is
    /// dropped, even after every `FileMap` handle is gone.
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

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// What both guards do while the lock is held.
fn read_locked(inner: &Inner) -> Result<Snapshot> {
    let mut content = Vec::new();
    Ok(inner.read_locked(&mut content)?.with(content))
}

fn publish_locked(inner: &Inner, content: &[u8], owner_died: bool) -> Result<Published> {
    inner.check_fits(content.len())?;
    Ok(Published {
        generation: inner.publish_locked(content)?,
        owner_died,
    })
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
    inner: &'a Inner,
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
        read_locked(self.inner)
    }

    /// The published content into `buf`; see [`FileMap::read_into`].
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::Corrupted`].
    pub fn read_into<B: ReadBuffer + ?Sized>(&self, buf: &mut B) -> Result<Stamp> {
        self.inner.read_locked(buf)
    }

    /// Publish `content`; the lock stays held.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (nothing written).
    pub fn publish(&mut self, content: &[u8]) -> Result<Published> {
        publish_locked(self.inner, content, self.owner_died)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // A handle that became unusable meanwhile has nothing to release.
        let _ = self.inner.unlock();
    }
}

/// Holds the region lock, owning its share of the handle; see
/// [`FileMap::lock_owned`]. Released by [`OwnedGuard::unlock`] or on drop.
///
/// It reads and publishes as [`Guard`] does. The guard is `Send` so that
/// it can live in any structure, but the lock belongs to the thread that
/// took it: used from another thread, every method returns
/// [`Error::WrongThread`] and the lock stays held. Dropped on another
/// thread, it is released there on Linux (the lock word names the thread,
/// which any thread of the process can clear); on Windows the kernel mutex
/// can only be released by its owner thread, so it stays held until that
/// thread ends, and the next taker is then told `owner_died`.
///
/// ```
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-owned-{}", std::process::id());
/// let map = filemap::FileMap::open(&name)?;
/// let mut guard = map.lock_owned()?; // no borrow of `map`: it can be stored
/// guard.publish(b"under the lock")?;
/// guard.unlock()?;
/// # Ok(()) }
/// ```
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
        read_locked(&self.inner)
    }

    /// The published content into `buf`; see [`FileMap::read_into`].
    ///
    /// # Errors
    /// [`Error::WrongThread`], [`Error::NotLocked`],
    /// [`Error::BufferTooSmall`], [`Error::Corrupted`].
    pub fn read_into<B: ReadBuffer + ?Sized>(&self, buf: &mut B) -> Result<Stamp> {
        self.check()?;
        self.inner.read_locked(buf)
    }

    /// Publish `content`; the lock stays held.
    ///
    /// # Errors
    /// [`Error::WrongThread`], [`Error::NotLocked`], [`Error::TooLarge`]
    /// (nothing written), [`Error::ForkedHandle`].
    pub fn publish(&mut self, content: &[u8]) -> Result<Published> {
        self.check()?;
        publish_locked(&self.inner, content, self.owner_died)
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
