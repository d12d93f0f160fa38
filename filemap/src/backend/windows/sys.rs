//! Windows backend: named paging-file sections (`CreateFileMappingW`),
//! named mutexes for the region lock, one named semaphore per attach-table
//! slot for change notification, `OpenProcess` for process liveness.
//!
//! Every function names the Win32 call it wraps. Kernel objects are named
//! `Local\filemap.<name>` (or `Global\...`), with the suffixes `.lock` (the
//! mutex) and `.wake.<pid>.<slot>` (a waiter's semaphore). The design, and
//! why it differs from Linux, is written up in `docs/platforms.md`.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::attach::{Liveness, Process};
use crate::backend::seam::{ErrorClass, Host, Map};
use crate::layout::{self, Header, HEADER_SIZE};
use crate::protocol::Reach;
use windows_sys::Win32::Foundation::{
    ERROR_ALREADY_EXISTS, ERROR_CANT_ACCESS_FILE, ERROR_COMMITMENT_LIMIT, ERROR_DISK_FULL,
    ERROR_HANDLE_DISK_FULL, ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY,
    FILETIME, HANDLE, INVALID_HANDLE_VALUE, STILL_ACTIVE, WAIT_ABANDONED, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_OPEN_REPARSE_POINT,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualAlloc,
    VirtualQuery, FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION,
    MEMORY_MAPPED_VIEW_ADDRESS, MEM_COMMIT, MEM_FREE, PAGE_READONLY, PAGE_READWRITE, SEC_COMMIT,
    SEC_RESERVE,
};
use windows_sys::Win32::System::Threading::{
    CreateMutexW, CreateSemaphoreW, GetCurrentProcess, GetCurrentProcessId, GetCurrentThreadId,
    GetExitCodeProcess, GetProcessTimes, OpenProcess, OpenSemaphoreW, ReleaseMutex,
    ReleaseSemaphore, WaitForSingleObject, INFINITE, PROCESS_QUERY_LIMITED_INFORMATION,
    SEMAPHORE_MODIFY_STATE, SYNCHRONIZATION_SYNCHRONIZE,
};

/// Kernel-object namespace prefix: `Global\` (visible to every session)
/// or `Local\` (this session only, the default).
pub fn namespace(global: bool) -> &'static str {
    if global {
        "Global\\"
    } else {
        "Local\\"
    }
}

/// NUL-terminated UTF-16 for a Win32 `W` call.
fn wide(text: &OsStr) -> Vec<u16> {
    text.encode_wide().chain(Some(0)).collect()
}

/// Own `handle`, or the thread's last error if it is null/invalid.
fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `handle` was just returned open by a Win32 call and nothing
    // else owns it; `OwnedHandle` closes it exactly once (`CloseHandle`).
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

fn is_code(e: &io::Error, code: u32) -> bool {
    e.raw_os_error() == Some(code as i32)
}

/// Classify an OS error: `ERROR_DISK_FULL`, `ERROR_HANDLE_DISK_FULL`,
/// `ERROR_COMMITMENT_LIMIT`, `ERROR_NOT_ENOUGH_MEMORY`, `ERROR_OUTOFMEMORY`
/// are out of space; `ERROR_CANT_ACCESS_FILE` is what [`open_file`] gives
/// for a reparse point.
pub fn classify(e: &io::Error) -> ErrorClass {
    match e.raw_os_error().map(|code| code as u32) {
        Some(
            ERROR_DISK_FULL
            | ERROR_HANDLE_DISK_FULL
            | ERROR_COMMITMENT_LIMIT
            | ERROR_NOT_ENOUGH_MEMORY
            | ERROR_OUTOFMEMORY,
        ) => ErrorClass::OutOfSpace,
        Some(ERROR_CANT_ACCESS_FILE) => ErrorClass::Symlink,
        _ => ErrorClass::Other,
    }
}

/// The per-user directory holding persistent regions' files and the
/// registry of live names: `%LOCALAPPDATA%\filemap`, else the temporary
/// directory's `filemap`. Created on first use.
pub fn user_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("LOCALAPPDATA")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        base.join("filemap")
    })
    .clone()
}

