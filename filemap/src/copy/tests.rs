//! Every copy path against `copy_from_slice`, each called directly (so
//! every path runs on any CPU that can run it, whatever the process would
//! choose): each length up to 300 and some large ones, every misalignment
//! of the private side, sentinels around the destination, guard pages
//! around both sides, and a proptest.

use proptest::prelude::*;

use super::{load_shared, store_shared, words};

/// A copy of `len` bytes from `src` to `dst`.
type Copy = unsafe fn(*const u8, *mut u8, usize);

/// # Safety
/// As `store_shared` (the destination is the shared side).
unsafe fn store_public(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller's ranges.
    unsafe { store_shared(std::slice::from_raw_parts(src, len), dst) }
}

/// # Safety
/// As `words::store`.
unsafe fn store_words(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller's ranges.
    unsafe { words::store(std::slice::from_raw_parts(src, len), dst) }
}

/// `(name, copy, shared side is the source)`.
// Only x86-64 and aarch64 add copies of their own.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_mut)
)]
fn copies() -> Vec<(&'static str, Copy, bool)> {
    let mut all: Vec<(&'static str, Copy, bool)> = vec![
        ("load_shared", load_shared, true),
        ("store_shared", store_public, false),
        ("words::load", words::load, true),
        ("words::store", store_words, false),
    ];
    // The 16-byte path: x86_64's SSE2, aarch64's only one.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        all.push(("vector::copy load", super::vector::copy, true));
        all.push(("vector::copy store", super::vector::copy, false));
    }
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86;
        all.push(("x86::copy_movsb load", x86::copy_movsb, true));
        all.push(("x86::copy_movsb store", x86::copy_movsb, false));
        all.push(("x86::copy_nt load", x86::copy_nt, true));
        all.push(("x86::copy_nt store", x86::copy_nt, false));
        if std::is_x86_feature_detected!("avx2") {
            /// # Safety
            /// As `copy_avx2`, whose CPU condition this checked.
            unsafe fn avx2(src: *const u8, dst: *mut u8, len: usize) {
                // SAFETY: the CPU has AVX2 (checked before this was
                // listed); the ranges are the caller's.
                unsafe { x86::copy_avx2(src, dst, len) }
            }
            all.push(("x86::copy_avx2 load", avx2, true));
            all.push(("x86::copy_avx2 store", avx2, false));
        }
    }
    all
}

/// The names `FILEMAP_COPY` takes, and what a CPU cannot run or a typo
/// falls back from (the automatic choice, never a panic).
#[test]
fn forcing_names_a_path_or_falls_back_to_auto() {
    let plan = super::Plan::detect();
    let parse = |v: &str| super::parse(v, &plan).map(super::Path::name);
    assert_eq!(parse("words"), Some("words"));
    assert_eq!(parse("auto"), None);
    assert_eq!(parse("rep"), None);
    assert_eq!(parse(""), None);
    #[cfg(target_arch = "x86_64")]
    {
        for name in ["sse2", "movsb", "nt"] {
            assert_eq!(parse(name), Some(name));
        }
        let avx2 = std::is_x86_feature_detected!("avx2");
        assert_eq!(parse("avx2"), avx2.then_some("avx2"));
        assert_eq!(parse("neon"), None);
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(parse("neon"), Some("neon"));
        assert_eq!(parse("sse2"), None);
    }
}

