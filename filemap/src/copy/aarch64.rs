//! The aarch64 copy's instructions: inline assembly, `ldp`/`stp` of
//! 16-byte vector registers (64 bytes per loop step). Which of them a copy
//! of `len` bytes runs, and at which offsets, is `super::vector::copy`,
//! the shape x86_64's SSE2 path shares.
//!
//! Every function here copies the range it is given from `src` to `dst`
//! and touches nothing else. Either side may be shared memory that another
//! process writes meanwhile: the accesses are `asm!` loads and stores,
//! outside the Rust memory model and defined by the hardware under a race
//! (single-copy atomic per byte at least, never a fault), and the seqlock
//! validates the bytes afterwards. Linux maps user memory as Normal
//! memory, where these instructions need no alignment.
//!
//! Ordering: these are plain loads and stores, as weakly ordered as
//! relaxed atomics. The seqlock's fences order them against its sequence
//! words (`dmb ishld` after a reader's copy, `dmb ish` before a writer's
//! copy, `stlr` for the publish), exactly as they order the relaxed byte
//! copies of the loom model in `tests/model.rs`, which checks that this
//! is enough.

use core::arch::asm;

/// Copy `blocks` 64-byte blocks from offset 0: `[0, 64 * blocks)`.
///
/// # Safety
/// `blocks >= 1`; `src` valid for `64 * blocks` bytes of reads and `dst`
/// for as many writes.
#[inline(always)]
pub(super) unsafe fn copy_blocks64(src: *const u8, dst: *mut u8, blocks: usize) {
    debug_assert!(blocks >= 1);
    // SAFETY:
    // - the loop copies `blocks` (>= 1) 64-byte blocks from offset 0, i.e.
    //   [0, 64 * blocks), inside both ranges (caller);
    // - the memory accesses are asm `ldp`/`stp`s (defined under a race, no
    //   alignment needed on Normal memory); the registers used are
    //   declared, and the flags (`subs`) are not preserved.
    unsafe {
        asm!(
            "2:",
            "ldp {a:q}, {b:q}, [{s}]",
            "ldp {c:q}, {d:q}, [{s}, #32]",
            "stp {a:q}, {b:q}, [{t}]",
            "stp {c:q}, {d:q}, [{t}, #32]",
            "add {s}, {s}, #64",
            "add {t}, {t}, #64",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            s = inout(reg) src => _,
            t = inout(reg) dst => _,
            n = inout(reg) blocks => _,
            a = out(vreg) _,
            b = out(vreg) _,
            c = out(vreg) _,
            d = out(vreg) _,
            options(nostack),
        );
    }
}

/// Copy 64 bytes.
///
/// # Safety
/// `src` valid for 64 bytes of reads, `dst` for 64 bytes of writes.
#[inline(always)]
pub(super) unsafe fn copy64(src: *const u8, dst: *mut u8) {
    // SAFETY: two `ldp` and two `stp` of 32 bytes inside the two 64-byte
    // ranges (caller).
    unsafe {
        asm!(
            "ldp {a:q}, {b:q}, [{s}]",
            "ldp {c:q}, {d:q}, [{s}, #32]",
            "stp {a:q}, {b:q}, [{t}]",
            "stp {c:q}, {d:q}, [{t}, #32]",
            s = in(reg) src,
            t = in(reg) dst,
            a = out(vreg) _,
            b = out(vreg) _,
            c = out(vreg) _,
            d = out(vreg) _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copy 16 bytes.
///
/// # Safety
/// `src` valid for 16 bytes of reads, `dst` for 16 bytes of writes.
#[inline(always)]
pub(super) unsafe fn copy16(src: *const u8, dst: *mut u8) {
    // SAFETY: one 16-byte load and store inside the ranges (caller).
    unsafe {
        asm!(
            "ldr {v:q}, [{s}]",
            "str {v:q}, [{t}]",
            s = in(reg) src,
            t = in(reg) dst,
            v = out(vreg) _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copy fewer than 16 bytes: two overlapping 8- or 4-byte moves, or three
/// single bytes.
///
/// # Safety
/// As `super::vector::copy`, and `len < 16`.
#[inline(always)]
pub(super) unsafe fn copy_small(src: *const u8, dst: *mut u8, len: usize) {
    debug_assert!(len < 16);
    if len >= 8 {
        // SAFETY: [0, 8) and [len - 8, len) lie in the range (8 <= len).
        unsafe {
            asm!(
                "ldr {x}, [{s}]",
                "ldr {y}, [{s}, {e}]",
                "str {x}, [{t}]",
                "str {y}, [{t}, {e}]",
                s = in(reg) src,
                t = in(reg) dst,
                e = in(reg) len - 8,
                x = out(reg) _,
                y = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    } else if len >= 4 {
        // SAFETY: [0, 4) and [len - 4, len) lie in the range (4 <= len).
        unsafe {
            asm!(
                "ldr {x:w}, [{s}]",
                "ldr {y:w}, [{s}, {e}]",
                "str {x:w}, [{t}]",
                "str {y:w}, [{t}, {e}]",
                s = in(reg) src,
                t = in(reg) dst,
                e = in(reg) len - 4,
                x = out(reg) _,
                y = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    } else if len > 0 {
        // SAFETY: bytes 0, len / 2 and len - 1 lie in the range (0 < len).
        unsafe {
            asm!(
                "ldrb {x:w}, [{s}]",
                "ldrb {y:w}, [{s}, {h}]",
                "ldrb {z:w}, [{s}, {e}]",
                "strb {x:w}, [{t}]",
                "strb {y:w}, [{t}, {h}]",
                "strb {z:w}, [{t}, {e}]",
                s = in(reg) src,
                t = in(reg) dst,
                h = in(reg) len / 2,
                e = in(reg) len - 1,
                x = out(reg) _,
                y = out(reg) _,
                z = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    }
}
