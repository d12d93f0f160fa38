//! In-process timing: batches of calls, the median batch.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::stats::median_f64;

/// Nanoseconds per call of `f`: `samples` batches, each sized to last about
/// `batch_time`, after one warm-up batch; the median batch is reported.
pub fn per_call(
    samples: usize,
    batch_time: Duration,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    // Calibrate the batch size on a few calls.
    let t = Instant::now();
    let mut calls = 0u64;
    while calls < 3 || (t.elapsed() < batch_time / 10 && calls < 1_000_000) {
        f()?;
        calls += 1;
    }
    let per = t.elapsed().as_secs_f64() / calls as f64;
    let batch = ((batch_time.as_secs_f64() / per.max(1e-9)) as u64).clamp(1, 10_000_000);
    for _ in 0..batch {
        f()?;
    }
    let mut results = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let t = Instant::now();
        for _ in 0..batch {
            f()?;
        }
        results.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    Ok(median_f64(&mut results))
}

/// A `len`-byte page-aligned slice inside `storage` (resized to fit), the
/// destination of the memcpy baselines: like a region's buffer, it starts
/// on a page, and the source (a [`crate::harness::Msg`]) sits away from
/// the 4K-aliasing window.
pub fn page_aligned(storage: &mut Vec<u8>, len: usize) -> &mut [u8] {
    storage.clear();
    storage.resize(len + 4096, 0);
    let skip = (4096 - storage.as_ptr() as usize % 4096) % 4096;
    &mut storage[skip..skip + len]
}

/// GiB/s for `bytes` moved in `ns` nanoseconds.
pub fn gib_per_s(bytes: usize, ns: f64) -> f64 {
    bytes as f64 / ns * 1e9 / (1u64 << 30) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_something_and_converts_bandwidth() {
        let mut n = 0u64;
        let ns = per_call(3, Duration::from_micros(200), || {
            n = std::hint::black_box(n + 1);
            Ok(())
        })
        .unwrap();
        assert!(ns > 0.0 && ns < 1e6, "{ns}");
        assert!((gib_per_s(1 << 30, 1e9) - 1.0).abs() < 1e-9);
        let mut storage = Vec::new();
        let slice = page_aligned(&mut storage, 10_000);
        assert_eq!(slice.len(), 10_000);
        assert_eq!(slice.as_ptr() as usize % 4096, 0);
    }
}
