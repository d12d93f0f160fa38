//! The copy paths (see the parent module).

/// A way to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Relaxed 8-byte atomics, then bytes (portable).
    Words,
    /// x86_64: 16-byte `movdqu` loops.
    #[cfg(target_arch = "x86_64")]
    Sse2,
    /// x86_64: 32-byte `vmovdqu` loops (CPUs with AVX2).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86_64: `rep movsb`.
    #[cfg(target_arch = "x86_64")]
    Movsb,
    /// x86_64: `movdqu` loads, `movntdq` stores, `sfence`.
    #[cfg(target_arch = "x86_64")]
    NonTemporal,
    /// aarch64: `ldp`/`stp` of 16-byte vector registers.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Words => "words",
            #[cfg(target_arch = "x86_64")]
            Path::Sse2 => "sse2",
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Path::Movsb => "movsb",
            #[cfg(target_arch = "x86_64")]
            Path::NonTemporal => "nt",
            #[cfg(target_arch = "aarch64")]
            Path::Neon => "neon",
        }
    }
}