/// Create `dir` (and its parents) if missing.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// A section (file mapping object), and the file behind it if any.
pub struct Fd {
    section: OwnedHandle,
    file: Option<File>,
}

impl Fd {
    /// Length of the backing file, for file-backed sections.
    pub fn file_len(&self) -> io::Result<Option<u64>> {
        self.file
            .as_ref()
            .map(|f| f.metadata().map(|m| m.len()))
            .transpose()
    }
}

/// `CreateFileMappingW`: a section of `size` bytes over `file`, or over
/// the paging file when `file` is `None`: committed now (`SEC_COMMIT`),
/// or with `reserve` only reserved (`SEC_RESERVE`: its pages get storage
/// when a view commits them, [`Mapping::commit`], and fault until then),
/// named `name` or unnamed. Returns the section and whether a section of
/// that name existed already (`ERROR_ALREADY_EXISTS`: then it is that one,
/// `size` is ignored, and `file` is dropped: the existing section may be
/// another process's paging-file section, not one over `file`, so the
/// caller must not take `file`'s length for the section's, nor skip the
/// wait for its creator). `size` 0 means "the file's size".
pub fn create_section(
    file: Option<File>,
    name: Option<&str>,
    size: u64,
    writable: bool,
    reserve: bool,
) -> io::Result<(Fd, bool)> {
    let wname = name.map(|n| wide(OsStr::new(n)));
    let raw_file = file
        .as_ref()
        .map_or(INVALID_HANDLE_VALUE, |f| f.as_raw_handle() as HANDLE);
    let mut protect = if writable {
        PAGE_READWRITE
    } else {
        PAGE_READONLY
    };
    if file.is_none() {
        protect |= if reserve { SEC_RESERVE } else { SEC_COMMIT };
    }
    // SAFETY: `raw_file` is an open file handle owned by `file` (alive for
    // the call) or INVALID_HANDLE_VALUE (paging file); the name, when
    // given, is a NUL-terminated UTF-16 string that outlives the call;
    // null security attributes mean the default (owner's) ACL.
    let raw = unsafe {
        CreateFileMappingW(
            raw_file,
            std::ptr::null(),
            protect,
            (size >> 32) as u32,
            size as u32,
            wname.as_ref().map_or(std::ptr::null(), |w| w.as_ptr()),
        )
    };
    let existed = !raw.is_null() && is_code(&io::Error::last_os_error(), ERROR_ALREADY_EXISTS);
    let section = owned(raw)?;
    let file = if existed { None } else { file };
    Ok((Fd { section, file }, existed))
}

/// `OpenFileMappingW`: the live section named `name`; `NotFound` if none.
pub fn open_section(name: &str, writable: bool) -> io::Result<Fd> {
    let access = if writable {
        FILE_MAP_READ | FILE_MAP_WRITE
    } else {
        FILE_MAP_READ
    };
    let wname = wide(OsStr::new(name));
    // SAFETY: `wname` is NUL-terminated UTF-16 and outlives the call.
    let raw = unsafe { OpenFileMappingW(access, 0, wname.as_ptr()) };
    Ok(Fd {
        section: owned(raw)?,
        file: None,
    })
}

/// `CreateFileW` an existing file (or a new one with `create_new`), shared
/// for read, write and delete, never following a symbolic link or other
/// reparse point (`FILE_FLAG_OPEN_REPARSE_POINT`, then the attributes
/// checked): a reparse point is `ERROR_CANT_ACCESS_FILE`.
pub fn open_file(path: &Path, create_new: bool, writable: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .create_new(create_new)
        .share_mode(7) // FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    if file.metadata()?.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(io::Error::from_raw_os_error(ERROR_CANT_ACCESS_FILE as i32));
    }
    Ok(file)
}

/// `DeleteFileW`. With every opener sharing delete access, the file goes
/// when its last handle closes.
pub fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

/// Create (or keep) an empty marker file at `path`: `CreateFileW`
/// `OPEN_ALWAYS`.
pub fn touch(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}

/// File names in `dir`: `FindFirstFileW`/`FindNextFileW` through `std::fs`.
pub fn list_dir(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    Ok(names)
}

