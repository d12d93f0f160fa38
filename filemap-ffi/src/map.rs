//! The handle and its calls: open, close, write, read, wait, info.
//!
//! This module owns `fm_map`: a heap box holding a magic word, the
//! `FileMap` and the slot for a lock taken with `fm_lock`.

use std::ffi::c_char;
use std::mem::MaybeUninit;
use std::sync::Mutex;

use filemap::{Error, FileMap, OwnedGuard, Stamp, WriterId};

use crate::args::{self, Tagged};
use crate::status::{boundary, Fail, FfiResult, FmStatus};

/// Open only if the region does not exist yet (else `FM_E_ALREADY_EXISTS`).
pub const FM_CREATE_ONLY: u32 = 1;
/// Open only an existing region (else `FM_E_NOT_FOUND`).
pub const FM_OPEN_ONLY: u32 = 2;
/// When creating: the region outlives its last handle (removed only by
/// `fm_remove`).
pub const FM_PERSISTENT: u32 = 4;
const ALL_FLAGS: u32 = FM_CREATE_ONLY | FM_OPEN_ONLY | FM_PERSISTENT;

/// The version of this C ABI (`fm_abi_version`). Bumped when a signature
/// or a struct changes incompatibly; new functions and status codes do not.
pub const FM_ABI_VERSION: u32 = 2;
/// The default capacity in bytes (`capacity` 0 in `fm_open`).
pub const FM_DEFAULT_CAPACITY: u64 = 4096;
/// The smallest capacity in bytes.
pub const FM_MIN_CAPACITY: u64 = 32;
/// The largest capacity in bytes (1 GiB).
pub const FM_MAX_CAPACITY: u64 = 1 << 30;
// Literals, so cbindgen can write them as numbers; held to the library's.
const _: () = assert!(FM_DEFAULT_CAPACITY == filemap::DEFAULT_CAPACITY as u64);
const _: () = assert!(FM_MIN_CAPACITY == filemap::MIN_CAPACITY as u64);
const _: () = assert!(FM_MAX_CAPACITY == filemap::MAX_CAPACITY as u64);

/// An open region; opaque to C. Made by `fm_open` or `fm_open_ex`, freed by `fm_close`.
#[repr(C)]
pub struct FmMap {
    magic: u64,
    pub(crate) map: FileMap,
    /// The lock taken by `fm_lock` through this handle, until `fm_unlock`.
    pub(crate) lock: Mutex<Option<OwnedGuard>>,
}

impl Tagged for FmMap {
    const MAGIC: u64 = u64::from_le_bytes(*b"fm_map\x01\x00");
    const WHAT: &'static str = "map";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// Who published a generation.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FmWriter {
    /// Process id (0 when nobody has written yet).
    pub pid: u32,
    /// Number of the writing handle inside that process.
    pub handle: u32,
}

impl From<WriterId> for FmWriter {
    fn from(w: WriterId) -> FmWriter {
        FmWriter {
            pid: w.pid,
            handle: w.handle,
        }
    }
}

/// A generation and who published it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FmStamp {
    /// The generation: 0 for a new region, bumped by every publish.
    pub generation: u64,
    /// Who published it.
    pub writer: FmWriter,
}

impl From<Stamp> for FmStamp {
    fn from(s: Stamp) -> FmStamp {
        FmStamp {
            generation: s.generation,
            writer: s.writer.into(),
        }
    }
}

/// A region's header, from `fm_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FmInfo {
    /// Capacity in bytes now (see `fm_capacity`; `fm_max_capacity` gives
    /// the most it may grow to).
    pub capacity: u64,
    /// Length of the published content in bytes.
    pub len: u64,
    /// Current generation.
    pub generation: u64,
    /// Who published the current generation.
    pub last_writer: FmWriter,
    /// Live processes attached.
    pub attached: u32,
    /// Whether the region outlives its last handle.
    pub persistent: bool,
    /// Non-persistent and nobody attached (its users died without closing).
    pub stale: bool,
}

/// The version of the C ABI this library implements (`FM_ABI_VERSION`).
/// A program built against another major version should refuse to run.
#[no_mangle]
pub extern "C" fn fm_abi_version() -> u32 {
    FM_ABI_VERSION
}

