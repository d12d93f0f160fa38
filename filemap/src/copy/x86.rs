//! The x86_64 copies: inline assembly, 16-byte SSE2 or 32-byte AVX2 moves,
//! `rep movsb`, or SSE2 loads with non-temporal stores. The SSE2 path is
//! `super::vector::copy` with the instructions of `sse2.rs`, the shape
//! aarch64's path shares.
//!
//! Every function here copies the range it is given from `src` to `dst`
//! and touches nothing else. Either side may be shared memory that another
//! process writes meanwhile: the accesses are `asm!` moves, defined by the
//! hardware under a race (see the parent module), and they need no
//! alignment of either side (the non-temporal stores align themselves).

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, CpuidResult};

use super::path::Path;
use super::sse2::{copy16, copy64};
use super::vector;

/// Copies at least this long take the AVX2 path when the CPU has it.
/// Below it the 16-byte path is as fast and needs no call through a
/// `target_feature` function (one more call, no inlining).
pub const AVX_MIN: usize = 256;

/// What this CPU offers, read once per process (see `super::plan`).
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    pub avx2: bool,
    /// Enhanced `rep movsb` (CPUID.7.0:EBX bit 9).
    pub erms: bool,
    pub amd: bool,
    /// Bytes of the last-level cache, 0 if CPUID does not say.
    pub llc: usize,
}

/// CPUID, which every x86_64 CPU has.
fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    // SAFETY: CPUID exists on every x86_64 CPU (it is only unsafe on
    // 32-bit x86); it reads no memory. (A safe function in newer `core`.)
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid_count(leaf, sub)
    }
}

impl Cpu {
    pub fn detect() -> Cpu {
        let vendor = cpuid(0, 0);
        let amd = (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
        let erms = vendor.eax >= 7 && cpuid(7, 0).ebx & (1 << 9) != 0;
        Cpu {
            avx2: std::is_x86_feature_detected!("avx2"),
            erms,
            amd,
            llc: last_level_cache(amd, vendor.eax),
        }
    }
}

/// The largest cache CPUID describes, in bytes: the deterministic cache
/// parameters (leaf 4 on Intel, 0x8000_001D on AMD, same layout), else
/// AMD's leaf 0x8000_0006 (L3 in 512 KiB units); 0 if none answers.
fn last_level_cache(amd: bool, max_leaf: u32) -> usize {
    let max_ext = cpuid(0x8000_0000, 0).eax;
    let leaf = if amd {
        (max_ext >= 0x8000_001D).then_some(0x8000_001D)
    } else {
        (max_leaf >= 4).then_some(4)
    };
    let mut largest = 0;
    if let Some(leaf) = leaf {
        for sub in 0..16 {
            let r = cpuid(leaf, sub);
            if r.eax & 0x1F == 0 {
                break; // no more caches
            }
            let ways = (r.ebx >> 22) as usize + 1;
            let partitions = ((r.ebx >> 12) & 0x3FF) as usize + 1;
            let line = (r.ebx & 0xFFF) as usize + 1;
            let sets = r.ecx as usize + 1;
            largest = largest.max(ways * partitions * line * sets);
        }
    }
    if largest == 0 && amd && max_ext >= 0x8000_0006 {
        largest = (cpuid(0x8000_0006, 0).edx >> 18) as usize * (512 << 10);
    }
    largest
}

/// The sizes at which the copy changes path on a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// `rep movsb` from this length (`usize::MAX`: never).
    pub movsb_min: usize,
    /// Non-temporal stores from this length (`usize::MAX`: never).
    pub nt_min: usize,
}

impl Thresholds {
    /// The thresholds for `cpu` (see the parent module for why).
    pub fn of(cpu: &Cpu) -> Thresholds {
        // `rep movsb` on AMD Zen runs at about half speed when the two
        // sides sit at nearby offsets within a page (4K aliasing), which
        // a region's page-aligned buffers and a user's malloc'd buffer
        // often do; the vector loops run at memcpy speed there, so AMD
        // keeps them. On Intel with ERMS, `rep movsb` moves whole lines
        // without the read-for-ownership and beats the loops from a few
        // KiB (the size glibc also switches at).
        let movsb_min = if cpu.erms && !cpu.amd {
            MOVSB_MIN_INTEL
        } else {
            usize::MAX
        };
        // Past half the last-level cache, source and destination together
        // no longer fit in it: the written lines would be evicted before
        // a reader reaches them, so write around the cache instead.
        let nt_min = if cpu.llc == 0 {
            usize::MAX
        } else {
            (cpu.llc / 2).max(NT_FLOOR)
        };
        Thresholds { movsb_min, nt_min }
    }