/// Text for a raw name read from a directory.
pub fn name_to_string(name: OsString) -> Option<String> {
    name.into_string().ok()
}

pub(crate) use crate::backend::seam::hash_name;

/// A view of a whole section, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// For a view of a reserved section with pages not yet committed
    /// (`SEC_RESERVE`, a region that can grow): how many bytes of each
    /// buffer this view knows to be committed, from their start. `None`
    /// when every page of the view was committed when it was mapped (a
    /// section committed whole, over a file, or reserved and grown to its
    /// maximum): committed pages of a section stay so while it lives.
    ready: Option<AtomicUsize>,
}

// SAFETY: the view is plain memory owned by this value; all access to its
// contents goes through atomics or raw copies whose callers uphold their
// own synchronisation, so moving or sharing the owner across threads is
// sound.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` only exposes the base pointer, the
// length and an atomic counter, and commits pages (a system call).
unsafe impl Sync for Mapping {}

/// `VirtualQuery` at `at`: the run of pages of one state there, or `None`
/// past the last allocation.
fn query(at: *const u8) -> Option<MEMORY_BASIC_INFORMATION> {
    // SAFETY: an all-zero MEMORY_BASIC_INFORMATION is a valid value of
    // that plain C struct.
    let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a writable buffer of exactly the size passed;
    // VirtualQuery reads no memory at `at`, whatever the address.
    let got = unsafe {
        VirtualQuery(
            at.cast(),
            &mut info,
            std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    (got != 0).then_some(info)
}

impl Mapping {
    /// Map the whole section: `MapViewOfFile`, its length measured with
    /// `VirtualQuery` (the runs of pages whose allocation is the view: the
    /// section's size rounded up to whole pages). A view of a reserved
    /// section may find its header's page not committed yet (its creator
    /// commits it before writing the header): it is committed here, so
    /// that the header is always safe to read.
    pub fn new(fd: &Fd, writable: bool) -> io::Result<Mapping> {
        let access = if writable {
            FILE_MAP_READ | FILE_MAP_WRITE
        } else {
            FILE_MAP_READ
        };
        // SAFETY: the section handle is open (owned by `fd`); length 0
        // maps the whole section at an address the system chooses, so no
        // existing memory is replaced.
        let view = unsafe { MapViewOfFile(fd.section.as_raw_handle() as HANDLE, access, 0, 0, 0) };
        let ptr = NonNull::new(view.Value.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        // From here on `Mapping`'s drop unmaps the view, also on error.
        let mut map = Mapping {
            ptr,
            len: 0,
            ready: None,
        };
        let base = map.ptr.as_ptr();
        let mut header_reserved = false;
        let mut reserved = false;
        // A view is one allocation: runs of committed and reserved pages
        // whose allocation base is the view's, up to the next allocation
        // or free pages.
        while let Some(info) = query(base.wrapping_add(map.len)) {
            if info.AllocationBase != base.cast() || info.State == MEM_FREE || info.RegionSize == 0
            {
                break;
            }
            if info.State != MEM_COMMIT {
                reserved = true;
                header_reserved |= map.len == 0;
            }
            map.len += info.RegionSize;
        }
        if map.len == 0 {
            return Err(io::Error::last_os_error());
        }
        // Views are whole pages, so never shorter than a header; checked
        // all the same, because [`Mapping::header`] relies on it.
        if map.len < HEADER_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a view shorter than a filemap header",
            ));
        }
        if reserved {
            map.ready = Some(AtomicUsize::new(0));
        }
        if header_reserved {
            let protect = if writable {
                PAGE_READWRITE
            } else {
                PAGE_READONLY
            };
            map.commit_pages(0, HEADER_SIZE, protect)?;
        }
        Ok(map)
    }

    /// `VirtualAlloc(MEM_COMMIT)` the pages holding bytes `offset ..
    /// offset + len` of the view (`protect`: the view's access). Pages
    /// committed already are left as they are; through one view, the
    /// commit is the section's: every view of it, in every process, has
    /// the pages (and their bytes) from then on.
    fn commit_pages(&self, offset: usize, len: usize, protect: u32) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a commit past the end of the view",
            ));
        }
        // SAFETY: the range lies inside this view (checked above), which
        // stays mapped while `self` lives; committing pages of a view
        // changes no byte another access may hold (committed pages keep
        // their contents, new ones read as zeros).
        let got = unsafe {
            VirtualAlloc(
                self.ptr.as_ptr().wrapping_add(offset).cast_const().cast(),
                len,
                MEM_COMMIT,
                protect,
            )
        };
        if got.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Give bytes `offset .. offset + len` of a writable view storage:
    /// commit their pages, if the section is reserved (a growing region).
    /// A commit the system cannot charge is `ERROR_COMMITMENT_LIMIT` (or
    /// `ERROR_NOT_ENOUGH_MEMORY`): [`classify`] calls it out of space.
    pub fn commit(&self, offset: usize, len: usize) -> io::Result<()> {
        if self.ready.is_none() {
            return Ok(());
        }
        self.commit_pages(offset, len, PAGE_READWRITE)
    }

    /// Commit the first `len` bytes of both buffers of the region mapped
    /// here (maximum capacity `max_capacity`), from what this view knows
    /// committed, and remember them committed.
    pub fn commit_buffers(&self, max_capacity: usize, len: usize) -> io::Result<()> {
        let Some(ready) = &self.ready else {
            return Ok(());
        };
        let from = ready.load(Acquire);
        if len <= from {
            return Ok(());
        }
        for index in 0..2 {
            self.commit(
                layout::buffer_offset(max_capacity, index) + from,
                len - from,
            )?;
        }
        ready.fetch_max(len, AcqRel);
        Ok(())
    }

    /// The start of the view.
    pub fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The header at the start of the view.
    pub fn header(&self) -> &Header {
        // SAFETY: `new` refused views shorter than a header and made sure
        // the header's page is committed, and views start at the 64 KiB
        // allocation granularity (alignment enough for `Header`); the
        // reference borrows `self`, so it cannot outlive the view.
        unsafe { Header::at(self.ptr) }
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// A reader's or writer's way past what its view knows committed: commit
/// the pages (see [`Mapping::commit_buffers`]). Honest lengths name pages
/// a writer committed before publishing them, so this costs nothing new;
/// a length scribbled past them gets its pages committed (zeros), as a
/// growth to it would, or `false` when the system has no commit left.
impl Reach for Mapping {
    fn reach(&self, max_capacity: usize, len: usize) -> bool {
        self.commit_buffers(max_capacity, len).is_ok()
    }
}

impl Map for Mapping {
    fn base(&self) -> NonNull<u8> {
        Mapping::base(self)
    }

    fn header(&self) -> &Header {
        Mapping::header(self)
    }

    fn reach(&self) -> Option<(usize, &dyn Reach)> {
        let ready = self.ready.as_ref()?;
        Some((ready.load(Acquire), self))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the base address `MapViewOfFile` returned, and
        // this is the only unmap: `Mapping` is not `Clone`.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                Value: self.ptr.as_ptr().cast(),
            });
        }
    }
}