/// Open region `name`, creating it when it does not exist (unless
/// `FM_OPEN_ONLY`).
///
/// - `name`: NUL-terminated UTF-8, at most `fm_max_name_len()` bytes, no `/`,
///   `\` or control characters. At most `fm_max_name_len() + 1` bytes
///   are read: a longer or unterminated string gives `FM_E_INVALID_NAME`.
/// - `capacity`: bytes of content when creating; 0 means
///   `FM_DEFAULT_CAPACITY` (4096). Ignored when attaching to an existing
///   region.
/// - `flags`: 0 or `FM_CREATE_ONLY` / `FM_OPEN_ONLY` (not both), with
///   `FM_PERSISTENT`. Other bits give `FM_E_INVALID_ARGUMENT`.
/// - `out`: receives the handle, which the caller owns and frees with
///   `fm_close`. Untouched on failure.
///
/// A region created here never grows (its maximum capacity is its
/// capacity); `fm_open_ex` creates one that does. Attaching, the handle
/// sees the region as it is, grown or growing.
///
/// A handle may be used from any thread. A handle inherited through
/// fork() is refused with `FM_E_FORKED_HANDLE` in the child: open the
/// region again there.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`,
/// `FM_E_INVALID_NAME`, `FM_E_INVALID_CAPACITY`, `FM_E_NOT_FOUND`,
/// `FM_E_ALREADY_EXISTS`, `FM_E_PERMISSION_DENIED`, `FM_E_OUT_OF_SPACE`,
/// `FM_E_INCOMPATIBLE_VERSION`, `FM_E_NOT_A_REGION`, `FM_E_TIMEOUT`,
/// `FM_E_IO`...
///
/// # Safety
/// `name` is NULL or a string readable as described; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fm_open(
    name: *const c_char,
    capacity: u64,
    flags: u32,
    out: *mut *mut FmMap,
) -> FmStatus {
    boundary(|| {
        if out.is_null() {
            return Err(Fail::Null("out"));
        }
        // SAFETY: as this function's contract.
        let name = unsafe { args::name(name) }?;
        let options = FmOpenOptions {
            size: FM_OPEN_OPTIONS_SIZE,
            flags,
            capacity,
            max_capacity: 0,
        };
        let handle = open(name, &options)?;
        // SAFETY: `out` is not NULL (checked) and writable (contract).
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// How `fm_open_ex` opens a region. Zero it, set `size` to
/// `sizeof(fm_open_options)`, then the fields wanted; a field left 0 takes
/// its default:
///
/// ```c
/// fm_open_options options = {
///     .size = sizeof options,
///     .capacity = 4096,
///     .max_capacity = 1 << 20,
/// };
/// ```
///
/// (4 KiB now, growing up to 1 MiB.)
///
/// Fields may be added at the end in later versions (the ABI version
/// stays): `size` tells the library which ones the caller knows, so a
/// program built against this header keeps working with a later library,
/// and one built against a later header works with this library as long
/// as it leaves the fields this library does not know at 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FmOpenOptions {
    /// `sizeof(fm_open_options)`, as the caller's header has it: the bytes
    /// the library reads. Less than `FM_OPEN_OPTIONS_SIZE` (the first
    /// version's size, 24) gives `FM_E_INVALID_ARGUMENT`, and so does more
    /// than 4096 (garbage, not a version of this struct).
    pub size: u32,
    /// As `fm_open`'s `flags`.
    pub flags: u32,
    /// As `fm_open`'s `capacity`: bytes of content when creating, 0 for
    /// `FM_DEFAULT_CAPACITY`. Ignored when attaching.
    pub capacity: u64,
    /// The most the region may grow to, in bytes, when creating: between
    /// the capacity and `FM_MAX_CAPACITY`, else `FM_E_INVALID_CAPACITY`
    /// (`fm_error_info`: `len` the requested maximum, `min` the capacity,
    /// `max` `FM_MAX_CAPACITY`). 0: the capacity (the region never grows).
    /// Ignored when attaching: the region's own maximum holds
    /// (`fm_max_capacity`).
    pub max_capacity: u64,
}

/// The size of the first version of `fm_open_options` (this one): the
/// least `size` accepted.
pub const FM_OPEN_OPTIONS_SIZE: u32 = 24;
const _: () = assert!(FM_OPEN_OPTIONS_SIZE as usize == std::mem::size_of::<FmOpenOptions>());
/// A `size` past this is garbage, not a later version of the options.
const OPTIONS_SIZE_LIMIT: u32 = 4096;

/// Open region `name` as `fm_open` does, with the choices in `*options`:
/// `fm_open_options` says each, among them `max_capacity`, the most a
/// region created here may grow to. `fm_write`, `fm_write_if` and
/// `fm_update` of more than the capacity and at most the maximum grow the
/// region first (every handle attached, in any process, sees the larger
/// content at its next read); past the maximum they give
/// `FM_E_TOO_LARGE` and keep the content.
///
/// ```c
/// fm_open_options options = {.size = sizeof options, .max_capacity = 1 << 20};
/// fm_map *map = NULL;
/// fm_status s = fm_open_ex("frames", &options, &map);
/// ```
///
/// Returns as `fm_open`; `FM_E_NULL` when `options` is NULL;
/// `FM_E_INVALID_ARGUMENT` when `options->size` is below
/// `FM_OPEN_OPTIONS_SIZE` or absurd; `FM_E_UNSUPPORTED_OPTION` when a
/// byte past the fields this library knows is not 0 (an option of a later
/// version it cannot honour; the message says which byte);
/// `FM_E_INVALID_CAPACITY` for a capacity or maximum out of range.
///
/// # Safety
/// `name` is NULL or a string readable as for `fm_open`; `options` is
/// NULL or readable for `options->size` bytes (its first 4 bytes are read
/// first); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_open_ex(
    name: *const c_char,
    options: *const FmOpenOptions,
    out: *mut *mut FmMap,
) -> FmStatus {
    boundary(|| {
        if out.is_null() {
            return Err(Fail::Null("out"));
        }
        // SAFETY: as this function's contract.
        let options = unsafe { read_options(options) }?;
        // SAFETY: as this function's contract.
        let name = unsafe { args::name(name) }?;
        let handle = open(name, &options)?;
        // SAFETY: `out` is not NULL (checked) and writable (contract).
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// The options behind `ptr`, of the size the caller says, checked.
///
/// # Safety
/// `ptr` is NULL or readable for 4 bytes, and for as many as the `u32`
/// there says.
unsafe fn read_options(ptr: *const FmOpenOptions) -> FfiResult<FmOpenOptions> {
    if ptr.is_null() {
        return Err(Fail::Null("options"));
    }
    // SAFETY: not NULL, readable for its first 4 bytes (contract); C may
    // hand any alignment, so nothing assumes one.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() };
    if size < FM_OPEN_OPTIONS_SIZE {
        return Err(Fail::Invalid(format!(
            "options.size is {size}, less than the {FM_OPEN_OPTIONS_SIZE} bytes of the first \
             fm_open_options: set it to sizeof(fm_open_options)"
        )));
    }
    if size > OPTIONS_SIZE_LIMIT {
        return Err(Fail::Invalid(format!(
            "options.size is {size}, more than any fm_open_options can be \
             ({OPTIONS_SIZE_LIMIT} bytes): set it to sizeof(fm_open_options)"
        )));
    }
    // SAFETY: readable for `size` >= size_of::<FmOpenOptions>() bytes
    // (checked above, contract); every bit pattern is a valid value of
    // its integer fields; unaligned as above.
    let options = unsafe { ptr.read_unaligned() };
    let bytes = ptr.cast::<u8>();
    for at in FM_OPEN_OPTIONS_SIZE..size {
        // SAFETY: `at` < `size`: within the bytes the caller vouched for.
        let byte = unsafe { bytes.add(at as usize).read() };
        if byte != 0 {
            return Err(Fail::LaterOption {
                size,
                at,
                message: format!(
                    "byte {at} of the options ({size} bytes) is {byte:#04x}: this library \
                     knows the first {FM_OPEN_OPTIONS_SIZE} bytes of fm_open_options and cannot \
                     honour an option of a later version"
                ),
            });
        }
    }
    Ok(options)
}

/// Make the handle `fm_open` and `fm_open_ex` store.
fn open(name: String, options: &FmOpenOptions) -> FfiResult<*mut FmMap> {
    let flags = options.flags;
    if flags & !ALL_FLAGS != 0 {
        return Err(Fail::Invalid(format!(
            "unknown flag bits {:#x}",
            flags & !ALL_FLAGS
        )));
    }
    if flags & FM_CREATE_ONLY != 0 && flags & FM_OPEN_ONLY != 0 {
        return Err(Fail::Invalid(
            "FM_CREATE_ONLY and FM_OPEN_ONLY exclude each other".into(),
        ));
    }
    let mut builder = FileMap::builder(name);
    if options.capacity != 0 {
        builder = builder.capacity(usize::try_from(options.capacity).unwrap_or(usize::MAX));
    }
    if options.max_capacity != 0 {
        builder = builder.max_capacity(usize::try_from(options.max_capacity).unwrap_or(usize::MAX));
    }
    if flags & FM_CREATE_ONLY != 0 {
        builder = builder.create_only();
    }
    if flags & FM_OPEN_ONLY != 0 {
        builder = builder.open_only();
    }
    if flags & FM_PERSISTENT != 0 {
        builder = builder.persistent(true);
    }
    let handle = Box::new(FmMap {
        magic: FmMap::MAGIC,
        map: builder.open()?,
        lock: Mutex::new(None),
    });
    Ok(Box::into_raw(handle))
}

/// Close a handle made by `fm_open` or `fm_open_ex` and free it. A lock still held through
/// it is released (on Windows only from the thread that took it: see
/// `fm_lock`). Closing the last handle of a non-persistent region
/// (in any process) removes the region; a running watcher keeps it alive
/// until `fm_watch_stop`.
///
/// Returns `FM_OK`, `FM_E_NULL`, or `FM_E_INVALID_ARGUMENT` when `map`'s
/// memory does not hold a handle's tag (another kind of handle, or a
/// handle closed already whose memory was not reused). Closing twice is
/// the caller's error, as with `fclose`: by then the memory may hold
/// another handle (a later `fm_open` may get the same address), which
/// this call would close, or be unmapped.
///
/// # Safety
/// `map` is NULL or a handle from `fm_open`/`fm_open_ex` not closed yet, and no other
/// thread uses it during or after this call.
#[no_mangle]
pub unsafe extern "C" fn fm_close(map: *mut FmMap) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        unsafe { args::handle(map) }?;
        // SAFETY: by this function's contract `map` is a live handle from
        // `Box::into_raw` in `open` (the tag check above refuses some
        // breaches of that contract, not all: a freed pointer whose memory
        // holds a new handle passes it), and the caller gives up every
        // other use of it.
        let mut handle = unsafe { Box::from_raw(map) };
        handle.magic = 0;
        drop(handle);
        Ok(())
    })
}

/// The body of the calls that store one fact about a handle's region in
/// a required `*out`: the handle is checked, then `out`, and only then is
/// `fact` asked and its answer stored.
///
/// # Safety
/// `map` is NULL or a live handle; `out` is NULL or writable (the
/// contract of each such call).
#[inline]
unsafe fn answer<T>(map: *const FmMap, out: *mut T, fact: impl FnOnce(&FileMap) -> T) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let h = unsafe { args::handle(map) }?;
        if out.is_null() {
            return Err(Fail::Null("out"));
        }
        // SAFETY: not NULL, and writable by this function's contract.
        unsafe { args::put(out, fact(&h.map)) };
        Ok(())
    })
}

