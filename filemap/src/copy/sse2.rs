//! The x86_64 instructions of the 16-byte path (SSE2 `movdqu`, which
//! every x86_64 CPU has): `super::vector::copy` runs them, the shape
//! aarch64's path shares; the non-temporal path (`x86.rs`) uses
//! `copy16` and `copy64` too.
//!
//! Every function here copies the range it is given from `src` to `dst`
//! and touches nothing else. Either side may be shared memory that
//! another process writes meanwhile: the accesses are `asm!` moves,
//! defined by the hardware under a race (see the parent module), and they
//! need no alignment of either side.

use core::arch::asm;

/// Copy `blocks` 64-byte blocks from offset 0, `[0, 64 * blocks)`, with
/// `movdqu`.
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
    // - the memory accesses are asm `movdqu`s (defined under a race, no
    //   alignment needed); the registers used are declared.
    unsafe {
        asm!(
            "2:",
            "movdqu {a}, xmmword ptr [{s}]",
            "movdqu {b}, xmmword ptr [{s} + 16]",
            "movdqu {c}, xmmword ptr [{s} + 32]",
            "movdqu {d}, xmmword ptr [{s} + 48]",
            "movdqu xmmword ptr [{t}], {a}",
            "movdqu xmmword ptr [{t} + 16], {b}",
            "movdqu xmmword ptr [{t} + 32], {c}",
            "movdqu xmmword ptr [{t} + 48], {d}",
            "add {s}, 64",
            "add {t}, 64",
            "dec {n}",
            "jnz 2b",
            s = inout(reg) src => _,
            t = inout(reg) dst => _,
            n = inout(reg) blocks => _,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
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
    // SAFETY: four `movdqu`s inside the two 64-byte ranges (caller).
    unsafe {
        asm!(
            "movdqu {a}, xmmword ptr [{s}]",
            "movdqu {b}, xmmword ptr [{s} + 16]",
            "movdqu {c}, xmmword ptr [{s} + 32]",
            "movdqu {d}, xmmword ptr [{s} + 48]",
            "movdqu xmmword ptr [{t}], {a}",
            "movdqu xmmword ptr [{t} + 16], {b}",
            "movdqu xmmword ptr [{t} + 32], {c}",
            "movdqu xmmword ptr [{t} + 48], {d}",
            s = in(reg) src,
            t = in(reg) dst,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
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
    // SAFETY: one `movdqu` load and store inside the ranges (caller).
    unsafe {
        asm!(
            "movdqu {v}, xmmword ptr [{s}]",
            "movdqu xmmword ptr [{t}], {v}",
            s = in(reg) src,
            t = in(reg) dst,
            v = out(xmm_reg) _,
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
                "mov {x}, qword ptr [{s}]",
                "mov {y}, qword ptr [{s} + {e}]",
                "mov qword ptr [{t}], {x}",
                "mov qword ptr [{t} + {e}], {y}",
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
                "mov {x:e}, dword ptr [{s}]",
                "mov {y:e}, dword ptr [{s} + {e}]",
                "mov dword ptr [{t}], {x:e}",
                "mov dword ptr [{t} + {e}], {y:e}",
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
                "movzx {x:e}, byte ptr [{s}]",
                "movzx {y:e}, byte ptr [{s} + {h}]",
                "movzx {z:e}, byte ptr [{s} + {e}]",
                "mov byte ptr [{t}], {x:l}",
                "mov byte ptr [{t} + {h}], {y:l}",
                "mov byte ptr [{t} + {e}], {z:l}",
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