/// Milliseconds for a Win32 wait, below `INFINITE`.
fn millis(timeout: Duration) -> u32 {
    timeout.as_millis().min(u128::from(INFINITE - 1)) as u32
}

/// The region's named mutex (`Local\filemap.<name>.lock`).
pub struct NamedMutex {
    handle: OwnedHandle,
    key: u64,
}

/// Outcome of waiting for a [`NamedMutex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutexWait {
    Acquired,
    /// Acquired; the previous owner ended without releasing it.
    Abandoned,
    TimedOut,
    /// `WAIT_FAILED` (or an unexpected result): the thread's last error.
    Failed(i32),
}

/// `CreateMutexW`: create or open the mutex named `name`, not owned.
pub fn create_mutex(name: &str) -> io::Result<NamedMutex> {
    let wname = wide(OsStr::new(name));
    // SAFETY: `wname` is NUL-terminated UTF-16 and outlives the call; null
    // security attributes mean the default ACL.
    let raw = unsafe { CreateMutexW(std::ptr::null(), 0, wname.as_ptr()) };
    Ok(NamedMutex {
        handle: owned(raw)?,
        key: hash_name(name),
    })
}

impl NamedMutex {
    /// Identifies the mutex's name (the same for every handle to it).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// `WaitForSingleObject` for at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> MutexWait {
        // SAFETY: the handle is open (owned by `self`).
        match unsafe { WaitForSingleObject(self.handle.as_raw_handle() as HANDLE, millis(timeout)) }
        {
            WAIT_OBJECT_0 => MutexWait::Acquired,
            WAIT_ABANDONED => MutexWait::Abandoned,
            WAIT_TIMEOUT => MutexWait::TimedOut,
            _ => MutexWait::Failed(io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        }
    }

