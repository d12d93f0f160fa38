//! The 16-byte vector copy, one shape for both architectures: x86_64's
//! SSE2 path (`movdqu`) and aarch64's only path (`ldp`/`stp` of 16-byte
//! registers). The lengths and offsets are here, once; the instructions
//! are the architecture's own (`copy_small`, `copy16`, `copy64` and
//! `copy_blocks64` in `sse2.rs` and `aarch64.rs`).
//!
//! Every access lies inside `[src, src + len)` and `[dst, dst + len)`; a
//! race with another process is defined by the hardware (see the parent
//! module and the architecture's module).

#[cfg(target_arch = "aarch64")]
use super::aarch64::{copy16, copy64, copy_blocks64, copy_small};
#[cfg(target_arch = "x86_64")]
use super::sse2::{copy16, copy64, copy_blocks64, copy_small};

/// Copy `len` bytes: fewer than 16 by `copy_small`; up to 63 by 16-byte
/// pieces, the last ending at `len`; else 64-byte blocks, then one
/// 64-byte block ending at `len`.
///
/// # Safety
/// `src` valid for `len` bytes of reads and `dst` for `len` bytes of
/// writes for the duration of the call; the ranges do not overlap; no Rust
/// reference to the private side is used during the call.
#[inline]
pub unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    if len < 16 {
        // SAFETY: as the caller's.
        unsafe { copy_small(src, dst, len) };
        return;
    }
    if len < 64 {
        // 16..=63 bytes: [0, 16), [16, 32) and [32, 48) as far as they end
        // before `len - 16`, then [len - 16, len); all inside the range.
        // SAFETY: each 16-byte piece lies in [0, len) (len >= 16).
        unsafe {
            copy16(src, dst);
            if len > 32 {
                copy16(src.add(16), dst.add(16));
            }
            if len > 48 {
                copy16(src.add(32), dst.add(32));
            }
            copy16(src.add(len - 16), dst.add(len - 16));
        }
        return;
    }
    // SAFETY: `len / 64` blocks from offset 0 are at least one (len >= 64)
    // and end at 64 * (len / 64) <= len, on both sides.
    unsafe { copy_blocks64(src, dst, len / 64) };
    if len % 64 != 0 {
        // SAFETY: [len - 64, len) lies in the range (len >= 64).
        unsafe { copy64(src.add(len - 64), dst.add(len - 64)) };
    }
}
