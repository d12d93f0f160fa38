//! Copies between private memory and the shared buffers.
//!
//! This module owns the two bulk copies of the protocol: [`load_shared`]
//! (a buffer out into private memory, for `read_into`) and [`store_shared`]
//! (private bytes into a buffer, for a publish). Another process may write
//! the shared side at any moment, so neither copy may be an ordinary Rust
//! access there: a non-atomic read racing with a write is a data race, which
//! is undefined behaviour in the Rust memory model whatever the seqlock does
//! with the bytes afterwards. It must never read or write outside the range
//! it was given, not even by a byte, torn copy or not.
//!
//! The path is chosen at run time, once per process (the first copy reads
//! the CPU's features and cache size and the `FILEMAP_COPY` variable, see
//! [`ENV`]), then by the length of each copy. A copy shorter than 256
//! bytes takes the same path on every CPU, so unless a path is forced it
//! skips the plan (one load and a compare: at 64 bytes, the plan's
//! look-up cost as much as the copy):
//!
//! - **x86_64**: inline assembly. Loads and stores made by `asm!` are
//!   outside the Rust memory model: what they do when another process
//!   writes the same bytes is defined by the hardware (each access returns
//!   some mix of old and new bytes; x86 never faults on a race), and the
//!   seqlock validates the bytes afterwards.
//!   - below 256 bytes, `movdqu` (16 bytes; SSE2 is baseline);
//!   - from 256 bytes, `vmovdqu` (32 bytes) when the CPU has AVX2;
//!   - on Intel CPUs with ERMS, `rep movsb` from 4 KiB: there the string
//!     move writes whole lines without reading them first and runs at
//!     glibc memcpy's speed (glibc's memcpy switches to it at the same
//!     size), where the vector loops ran at half of it for 1 MiB. Not on
//!     AMD: Zen's `rep movsb` is slower than the loops below 64 KiB here
//!     and suffers 4K aliasing (a page-aligned buffer against a malloc'd
//!     one), while the loops already run at memcpy speed;
//!   - from half the last-level cache (CPUID leaf 4, or 0x8000_001D /
//!     0x8000_0006 on AMD; 16 MiB on a 32 MiB L3), non-temporal stores
//!     (`movntdq`) and an `sfence`: source and destination no longer fit
//!     in the cache together, so writing around it saves the eviction
//!     traffic. Below that they are slower (measured 1.2-1.5x at 1 and
//!     4 MiB) because a reader then misses the cache. The fence makes the
//!     weakly ordered stores globally visible before the seqlock's publish
//!     (a plain `mov` on x86, which would otherwise pass them).
//! - **aarch64**: inline assembly, `ldp`/`stp` of 16-byte vector
//!   registers, defined under a race as on x86_64 (Normal memory; no
//!   alignment needed). Plain loads and stores, as weakly ordered as
//!   relaxed atomics: the seqlock's fences order them, as the loom model
//!   checks for its relaxed copies.
//! - **Elsewhere** (or forced with `FILEMAP_COPY=words`): relaxed 8-byte
//!   atomic loads/stores, then single bytes. The compiler cannot widen
//!   those, but they are sound everywhere.
//!
//! Every path can be forced for a process (`FILEMAP_COPY`), and the tests
//! call each path directly, so all of them run on any CPU that can run
//! them, whatever it would choose.
//!
//! The vector loops' shape (x86_64 and aarch64; the 16-byte one, x86_64's
//! SSE2 path and aarch64's, is one function, `vector::copy`), for a width
//! `W` (16 or 32 bytes; 64-byte blocks on aarch64): blocks of
//! `4 W` in an unrolled loop, then `W`-byte steps, then one last `W`-byte
//! step that ends exactly at the end of the range (it may overlap bytes
//! already copied; both sides hold the same bytes there unless the source
//! moved, and then the seqlock discards the copy anyway). Ranges shorter
//! than `W` take two overlapping accesses of the largest power of two that
//! fits (8, 4) or three single bytes. Every access lies inside
//! `[start, start + len)` of both sides.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod sse2;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod vector;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

/// The environment variable that forces one copy path for the whole
/// process (read once, at the first copy): `auto` (the default), `words`
/// everywhere, `sse2`, `avx2`, `movsb` and `nt` on x86_64, `neon` on
/// aarch64. Meant for tests and for measuring; an unknown or unavailable
/// value (e.g. `avx2` on a CPU without it) means `auto`.
pub const ENV: &str = "FILEMAP_COPY";

mod path;
pub use path::Path;