    /// `ReleaseMutex`; `false` if this thread did not own it.
    pub fn release(&self) -> bool {
        // SAFETY: the handle is open (owned by `self`).
        unsafe { ReleaseMutex(self.handle.as_raw_handle() as HANDLE) != 0 }
    }
}

/// Most counts a wake semaphore holds: one, so it acts as an auto-reset
/// event. A post that finds it full (`ERROR_TOO_MANY_POSTS`) is dropped:
/// the count already there wakes the next sleeper all the same. Surplus
/// posts (for a waiter that had timed out, from scribbled waiter counts,
/// from repeated interrupts) so leave at most one spurious wake-up behind,
/// never a backlog that a later waiter would spin through.
const SEMAPHORE_MAX: i32 = 1;

struct Semaphore(OwnedHandle);

impl Semaphore {
    /// `CreateSemaphoreW`: create or open, count 0.
    fn create(name: &str) -> io::Result<Semaphore> {
        let wname = wide(OsStr::new(name));
        // SAFETY: `wname` is NUL-terminated UTF-16 and outlives the call.
        let raw = unsafe { CreateSemaphoreW(std::ptr::null(), 0, SEMAPHORE_MAX, wname.as_ptr()) };
        owned(raw).map(Semaphore)
    }

    /// `OpenSemaphoreW` with the right to post.
    fn open(name: &str) -> io::Result<Semaphore> {
        let wname = wide(OsStr::new(name));
        // SAFETY: `wname` is NUL-terminated UTF-16 and outlives the call.
        let raw = unsafe {
            OpenSemaphoreW(
                SEMAPHORE_MODIFY_STATE | SYNCHRONIZATION_SYNCHRONIZE,
                0,
                wname.as_ptr(),
            )
        };
        owned(raw).map(Semaphore)
    }

    /// `ReleaseSemaphore` by one (a no-op when the count is already 1).
    fn post(&self) {
        // SAFETY: the handle is open; a null previous-count pointer is allowed.
        unsafe {
            ReleaseSemaphore(self.0.as_raw_handle() as HANDLE, 1, std::ptr::null_mut());
        }
    }

    /// `WaitForSingleObject` for at most `timeout`.
    fn wait(&self, timeout: Duration) {
        // SAFETY: the handle is open (owned by `self`).
        unsafe {
            WaitForSingleObject(self.0.as_raw_handle() as HANDLE, millis(timeout));
        }
    }
}

/// The threads of one handle that sleep. Only one of them, the leader,
/// waits on the handle's semaphore; the others wait on [`Wakers::woken`]
/// until the leader comes back, which bumps `epoch`. So one count taken
/// from the semaphore wakes every sleeper of the handle. (With every
/// thread waiting on the semaphore itself, a thread that began to wait
/// after a publish, for the generation after it, could take the count
/// posted for a thread that waited before the publish, which then slept
/// on to the end of its slice.)
struct Sleepers {
    leader: bool,
    epoch: u64,
}

/// One handle's notification objects: its own slot's semaphore (made on
/// first wait) and the peers' semaphores it posts to (opened on first
/// post, cached per slot and pid).
pub struct Wakers {
    /// `Local\filemap.<name>.wake.`
    prefix: String,
    own_slot: usize,
    own: OnceLock<Semaphore>,
    sleepers: Mutex<Sleepers>,
    woken: Condvar,
    peers: Mutex<Vec<Option<(u32, Semaphore)>>>,
}