/// Store in `*out` whether the region existed before this handle opened
/// it (`false`: this handle created it).
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `map` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_existed_already(map: *const FmMap, out: *mut bool) -> FmStatus {
    // SAFETY: as this function's contract.
    unsafe { answer(map, out, |m| m.existed_already()) }
}

/// Store the region's capacity in bytes now in `*out`: the most a write
/// carries without growing the region. A region that grows (`fm_open_ex`)
/// reports its grown capacity here, in every process attached, as soon
/// as any of them grew it; it never shrinks.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `map` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_capacity(map: *const FmMap, out: *mut usize) -> FmStatus {
    // SAFETY: as this function's contract.
    unsafe { answer(map, out, |m| m.capacity()) }
}

/// Store in `*out` the most the region's capacity may grow to, in bytes:
/// the longest content a write may carry (`fm_open_ex`'s `max_capacity`;
/// the capacity for a region that never grows). Fixed at creation.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `map` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_max_capacity(map: *const FmMap, out: *mut usize) -> FmStatus {
    // SAFETY: as this function's contract.
    unsafe { answer(map, out, |m| m.max_capacity()) }
}

/// Store this handle's identity (the `FmWriter` its writes carry) in `*out`.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `map` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_id(map: *const FmMap, out: *mut FmWriter) -> FmStatus {
    // SAFETY: as this function's contract.
    unsafe { answer(map, out, |m| m.writer_id().into()) }
}