/// The path `FILEMAP_COPY=value` names, if this CPU can take it.
fn parse(value: &str, plan: &Plan) -> Option<Path> {
    let path = match value {
        "words" => Path::Words,
        #[cfg(target_arch = "x86_64")]
        "sse2" => Path::Sse2,
        #[cfg(target_arch = "x86_64")]
        "avx2" if plan.cpu.avx2 => Path::Avx2,
        #[cfg(target_arch = "x86_64")]
        "movsb" => Path::Movsb,
        #[cfg(target_arch = "x86_64")]
        "nt" => Path::NonTemporal,
        #[cfg(target_arch = "aarch64")]
        "neon" => Path::Neon,
        _ => return None,
    };
    let _ = plan;
    Some(path)
}

/// The choice of path, made once per process.
#[derive(Debug)]
struct Plan {
    forced: Option<Path>,
    #[cfg(target_arch = "x86_64")]
    cpu: x86::Cpu,
    #[cfg(target_arch = "x86_64")]
    thresholds: x86::Thresholds,
}

impl Plan {
    fn detect() -> Plan {
        #[cfg(target_arch = "x86_64")]
        let cpu = x86::Cpu::detect();
        let mut plan = Plan {
            forced: None,
            #[cfg(target_arch = "x86_64")]
            thresholds: x86::Thresholds::of(&cpu),
            #[cfg(target_arch = "x86_64")]
            cpu,
        };
        plan.forced = std::env::var(ENV).ok().and_then(|v| parse(v.trim(), &plan));
        if plan.forced.is_none() {
            SHORT_BELOW.store(SHORT, Relaxed);
        }
        plan
    }

    #[inline]
    fn path(&self, len: usize) -> Path {
        if let Some(path) = self.forced {
            return path;
        }
        #[cfg(target_arch = "x86_64")]
        return self.thresholds.path(&self.cpu, len);
        #[cfg(target_arch = "aarch64")]
        return {
            let _ = len;
            Path::Neon
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        return {
            let _ = len;
            Path::Words
        };
    }
}

/// Copies shorter than this take the path every CPU takes for them
/// ([`SHORT_PATH`]) whatever the plan says: the sizes where choosing would
/// cost more than copying. `SHORT` once the plan is made and forces no
/// path; 0 before, or when one is forced (then every copy asks the plan).
static SHORT_BELOW: AtomicUsize = AtomicUsize::new(0);

/// Below this, [`Plan::path`] is the same on every CPU when nothing is
/// forced: the 16-byte loops on x86_64 (AVX2, `rep movsb` and
/// non-temporal stores all start above it), the one path on aarch64 and
/// elsewhere.
#[cfg(target_arch = "x86_64")]
const SHORT: usize = x86::AVX_MIN;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(x86::MOVSB_MIN_INTEL >= SHORT && x86::NT_FLOOR >= SHORT);
#[cfg(not(target_arch = "x86_64"))]
const SHORT: usize = usize::MAX;

/// The path every CPU takes below [`SHORT`].
#[cfg(target_arch = "x86_64")]
const SHORT_PATH: Path = Path::Sse2;
#[cfg(target_arch = "aarch64")]
const SHORT_PATH: Path = Path::Neon;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SHORT_PATH: Path = Path::Words;

#[inline]
fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(Plan::detect)
}

/// The path a copy of `len` bytes takes in this process: [`SHORT_PATH`]
/// without a look at the plan when the length is short and nothing is
/// forced.
#[inline]
pub fn path_for(len: usize) -> Path {
    if len < SHORT_BELOW.load(Relaxed) {
        SHORT_PATH
    } else {
        plan().path(len)
    }
}

/// Copy `len` bytes out of shared memory at `src` into private memory at
/// `dst`. A concurrent writer in another process makes the bytes garbage,
/// never undefined behaviour; the caller validates them (seqlock) or holds
/// the lock.
///
/// # Safety
/// - `src` must be 8-byte aligned and valid for `len` bytes of reads for
///   the duration of the call;
/// - `dst` must be valid for `len` bytes of writes, not be accessed by
///   anyone else during the call and not overlap `src`.
#[inline]
pub unsafe fn load_shared(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller's contract is `load_by`'s for any path; the plan
    // offers AVX2 only on a CPU that has it.
    unsafe { load_by(path_for(len), src, dst, len) }
}

/// Copy `src` into shared memory at `dst`. Readers racing with the copy
/// get garbage, never undefined behaviour, and discard it (seqlock).
///
/// # Safety
/// `dst` must be 8-byte aligned, valid for `src.len()` bytes of writes for
/// the duration of the call and not overlap `src`.
#[inline]
pub unsafe fn store_shared(src: &[u8], dst: *mut u8) {
    // SAFETY: the caller's contract is `store_by`'s for any path; the plan
    // offers AVX2 only on a CPU that has it.
    unsafe { store_by(path_for(src.len()), src, dst) }
}