impl Wakers {
    pub fn new(prefix: String, own_slot: usize, slots: usize) -> Wakers {
        Wakers {
            prefix,
            own_slot,
            own: OnceLock::new(),
            sleepers: Mutex::new(Sleepers {
                leader: false,
                epoch: 0,
            }),
            woken: Condvar::new(),
            peers: Mutex::new((0..slots).map(|_| None).collect()),
        }
    }

    /// This handle's semaphore, made on first use. A failure is not
    /// remembered: the next wait tries again, rather than the handle
    /// polling for the rest of its life after one transient error.
    fn own(&self) -> Option<&Semaphore> {
        if let Some(sem) = self.own.get() {
            return Some(sem);
        }
        let made =
            Semaphore::create(&format!("{}{}.{}", self.prefix, pid(), self.own_slot)).ok()?;
        // Another thread may have set it first: the same named object.
        Some(self.own.get_or_init(|| made))
    }

    fn sleepers(&self) -> std::sync::MutexGuard<'_, Sleepers> {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make sure this handle's semaphore exists, so a publisher that sees
    /// our waiter count can open it. `false` if it cannot be made.
    pub fn prepare(&self) -> bool {
        self.own().is_some()
    }

    /// The token for [`Wakers::sleep`]: take it after counting the thread
    /// as a waiter and before re-checking the generation.
    pub fn token(&self) -> u64 {
        self.sleepers().epoch
    }

    /// Sleep for at most `timeout` until a count is taken from this
    /// handle's semaphore (by this thread or the handle's leader); at once
    /// if one was taken since `token` was.
    pub fn sleep(&self, token: u64, timeout: Duration) {
        let Some(sem) = self.own() else {
            std::thread::sleep(timeout);
            return;
        };
        let mut sleepers = self.sleepers();
        if sleepers.epoch != token {
            return;
        }
        if sleepers.leader {
            let _ = self
                .woken
                .wait_timeout_while(sleepers, timeout, |s| s.epoch == token);
            return;
        }
        sleepers.leader = true;
        drop(sleepers);
        sem.wait(timeout);
        // Also after a timeout: the followers must not sleep on with no
        // leader on the semaphore; one of them takes over.
        let mut sleepers = self.sleepers();
        sleepers.leader = false;
        sleepers.epoch = sleepers.epoch.wrapping_add(1);
        drop(sleepers);
        self.woken.notify_all();
    }

    /// Post this handle's own semaphore (cut its sleepers' sleep short).
    pub fn interrupt(&self) {
        if let Some(sem) = self.own() {
            sem.post();
        }
    }

    /// Post the semaphore of slot `slot`, owned by process `pid`.
    pub fn wake(&self, slot: usize, pid: u32) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = peers.get_mut(slot) else {
            return;
        };
        if entry.as_ref().is_none_or(|(cached, _)| *cached != pid) {
            *entry = Semaphore::open(&format!("{}{pid}.{slot}", self.prefix))
                .ok()
                .map(|sem| (pid, sem));
        }
        if let Some((_, sem)) = entry {
            sem.post();
        }
    }
}

/// The Windows process facts, the Windows backend's
/// [`Backend::Host`](crate::backend::seam::Backend::Host).
pub(crate) enum Windows {}

impl Process for Windows {
    fn pid() -> u32 {
        pid()
    }

    fn own_start_time() -> u64 {
        own_start_time()
    }

    fn liveness(pid: u32) -> Liveness {
        liveness(pid)
    }
}

impl Host for Windows {
    /// Windows has no `fork`: a handle is always used in the process that
    /// opened it.
    #[inline]
    fn fork_epoch() -> u32 {
        0
    }

    fn classify(e: &io::Error) -> ErrorClass {
        classify(e)
    }
}

/// This process's id: `GetCurrentProcessId`.
pub fn pid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { GetCurrentProcessId() }
}

/// This thread's id: `GetCurrentThreadId`.
pub fn tid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { GetCurrentThreadId() }
}

/// Creation time (FILETIME, 100 ns units since 1601) of the process behind
/// `process`: `GetProcessTimes`.
fn creation_time(process: HANDLE) -> Option<u64> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: `process` is an open process handle with query rights; the
    // four out-pointers are valid FILETIMEs.
    let ok = unsafe { GetProcessTimes(process, &mut created, &mut exited, &mut kernel, &mut user) };
    (ok != 0).then(|| u64::from(created.dwHighDateTime) << 32 | u64::from(created.dwLowDateTime))
}