/// Publish `len` bytes from `data` as the region's new content, and store
/// the new generation in `*generation` (may be NULL).
///
/// The bytes are copied; the caller keeps `data`. `data` may be NULL when
/// `len` is 0. Content longer than the capacity and at most the maximum
/// capacity (`fm_max_capacity`) grows the region first; longer than the
/// maximum gives `FM_E_TOO_LARGE` and nothing is written: the previous
/// content stays. When the system cannot back a growth it is
/// `FM_E_OUT_OF_SPACE`, nothing written, the capacity as it was. Called while this
/// thread holds the lock through `fm_lock` on the same handle, it
/// publishes under that lock.
///
/// Returns `FM_OK`, `FM_E_NULL` (`map` NULL, or `data` NULL with a
/// nonzero `len`), `FM_E_INVALID_ARGUMENT` (not a handle), `FM_E_TOO_LARGE`
/// (`len` past the maximum capacity, checked before `data`: any `len`,
/// however absurd, gives this), `FM_E_OUT_OF_SPACE`, `FM_E_TIMEOUT`
/// (lock), `FM_E_WOULD_DEADLOCK`, `FM_E_FORKED_HANDLE`...
///
/// # Safety
/// `map` is NULL or a live handle; `data` is NULL or readable for `len`
/// bytes; `generation` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_write(
    map: *const FmMap,
    data: *const u8,
    len: usize,
    generation: *mut u64,
) -> FmStatus {
    // SAFETY: as this function's contract.
    boundary(|| unsafe { publish(map, None, data, len, generation) })
}