/// [`load_shared`] by `path`.
///
/// # Safety
/// As [`load_shared`]; `path` is one this CPU can run (`Path::Avx2` only
/// with AVX2; a path of another architecture falls back to `words`).
#[inline]
unsafe fn load_by(path: Path, src: *const u8, dst: *mut u8, len: usize) {
    match path {
        // SAFETY: the caller's contract is `words::load`'s.
        Path::Words => unsafe { words::load(src, dst, len) },
        // The shared side is only read, by inline asm, which is outside
        // the Rust memory model: a racing write by another process yields
        // torn bytes as the hardware defines them (no UB); the caller's
        // seqlock discards them.
        // SAFETY: the caller's contract is a superset of `x86::copy`'s
        // (which needs no alignment), AVX2 as the caller promised; the
        // race is defined, as said above.
        #[cfg(target_arch = "x86_64")]
        _ => unsafe { x86::copy(path, src, dst, len) },
        // SAFETY: as for x86_64: `vector::copy`'s contract is a subset of
        // the caller's, the race is defined by the hardware.
        #[cfg(target_arch = "aarch64")]
        _ => unsafe { vector::copy(src, dst, len) },
        // SAFETY: the caller's contract is `words::load`'s.
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        _ => unsafe { words::load(src, dst, len) },
    }
}

/// [`store_shared`] by `path`.
///
/// # Safety
/// As [`store_shared`]; `path` as for [`load_by`].
#[inline]
unsafe fn store_by(path: Path, src: &[u8], dst: *mut u8) {
    match path {
        // SAFETY: the caller's contract is `words::store`'s.
        Path::Words => unsafe { words::store(src, dst) },
        // The shared side is only written, by inline asm: outside the Rust
        // memory model, defined by the hardware when readers race with it,
        // and the readers discard what they read (seqlock).
        // SAFETY: `src` is valid for its length of reads (a slice); the
        // caller makes `dst` valid for as many writes, disjoint from `src`;
        // AVX2 as the caller promised; the race is defined, as said above.
        #[cfg(target_arch = "x86_64")]
        _ => unsafe { x86::copy(path, src.as_ptr(), dst, src.len()) },
        // SAFETY: as for x86_64.
        #[cfg(target_arch = "aarch64")]
        _ => unsafe { vector::copy(src.as_ptr(), dst, src.len()) },
        // SAFETY: the caller's contract is `words::store`'s.
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        _ => unsafe { words::store(src, dst) },
    }
}

/// The portable copies: relaxed atomic words, then bytes. Used where there
/// is no assembly path, and when forced (`FILEMAP_COPY=words`).
mod words {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::atomic::{AtomicU64, AtomicU8};

    /// Copy `len` bytes out of shared memory with relaxed atomic loads, so
    /// a concurrent writer in another process is a race on atomics
    /// (defined: the seqlock then discards the bytes), never a data race.
    ///
    /// # Safety
    /// `src` must be 8-byte aligned and valid for `len` bytes of reads for
    /// the duration of the call; `dst` must be valid for `len` bytes of
    /// writes and not overlap `src`.
    pub unsafe fn load(src: *const u8, dst: *mut u8, len: usize) {
        let words = len / 8;
        for i in 0..words {
            // SAFETY: inside `src`'s range and 8-byte aligned (caller); the
            // memory is only ever accessed atomically.
            let word =
                unsafe { AtomicU64::from_ptr(src.add(i * 8).cast_mut().cast()) }.load(Relaxed);
            // SAFETY: inside `dst`'s range (caller); unaligned is allowed.
            unsafe { dst.add(i * 8).cast::<u64>().write_unaligned(word) };
        }
        for i in words * 8..len {
            // SAFETY: inside both ranges (caller); a byte is always aligned.
            unsafe {
                dst.add(i)
                    .write(AtomicU8::from_ptr(src.add(i).cast_mut()).load(Relaxed))
            };
        }
    }

    /// Copy `src` into shared memory at `dst` with relaxed atomic stores.
    ///
    /// # Safety
    /// `dst` must be 8-byte aligned and valid for `src.len()` bytes of
    /// writes.
    pub unsafe fn store(src: &[u8], dst: *mut u8) {
        let mut chunks = src.chunks_exact(8);
        for (i, chunk) in chunks.by_ref().enumerate() {
            let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
            // SAFETY: inside `dst`'s range and 8-byte aligned (caller).
            unsafe { AtomicU64::from_ptr(dst.add(i * 8).cast()) }.store(word, Relaxed);
        }
        let done = src.len() - chunks.remainder().len();
        for (i, &byte) in chunks.remainder().iter().enumerate() {
            // SAFETY: inside `dst`'s range (caller); a byte is always aligned.
            unsafe { AtomicU8::from_ptr(dst.add(done + i)) }.store(byte, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