/// This process's creation time; 0 if unknown.
pub fn own_start_time() -> u64 {
    static CACHE: OnceLock<u64> = OnceLock::new();
    // SAFETY: `GetCurrentProcess` returns a pseudo-handle valid in this
    // process, with every right.
    *CACHE.get_or_init(|| creation_time(unsafe { GetCurrentProcess() }).unwrap_or(0))
}

/// Whether process `id` runs: `OpenProcess` (`ERROR_INVALID_PARAMETER`
/// means no such process), `GetExitCodeProcess` (`STILL_ACTIVE`) and
/// `GetProcessTimes` for its creation time.
pub fn liveness(id: u32) -> Liveness {
    if id == 0 || id == u32::MAX {
        return Liveness::Dead;
    }
    // SAFETY: no pointer arguments; the handle returned is owned below.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, id) };
    let process = match owned(raw) {
        Ok(process) => process,
        Err(e) if is_code(&e, ERROR_INVALID_PARAMETER) => return Liveness::Dead,
        Err(_) => return Liveness::Unknown,
    };
    let raw = process.as_raw_handle() as HANDLE;
    let mut code = 0u32;
    // SAFETY: `raw` is open with query rights; `code` is a valid out-pointer.
    if unsafe { GetExitCodeProcess(raw, &mut code) } == 0 {
        return Liveness::Unknown;
    }
    if code != STILL_ACTIVE as u32 {
        // A process that exits with status 259 looks alive here, as on
        // Windows itself; its creation time still tells it apart below.
        return Liveness::Dead;
    }
    match creation_time(raw) {
        Some(start_time) => Liveness::Alive { start_time },
        None => Liveness::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view of a reserved section (a growing region's) whose creator has
    /// not committed anything yet has its header's page committed before
    /// anyone reads the header (reading a reserved page is an access
    /// violation), read-only views too; the rest stays reserved.
    #[test]
    fn a_view_of_a_reserved_section_gets_its_header_page_committed() {
        let size = 3 << 16;
        let (fd, _) = create_section(None, None, size as u64, true, true).unwrap();
        for writable in [false, true] {
            let map = Mapping::new(&fd, writable).unwrap();
            assert_eq!(map.len(), size);
            let header = query(map.base().as_ptr()).unwrap();
            assert_eq!(
                (header.State, header.RegionSize),
                (MEM_COMMIT, HEADER_SIZE),
                "writable: {writable}"
            );
            assert!(map.ready.is_some(), "the rest is reserved");
            assert_eq!(map.header().magic.load(Acquire), 0);
        }
    }

    #[test]
    fn own_process_is_alive_with_its_start_time() {
        assert!(own_start_time() > 0);
        assert_eq!(
            liveness(pid()),
            Liveness::Alive {
                start_time: own_start_time()
            }
        );
        assert_eq!(liveness(0), Liveness::Dead);
    }

    /// Object names of file-backed regions are shared by every process:
    /// the hash must be the published FNV-1a, not a toolchain's choice.
    #[test]
    fn path_hashes_are_fnv1a_and_stable() {
        assert_eq!(hash_name(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash_name("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash_name("foobar"), 0x8594_4171_f739_67e8);
    }

    /// Names of `MAX_PATH` less the NUL (259 characters), the length
    /// `MAX_NAME_LEN` is made for.
    #[test]
    fn the_longest_object_names_are_accepted() {
        let name = "n".repeat(259 - "Global\\filemap.".len() - ".wake.4294967295.127".len());
        let longest = format!("Global\\filemap.{name}.wake.4294967295.127");
        assert_eq!(longest.len(), 259);
        let sem = Semaphore::create(&longest).expect("semaphore");
        sem.post();
        assert!(Semaphore::open(&longest).is_ok());
        create_mutex(&format!("Global\\filemap.{name}.lock")).expect("mutex");
        create_section(
            None,
            Some(&format!("Global\\filemap.{name}")),
            4096,
            true,
            false,
        )
        .expect("section");
    }
}