/// Publish `len` bytes from `data` only if the region's generation is
/// still `expected` (compare-and-publish, no lock held across calls): read
/// with `fm_read`, compute, then `fm_write_if` with the generation read.
/// Stores the new generation in `*generation` (may be NULL).
///
/// Called while this thread holds the lock through `fm_lock` on the same
/// handle, it compares and publishes under that lock, as `fm_write` does.
///
/// Returns `FM_OK`; `FM_E_CONFLICT` when another write came first
/// (`fm_error_info.found` is the generation now; nothing written);
/// otherwise as `fm_write`.
///
/// # Safety
/// As `fm_write`.
#[no_mangle]
pub unsafe extern "C" fn fm_write_if(
    map: *const FmMap,
    expected: u64,
    data: *const u8,
    len: usize,
    generation: *mut u64,
) -> FmStatus {
    // SAFETY: as this function's contract.
    boundary(|| unsafe { publish(map, Some(expected), data, len, generation) })
}

/// `fm_write` (`expected` None) and `fm_write_if` (only if the generation
/// is still `expected`): the length checked against the maximum first,
/// then `data`; under this thread's `fm_lock` guard when the write finds
/// this thread holding the lock.
///
/// Always inlined, each caller with its own `boundary` closure: the two
/// calls keep the code they had when each spelled this out (`expected`
/// a constant in each), not a shared out-of-line body that tests it (3 ns
/// more per `fm_write` in the inproc bench).
///
/// # Safety
/// As `fm_write`.
#[inline(always)]
unsafe fn publish(
    map: *const FmMap,
    expected: Option<u64>,
    data: *const u8,
    len: usize,
    generation: *mut u64,
) -> FfiResult {
    // SAFETY: as this function's contract.
    let h = unsafe { args::handle(map) }?;
    check_fits(&h.map, len)?;
    // SAFETY: as this function's contract.
    let content = unsafe { args::bytes(data, len, "data") }?;
    let written = match expected {
        None => h.map.write(content),
        Some(expected) => h.map.write_if(expected, content),
    };
    let published = match written {
        Err(Error::WouldDeadlock { .. }) => h.locked_write(expected, content)?,
        other => other?.generation,
    };
    // SAFETY: as this function's contract.
    unsafe { args::put(generation, published) };
    Ok(())
}

