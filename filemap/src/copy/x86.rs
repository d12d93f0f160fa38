//! The x86_64 copy: inline assembly, 16-byte SSE2 or 32-byte AVX2 moves.
//!
//! Every function here copies `[src, src + len)` to `[dst, dst + len)` and
//! touches nothing else. Either side may be shared memory that another
//! process writes meanwhile: the accesses are `asm!` `mov`s, defined by the
//! hardware under a race (see the parent module), and they are all
//! unaligned forms, so no alignment is required of either side.

use core::arch::asm;

/// Copies at least this long take the AVX2 path when the CPU has it.
/// Below it the 16-byte path is as fast and needs no call through a
/// `target_feature` function (one more call, no inlining).
pub const AVX_MIN: usize = 256;

/// Copy `len` bytes from `src` to `dst`, 32 bytes at a time with AVX2 for
/// long copies when the CPU has it, else 16 at a time (SSE2).
///
/// # Safety
/// `src` valid for `len` bytes of reads and `dst` for `len` bytes of
/// writes for the duration of the call; the ranges do not overlap; no Rust
/// reference to the private side is used during the call.
#[inline]
pub unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    if len >= AVX_MIN && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above, `std` caches the
        // answer); the ranges are the caller's.
        unsafe { copy_avx2(src, dst, len) }
    } else {
        // SAFETY: the ranges are the caller's; SSE2 is baseline on x86_64.
        unsafe { copy_sse2(src, dst, len) }
    }
}

/// The 16-byte path: 64-byte blocks, then overlapping 16-byte steps.
///
/// # Safety
/// As [`copy`].
#[inline]
pub unsafe fn copy_sse2(src: *const u8, dst: *mut u8, len: usize) {
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
    let blocks = len / 64;
    // SAFETY:
    // - the loop copies `blocks` 64-byte blocks from offset 0, i.e.
    //   [0, 64 * blocks) with 64 * blocks <= len, on both sides;
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
    if len % 64 != 0 {
        // SAFETY: [len - 64, len) lies in the range (len >= 64).
        unsafe { copy64(src.add(len - 64), dst.add(len - 64)) };
    }
}

/// The 32-byte path: 128-byte blocks, then one overlapping 128-byte block.
///
/// # Safety
/// As [`copy`], and the CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn copy_avx2(src: *const u8, dst: *mut u8, len: usize) {
    if len < 128 {
        // SAFETY: as the caller's.
        unsafe { copy_sse2(src, dst, len) };
        return;
    }
    let blocks = len / 128;
    // SAFETY:
    // - the loop copies `blocks` 128-byte blocks from offset 0, i.e.
    //   [0, 128 * blocks) with 128 * blocks <= len, on both sides;
    // - the memory accesses are asm `vmovdqu`s (defined under a race, no
    //   alignment needed); the CPU has AVX2 (caller); the registers used
    //   are declared.
    unsafe {
        asm!(
            "2:",
            "vmovdqu {a}, ymmword ptr [{s}]",
            "vmovdqu {b}, ymmword ptr [{s} + 32]",
            "vmovdqu {c}, ymmword ptr [{s} + 64]",
            "vmovdqu {d}, ymmword ptr [{s} + 96]",
            "vmovdqu ymmword ptr [{t}], {a}",
            "vmovdqu ymmword ptr [{t} + 32], {b}",
            "vmovdqu ymmword ptr [{t} + 64], {c}",
            "vmovdqu ymmword ptr [{t} + 96], {d}",
            "add {s}, 128",
            "add {t}, 128",
            "dec {n}",
            "jnz 2b",
            s = inout(reg) src => _,
            t = inout(reg) dst => _,
            n = inout(reg) blocks => _,
            a = out(ymm_reg) _,
            b = out(ymm_reg) _,
            c = out(ymm_reg) _,
            d = out(ymm_reg) _,
            options(nostack),
        );
    }
    if len % 128 != 0 {
        let last = len - 128;
        // SAFETY: [len - 128, len) lies in the range (len >= 128); AVX2 as
        // above.
        unsafe {
            asm!(
                "vmovdqu {a}, ymmword ptr [{s}]",
                "vmovdqu {b}, ymmword ptr [{s} + 32]",
                "vmovdqu {c}, ymmword ptr [{s} + 64]",
                "vmovdqu {d}, ymmword ptr [{s} + 96]",
                "vmovdqu ymmword ptr [{t}], {a}",
                "vmovdqu ymmword ptr [{t} + 32], {b}",
                "vmovdqu ymmword ptr [{t} + 64], {c}",
                "vmovdqu ymmword ptr [{t} + 96], {d}",
                s = in(reg) src.add(last),
                t = in(reg) dst.add(last),
                a = out(ymm_reg) _,
                b = out(ymm_reg) _,
                c = out(ymm_reg) _,
                d = out(ymm_reg) _,
                options(nostack, preserves_flags),
            );
        }
    }
    // Leave no dirty upper halves behind (SSE code after this would pay
    // for them on some CPUs). The compiler does not add this for asm.
    // SAFETY: `vzeroupper` touches no memory; it zeroes bits 128 and up of
    // every vector register, all of which are declared clobbered.
    unsafe {
        asm!(
            "vzeroupper",
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack, nomem, preserves_flags),
        );
    }
}

/// Copy 64 bytes.
///
/// # Safety
/// `src` valid for 64 bytes of reads, `dst` for 64 bytes of writes.
#[inline(always)]
unsafe fn copy64(src: *const u8, dst: *mut u8) {
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
unsafe fn copy16(src: *const u8, dst: *mut u8) {
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
/// As [`copy`], and `len < 16`.
#[inline(always)]
unsafe fn copy_small(src: *const u8, dst: *mut u8, len: usize) {
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