/// A forced path applies to every size; the automatic choice never picks a
/// path the CPU cannot run.
#[test]
fn the_process_path_is_the_forced_one_or_a_runnable_one() {
    let forced = std::env::var(super::ENV).ok();
    for len in [0, 64, 4096, 1 << 20, 64 << 20] {
        let path = super::path_for(len).name();
        match forced.as_deref() {
            Some(f) if f != "auto" && !f.is_empty() && f != "avx2" => assert_eq!(path, f),
            #[cfg(target_arch = "x86_64")]
            _ if path == "avx2" => assert!(std::is_x86_feature_detected!("avx2")),
            _ => {}
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn thresholds_follow_the_cpu() {
    use super::x86::{Cpu, Thresholds, MOVSB_MIN_INTEL, NT_FLOOR};
    use super::Path;
    let intel = Cpu {
        avx2: true,
        erms: true,
        amd: false,
        llc: 32 << 20,
    };
    let t = Thresholds::of(&intel);
    assert_eq!(t.movsb_min, MOVSB_MIN_INTEL);
    assert_eq!(t.nt_min, 16 << 20);
    assert_eq!(t.path(&intel, 64), Path::Sse2);
    assert_eq!(t.path(&intel, 1024), Path::Avx2);
    assert_eq!(t.path(&intel, 1 << 20), Path::Movsb);
    assert_eq!(t.path(&intel, 16 << 20), Path::NonTemporal);
    let amd = Cpu { amd: true, ..intel };
    let t = Thresholds::of(&amd);
    assert_eq!(t.path(&amd, 1 << 20), Path::Avx2);
    assert_eq!(t.path(&amd, 16 << 20), Path::NonTemporal);
    // No ERMS, no AVX2, a cache CPUID does not describe: the SSE2 loop.
    let old = Cpu {
        avx2: false,
        erms: false,
        amd: false,
        llc: 0,
    };
    let t = Thresholds::of(&old);
    assert_eq!(t.path(&old, 64 << 20), Path::Sse2);
    // A tiny cache never sends mid-size copies around it.
    let small = Cpu {
        llc: 256 << 10,
        ..old
    };
    assert_eq!(Thresholds::of(&small).nt_min, NT_FLOOR);
}

/// Copies shorter than `SHORT` skip the plan: every plan a CPU can get
/// must give them the path they take, and this process's does.
#[test]
fn short_copies_take_the_path_every_plan_gives_them() {
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86::{Cpu, Thresholds};
        for bits in 0..8u8 {
            for llc in [0, 256 << 10, 512 << 10, 32 << 20] {
                let cpu = Cpu {
                    avx2: bits & 1 != 0,
                    erms: bits & 2 != 0,
                    amd: bits & 4 != 0,
                    llc,
                };
                let t = Thresholds::of(&cpu);
                for len in 0..super::SHORT {
                    assert_eq!(t.path(&cpu, len), super::SHORT_PATH, "{cpu:?}, {len} B");
                }
            }
        }
    }
    for len in (0..=300).chain([4096, 1 << 20]) {
        assert_eq!(super::path_for(len), super::plan().path(len), "{len} B");
    }
}

const PAD: usize = 64;
const SENTINEL: u8 = 0xA5;

/// Copy `len` bytes with `copy` between a 64-aligned shared side and a
/// private side at `misalign` past a 64-byte boundary; check the bytes
/// and that the `PAD` bytes around the destination kept their sentinel.
fn check(name: &str, copy: Copy, shared_src: bool, len: usize, misalign: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8 ^ 0x5A).collect();
    // Room for padding on both sides plus alignment slack.
    let mut shared = vec![SENTINEL; len + 2 * PAD + 64];
    let mut private = vec![SENTINEL; len + 2 * PAD + 64];
    let s_off = PAD + (64 - shared.as_ptr() as usize % 64) % 64;
    let p_off = PAD + (64 - private.as_ptr() as usize % 64) % 64 - PAD + misalign;
    let (src_buf, src_off, dst_buf, dst_off) = if shared_src {
        shared[s_off..s_off + len].copy_from_slice(&data);
        (&mut shared, s_off, &mut private, p_off)
    } else {
        private[p_off..p_off + len].copy_from_slice(&data);
        (&mut private, p_off, &mut shared, s_off)
    };
    let before = src_buf.clone();
    // SAFETY: both ranges lie inside their own vectors (offset + len <=
    // len + 2 PAD + 64), which do not overlap; the shared side is 64-byte
    // aligned, as the word copies need.
    unsafe {
        copy(
            src_buf.as_ptr().add(src_off),
            dst_buf.as_mut_ptr().add(dst_off),
            len,
        )
    };
    assert_eq!(
        &dst_buf[dst_off..dst_off + len],
        &data[..],
        "{name}: len {len}, misalign {misalign}"
    );
    assert!(
        dst_buf[..dst_off].iter().all(|&b| b == SENTINEL),
        "{name}: wrote before the range (len {len}, misalign {misalign})"
    );
    assert!(
        dst_buf[dst_off + len..].iter().all(|&b| b == SENTINEL),
        "{name}: wrote after the range (len {len}, misalign {misalign})"
    );
    assert_eq!(*src_buf, before, "{name}: changed its source");
}

#[test]
fn every_length_to_300_at_every_misalignment() {
    for (name, copy, shared_src) in copies() {
        for len in 0..=300 {
            for misalign in 0..64 {
                check(name, copy, shared_src, len, misalign);
            }
        }
    }
}

#[test]
fn large_lengths_at_some_misalignments() {
    let lengths = [
        511,
        512,
        513,
        4095,
        4096,
        4097,
        (64 << 10) + 17,
        1 << 20,
        (1 << 20) + 127,
    ];
    for (name, copy, shared_src) in copies() {
        for len in lengths {
            for misalign in [0, 1, 7, 8, 15, 16, 31, 32, 33, 63] {
                check(name, copy, shared_src, len, misalign);
            }
        }
    }
}

/// Ranges that end (or start) right at an inaccessible page: a single byte
/// read or written outside the range is a SIGSEGV. The assembly copies
/// need no alignment, so they get every offset into the page.
#[cfg(target_os = "linux")]
#[test]
fn never_touches_a_guard_page() {
    use rustix::mm::{mmap_anonymous, mprotect, munmap, MapFlags, MprotectFlags, ProtFlags};
    const PAGE: usize = 4096;
    /// Each side: [guard page][2 usable pages][guard page].
    const PAGES: usize = 4;
    let map = |pages: usize| {
        // SAFETY: a fresh anonymous private mapping; nothing aliases it.
        let p = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                pages * PAGE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .expect("mmap");
        let p = p.cast::<u8>();
        // SAFETY: the first and last page of the mapping just made.
        unsafe {
            mprotect(p.cast(), PAGE, MprotectFlags::empty()).expect("mprotect");
            mprotect(
                p.add((pages - 1) * PAGE).cast(),
                PAGE,
                MprotectFlags::empty(),
            )
            .expect("mprotect");
        }
        p
    };
    let a = map(PAGES);
    let b = map(PAGES);
    let usable = (PAGES - 2) * PAGE;
    // SAFETY: the usable pages of the mappings just made.
    let (a0, b0) = unsafe { (a.add(PAGE), b.add(PAGE)) };
    let mut lengths: Vec<usize> = (0..=300).collect();
    lengths.extend([511, 512, 513, 1000, 4095, 4096, 4097, usable]);
    for (name, copy, shared_src) in copies() {
        // The word copies need the shared side 8-aligned; the others need
        // no alignment at all.
        let words = name.starts_with("words");
        for &len in &lengths {
            // Flush against the start and the end of each side, and between.
            let room = usable - len;
            let offsets = [0, room, room.min(1), room / 2];
            for &src_off in &offsets {
                for &dst_off in &offsets {
                    let (s, d) = match (words, shared_src) {
                        (true, true) => (src_off & !7, dst_off),
                        (true, false) => (src_off, dst_off & !7),
                        (false, _) => (src_off, dst_off),
                    };
                    // SAFETY: both ranges lie in the usable (read-write)
                    // pages of two separate mappings (s, d <= room).
                    unsafe { copy(a0.add(s), b0.add(d), len) };
                }
            }
        }
    }
    // SAFETY: the mappings made above; no pointer into them is used after.
    unsafe {
        munmap(a.cast(), PAGES * PAGE).expect("munmap");
        munmap(b.cast(), PAGES * PAGE).expect("munmap");
    }
}

proptest! {
    #[test]
    fn copies_like_copy_from_slice(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        misalign in 0usize..64,
        which in 0usize..64,
    ) {
        let all = copies();
        let (name, copy, shared_src) = all[which % all.len()];
        let len = data.len();
        let mut shared = vec![0u8; len + 128];
        let mut private = vec![0u8; len + 128];
        let s_off = (64 - shared.as_ptr() as usize % 64) % 64;
        let p_off = misalign;
        if shared_src {
            shared[s_off..s_off + len].copy_from_slice(&data);
            // SAFETY: both ranges inside their vectors; shared side aligned.
            unsafe { copy(shared.as_ptr().add(s_off), private.as_mut_ptr().add(p_off), len) };
            prop_assert_eq!(&private[p_off..p_off + len], &data[..], "{}", name);
        } else {
            private[p_off..p_off + len].copy_from_slice(&data);
            // SAFETY: both ranges inside their vectors; shared side aligned.
            unsafe { copy(private.as_ptr().add(p_off), shared.as_mut_ptr().add(s_off), len) };
            prop_assert_eq!(&shared[s_off..s_off + len], &data[..], "{}", name);
        }
    }
}