/// `TooLarge` before a slice is made: `len` may be any number.
fn check_fits(map: &FileMap, len: usize) -> FfiResult {
    if len > map.max_capacity() {
        return Err(Fail::Core(Error::TooLarge {
            len,
            capacity: map.capacity(),
            max_capacity: map.max_capacity(),
        }));
    }
    Ok(())
}

impl FmMap {
    /// Publish through the guard this thread took with `fm_lock`, when the
    /// plain write found this thread holding the lock; with `expected`
    /// (`fm_write_if`), only if the generation is still that one.
    #[cold]
    fn locked_write(&self, expected: Option<u64>, content: &[u8]) -> FfiResult<u64> {
        let mut slot = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(guard) = slot.as_mut() else {
            // The lock is held through another handle: no guard to use.
            return Err(Fail::Core(Error::WouldDeadlock {
                name: self.map.name().to_owned(),
            }));
        };
        if let Some(expected) = expected {
            // This thread holds the region lock (the write found it so),
            // so no publish comes between this load and the one below.
            let found = self.map.generation();
            if found != expected {
                return Err(Fail::Core(Error::Conflict {
                    name: self.map.name().to_owned(),
                    expected,
                    found,
                }));
            }
        }
        Ok(guard.publish(content)?.generation)
    }

    /// A lock-free read into `buf` that failed: this thread may hold the
    /// lock through `fm_lock` (then it reads under it), or `buf` may be
    /// too small (then the stamp of the content that did not fit is
    /// found). The stamp, and whether the content is in `buf`.
    #[cold]
    fn read_failed(&self, e: Error, buf: &mut [MaybeUninit<u8>]) -> FfiResult<(Stamp, bool)> {
        match e {
            Error::WouldDeadlock { .. } => self.locked_read(buf),
            Error::BufferTooSmall { .. } => self.read_too_small(buf),
            e => Err(Fail::Core(e)),
        }
    }

    /// Read through the lock this thread holds by `fm_lock`.
    fn locked_read(&self, buf: &mut [MaybeUninit<u8>]) -> FfiResult<(Stamp, bool)> {
        let slot = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(guard) = slot.as_ref() else {
            return Err(Fail::Core(Error::WouldDeadlock {
                name: self.map.name().to_owned(),
            }));
        };
        match guard.read_into(buf) {
            Ok(stamp) => Ok((stamp, true)),
            Err(Error::BufferTooSmall { .. }) => {
                let mut content = Vec::new();
                let stamp = guard.read_into(&mut content)?;
                Ok(fill(buf, stamp, &content))
            }
            Err(e) => Err(Fail::Core(e)),
        }
    }

    /// The content is longer than `buf`: read it whole to learn its
    /// stamp, which `fm_read` reports with the length it needs. A writer
    /// may have shortened it meanwhile; then it is copied after all.
    fn read_too_small(&self, buf: &mut [MaybeUninit<u8>]) -> FfiResult<(Stamp, bool)> {
        let mut content = Vec::new();
        match self.map.read_into(&mut content) {
            Ok(stamp) => Ok(fill(buf, stamp, &content)),
            Err(Error::WouldDeadlock { .. }) => self.locked_read(buf),
            Err(e) => Err(Fail::Core(e)),
        }
    }
}

/// `content` (read as `stamp`) into `buf` if it fits: the stamp, and
/// whether it did.
fn fill(buf: &mut [MaybeUninit<u8>], stamp: Stamp, content: &[u8]) -> (Stamp, bool) {
    match buf.get_mut(..content.len()) {
        Some(room) => {
            for (to, &from) in room.iter_mut().zip(content) {
                to.write(from);
            }
            (stamp, true)
        }
        None => (stamp, false),
    }
}

