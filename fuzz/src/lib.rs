//! What the fuzz targets share: a heap counter (memory bounded per input),
//! a private `/dev/shm` (so listing and cleaning regions never touches
//! another process's), unique names, and a small byte reader.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Once;

/// The global allocator of every target: the system's, counting the bytes
/// live now and the most live since [`Heap::start`].
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// bookkeeping only and never affect what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System::alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System::dealloc`'s.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `System::realloc`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

/// The heap growth of one input.
pub struct Heap {
    base: usize,
}

impl Heap {
    /// Start measuring: the peak is reset to what is live now.
    pub fn start() -> Heap {
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        Heap { base }
    }

    /// Most bytes allocated at once since [`Heap::start`], beyond what was
    /// live then.
    pub fn peak_growth(&self) -> usize {
        PEAK.load(Relaxed).saturating_sub(self.base)
    }

    /// Panic (a finding) when the input made the heap grow past `limit`.
    pub fn check(&self, limit: usize, what: &str) {
        let grew = self.peak_growth();
        assert!(
            grew <= limit,
            "{what}: the heap grew by {grew} bytes for this input, over the bound of {limit}"
        );
    }
}

static PRIVATE: AtomicBool = AtomicBool::new(false);
static SETUP: Once = Once::new();

/// Give this process a `/dev/shm` of its own (a new mount namespace with a
/// fresh tmpfs there), once. True when that worked (root, or a user
/// namespace allowing it); then `admin::list`, `clean_stale` and the
/// CLI's `rm --stale` see only the fuzzer's regions. Never touches the
/// machine's `/dev/shm`: when it fails, the caller must not use those.
pub fn private_shm() -> bool {
    SETUP.call_once(|| {
        // SAFETY: plain system calls with valid NUL-terminated strings;
        // they change only this process's view of the mount table.
        let ok = unsafe {
            libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/dev/shm".as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"size=4g,mode=1777".as_ptr().cast(),
                ) == 0
        };
        if !ok {
            eprintln!(
                "filemap-fuzz: no private /dev/shm ({}); listing and cleaning regions are left out",
                std::io::Error::last_os_error()
            );
        }
        PRIVATE.store(ok, Relaxed);
    });
    PRIVATE.load(Relaxed)
}

/// A region name no other process or input uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    )
}

/// Every file in the private `/dev/shm` removed (between inputs).
pub fn wipe_private_shm() {
    assert!(
        PRIVATE.load(Relaxed),
        "the machine's /dev/shm is never wiped"
    );
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for entry in dir.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reads the fuzzer's bytes as fields; zeros once they run out.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length-prefixed (one byte) field.
    pub fn field(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}

/// The region file's wire layout, version 5 (the table at the top of
/// `filemap/src/layout.rs`, which the library does not export). The
/// `region` target checks every read against the file's bytes at these
/// places, and [`layout::check_against`] checks the constants against a
/// region the library made, so a layout change fails the target at its
/// first input instead of silently checking the wrong bytes.
pub mod layout {
    /// `b"FILEMAP\x01"` at offset 0.
    pub const MAGIC: [u8; 8] = *b"FILEMAP\x01";
    pub const VERSION: u32 = 5;
    pub const VERSION_AT: usize = 8;
    pub const CAPACITY_AT: usize = 16;
    pub const MAX_CAPACITY_AT: usize = 40;
    pub const GENERATION_AT: usize = 128;
    /// Buffer `i`'s line (seq, len, writer, inline content).
    pub const fn line_at(i: usize) -> usize {
        256 + 128 * i
    }
    pub const LEN_IN_LINE: usize = 8;
    pub const INLINE_IN_LINE: usize = 24;
    /// A content of at most this many bytes lives in its line.
    pub const INLINE: usize = 40;
    pub const HEADER_SIZE: usize = 4096;

    pub const fn stride(capacity: usize) -> usize {
        (capacity + 63) & !63
    }

    /// Where buffer `i` starts for a region of maximum `max_capacity`.
    pub const fn buffer_offset(max_capacity: usize, i: usize) -> usize {
        HEADER_SIZE + i * stride(max_capacity)
    }

    /// The size of a region file (and of its mapping) of maximum
    /// `max_capacity`.
    pub const fn region_size(max_capacity: usize) -> usize {
        HEADER_SIZE + 2 * stride(max_capacity)
    }

    /// The little-endian `u64` at `at` in `bytes`, 0 past its end.
    pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
        let mut word = [0u8; 8];
        if let Some(b) = bytes.get(at..at + 8) {
            word.copy_from_slice(b);
        }
        u64::from_le_bytes(word)
    }

    /// Where the bytes of the published content of a region file lie,
    /// read as a reader of maximum `max_capacity` reads them: the active
    /// buffer's (generation parity) length, then its line for a content
    /// of at most [`INLINE`] bytes, else its buffer. `None` when the
    /// length is past the maximum (a reader must refuse it).
    pub fn content_range(bytes: &[u8], max_capacity: usize) -> Option<std::ops::Range<usize>> {
        let i = (u64_at(bytes, GENERATION_AT) & 1) as usize;
        let len = u64_at(bytes, line_at(i) + LEN_IN_LINE);
        if len > max_capacity as u64 {
            return None;
        }
        let len = len as usize;
        let start = if len <= INLINE {
            line_at(i) + INLINE_IN_LINE
        } else {
            buffer_offset(max_capacity, i)
        };
        Some(start..start + len)
    }

    /// Panic unless `bytes`, the file of a region the library just made
    /// with `capacity` and `max_capacity` and no content, has this layout.
    pub fn check_against(bytes: &[u8], capacity: usize, max_capacity: usize) {
        assert_eq!(bytes.len(), region_size(max_capacity), "region size");
        assert_eq!(bytes[..8], MAGIC, "magic");
        assert_eq!(u64_at(bytes, VERSION_AT) as u32, VERSION, "layout version");
        assert_eq!(u64_at(bytes, CAPACITY_AT), capacity as u64, "capacity");
        assert_eq!(
            u64_at(bytes, MAX_CAPACITY_AT),
            max_capacity as u64,
            "max_capacity"
        );
    }
}