    /// The path for a copy of `len` bytes on `cpu`.
    #[inline]
    pub fn path(&self, cpu: &Cpu, len: usize) -> Path {
        if len >= self.nt_min {
            Path::NonTemporal
        } else if len >= self.movsb_min {
            Path::Movsb
        } else if len >= AVX_MIN && cpu.avx2 {
            Path::Avx2
        } else {
            Path::Sse2
        }
    }
}

/// `rep movsb` from here on Intel CPUs with ERMS.
pub const MOVSB_MIN_INTEL: usize = 4 << 10;
/// Never non-temporal below this, whatever the cache says.
pub const NT_FLOOR: usize = 1 << 20;

/// Copy `len` bytes by `path` (which the CPU must support: AVX2 only when
/// it has it; the others run on every x86_64 CPU).
///
/// # Safety
/// `src` valid for `len` bytes of reads and `dst` for `len` bytes of
/// writes for the duration of the call; the ranges do not overlap; no Rust
/// reference to the private side is used during the call; `Path::Avx2`
/// only on a CPU with AVX2.
#[inline]
pub unsafe fn copy(path: Path, src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: (every arm) the ranges are the caller's; AVX2 as the
    // caller promised; the others need SSE2 (baseline) or nothing.
    unsafe {
        match path {
            Path::Avx2 => copy_avx2(src, dst, len),
            Path::Movsb => copy_movsb(src, dst, len),
            Path::NonTemporal => copy_nt(src, dst, len),
            _ => vector::copy(src, dst, len),
        }
    }
}

/// `rep movsb`: the CPU's own string copy, in microcode.
///
/// # Safety
/// As [`copy`].
#[inline]
pub unsafe fn copy_movsb(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: `rep movsb` copies exactly `rcx = len` bytes from `rsi` to
    // `rdi`, forwards (the ABI keeps the direction flag clear at calls and
    // asm entry), all inside the caller's ranges; a race is defined as for
    // any `mov`. The registers it advances are declared.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags),
        );
    }
}

/// SSE2 loads and non-temporal stores (`movntdq`, which write around the
/// cache), then an `sfence`.
///
/// Non-temporal stores are weakly ordered: without the fence, a later
/// ordinary store (the seqlock's release store that publishes the content,
/// a plain `mov` on x86) could become visible before them, and a reader
/// could accept a buffer whose bytes have not all arrived. The `sfence`
/// at the end makes every store of the copy globally visible before any
/// store that follows it, so the copy returns with the same ordering as
/// the other paths.
///
/// # Safety
/// As [`copy`].
pub unsafe fn copy_nt(src: *const u8, dst: *mut u8, len: usize) {
    if len < 128 {
        // SAFETY: as the caller's.
        unsafe { vector::copy(src, dst, len) };
        return;
    }
    // `movntdq` needs a 16-byte aligned destination: copy the first 16
    // bytes with ordinary moves, then go on from the first aligned byte
    // of the destination (at most 15 bytes in, so overlapping them).
    let head = (16 - dst as usize % 16) % 16;
    let blocks = (len - head) / 64;
    // SAFETY:
    // - [0, 16) lies in the range (len >= 128);
    // - the loop copies `blocks` 64-byte blocks from offset `head`, i.e.
    //   [head, head + 64 * blocks) with 64 * blocks <= len - head, on both
    //   sides; its stores are 16-byte aligned (dst + head is);
    // - the last 64 bytes, [len - 64, len), are copied with ordinary moves
    //   (len >= 128 > 64), after the loop, then the fence;
    // - the registers used are declared; the fence touches no register.
    unsafe {
        copy16(src, dst);
        asm!(
            "2:",
            "movdqu {a}, xmmword ptr [{s}]",
            "movdqu {b}, xmmword ptr [{s} + 16]",
            "movdqu {c}, xmmword ptr [{s} + 32]",
            "movdqu {d}, xmmword ptr [{s} + 48]",
            "movntdq xmmword ptr [{t}], {a}",
            "movntdq xmmword ptr [{t} + 16], {b}",
            "movntdq xmmword ptr [{t} + 32], {c}",
            "movntdq xmmword ptr [{t} + 48], {d}",
            "add {s}, 64",
            "add {t}, 64",
            "dec {n}",
            "jnz 2b",
            s = inout(reg) src.add(head) => _,
            t = inout(reg) dst.add(head) => _,
            n = inout(reg) blocks => _,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
            options(nostack),
        );
        copy64(src.add(len - 64), dst.add(len - 64));
        asm!("sfence", options(nostack, preserves_flags));
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
        unsafe { vector::copy(src, dst, len) };
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