/// Copy the published content into `buf` (capacity `cap` bytes) and store
/// its length in `*len` and its generation and writer in `*stamp` (both
/// may be NULL). Lock-free; the bytes go straight from the region into
/// `buf`.
///
/// When the content is longer than `cap`, returns `FM_E_BUFFER_TOO_SMALL`
/// and stores the needed length in `*len` (and the content's stamp in
/// `*stamp`): call again with a buffer of that many bytes (another
/// writer may have published a longer content meanwhile: loop until
/// `FM_OK`), or of `fm_max_capacity` bytes, which always suffices. `buf` may be NULL when `cap` is 0 (to ask the length).
/// After a failure the first `cap` bytes of `buf` may have changed (a read
/// that raced a writer starts over; a buffer the content does not fit is
/// left alone unless such a race happened). The caller owns `buf`,
/// which need not be initialised: the library only writes it.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`,
/// `FM_E_BUFFER_TOO_SMALL`, `FM_E_CORRUPTED`, `FM_E_TIMEOUT`,
/// `FM_E_FORKED_HANDLE`, `FM_E_TRUNCATED`...
///
/// # Safety
/// `map` is NULL or a live handle; `buf` is NULL or writable for `cap`
/// bytes, which nothing else uses during the call; `len` and `stamp` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_read(
    map: *const FmMap,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    stamp: *mut FmStamp,
) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let h = unsafe { args::handle(map) }?;
        // SAFETY: as this function's contract.
        let out = unsafe { args::buffer(buf, cap, "buf") }?;
        let (got, fits) = match h.map.read_into(&mut *out) {
            Ok(got) => (got, true),
            Err(e) => h.read_failed(e, out)?,
        };
        // SAFETY: as this function's contract.
        unsafe { args::put(len, got.len) };
        if !stamp.is_null() {
            // SAFETY: not NULL, writable by the contract.
            unsafe { stamp.write(got.into()) };
        }
        if !fits {
            return Err(Fail::BufferTooSmall {
                needed: got.len,
                capacity: cap,
            });
        }
        Ok(())
    })
}

/// Store the region's current generation in `*out` (one atomic load).
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `map` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_generation(map: *const FmMap, out: *mut u64) -> FmStatus {
    // SAFETY: as this function's contract.
    unsafe { answer(map, out, |m| m.generation()) }
}

/// Fill `*out` with the region's header: capacity, length, generation,
/// last writer, attached processes.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `map` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_info(map: *const FmMap, out: *mut FmInfo) -> FmStatus {
    // SAFETY: as this function's contract.
    unsafe {
        answer(map, out, |m| {
            let info = m.info();
            FmInfo {
                capacity: info.capacity as u64,
                len: info.len as u64,
                generation: info.generation,
                last_writer: info.last_writer.into(),
                attached: u32::try_from(info.attached.len()).unwrap_or(u32::MAX),
                persistent: info.persistent,
                stale: info.stale,
            }
        })
    }
}

/// Remove region `name`'s name now: processes attached keep their mapping,
/// new opens create a new region. (Windows: see docs/platforms.md.)
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_NAME`, `FM_E_NOT_FOUND`,
/// `FM_E_PERMISSION_DENIED`, `FM_E_IO`.
///
/// # Safety
/// `name` is NULL or a string readable as for `fm_open`.
#[no_mangle]
pub unsafe extern "C" fn fm_remove(name: *const c_char) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let name = unsafe { args::name(name) }?;
        filemap::admin::remove(&name)?;
        Ok(())
    })
}

/// Remove every stale region (non-persistent, no live process attached)
/// and store how many were removed in `*removed` (may be NULL).
///
/// Returns `FM_OK`, `FM_E_IO`.
///
/// # Safety
/// `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_clean_stale(removed: *mut usize) -> FmStatus {
    boundary(|| {
        let names = filemap::admin::clean_stale()?;
        // SAFETY: as this function's contract.
        unsafe { args::put(removed, names.len()) };
        Ok(())
    })
}
