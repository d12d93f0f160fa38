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
//! - **x86_64**: the copy is inline assembly (`movdqu`, 16 bytes, SSE2 is
//!   part of the x86_64 baseline; `vmovdqu`, 32 bytes, when the CPU has
//!   AVX2, detected at run time and cached by `std`). Loads and stores made
//!   by `asm!` are outside the Rust memory model: what they do when another
//!   process writes the same bytes is defined by the hardware (each access
//!   returns some mix of old and new bytes; x86 never faults on a race),
//!   and the seqlock validates the bytes afterwards. Against a loop of
//!   8-byte atomics this is 2-4 times fewer instructions per byte, and it
//!   runs near memcpy speed (the bench harness measures both). It does not
//!   use `rep movsb`, which suffers 4K aliasing on AMD Zen 3.
//! - **Elsewhere**: relaxed 8-byte atomic loads/stores, then single bytes.
//!   The compiler cannot widen those, but they are sound everywhere.
//!
//! The copy's shape on x86_64, for a width `W` (16 or 32 bytes): blocks of
//! `4 W` in an unrolled loop, then `W`-byte steps, then one last `W`-byte
//! step that ends exactly at the end of the range (it may overlap bytes
//! already copied; both sides hold the same bytes there unless the source
//! moved, and then the seqlock discards the copy anyway). Ranges shorter
//! than `W` take two overlapping accesses of the largest power of two that
//! fits (8, 4) or three single bytes. Every access lies inside
//! `[start, start + len)` of both sides.

#[cfg(target_arch = "x86_64")]
mod x86;

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
    // The shared side is only read, by inline asm, which is outside the
    // Rust memory model: a racing write by another process yields torn
    // bytes as the hardware defines them (no UB); the caller's seqlock
    // discards them.
    // SAFETY: the caller's contract is a superset of `x86::copy`'s (which
    // needs no alignment); the race is defined, as said above.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::copy(src, dst, len);
    }
    // SAFETY: the caller's contract is `words::load`'s.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe {
        words::load(src, dst, len);
    }
}

/// Copy `src` into shared memory at `dst`. Readers racing with the copy
/// get garbage, never undefined behaviour, and discard it (seqlock).
///
/// # Safety
/// `dst` must be 8-byte aligned, valid for `src.len()` bytes of writes for
/// the duration of the call and not overlap `src`.
#[inline]
pub unsafe fn store_shared(src: &[u8], dst: *mut u8) {
    // The shared side is only written, by inline asm: outside the Rust
    // memory model, defined by the hardware when readers race with it, and
    // the readers discard what they read (seqlock).
    // SAFETY: `src` is valid for its length of reads (a slice); the caller
    // makes `dst` valid for as many writes, disjoint from `src`; the race
    // is defined, as said above.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::copy(src.as_ptr(), dst, src.len());
    }
    // SAFETY: the caller's contract is `words::store`'s.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe {
        words::store(src, dst);
    }
}

/// The portable copies: relaxed atomic words, then bytes. Used where there
/// is no assembly path; compiled everywhere so the tests cover them.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
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
