//! Order statistics over latency samples and the choice of the median
//! repetition.

#![forbid(unsafe_code)]

/// Order statistics of one set of samples (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at
/// least `p` of all samples at or below it. `p` in `0.0..=1.0`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sort `samples` and summarise them. An empty set gives all zeros.
pub fn summarize(samples: &mut [u64]) -> Summary {
    samples.sort_unstable();
    let count = samples.len();
    let mean = if count == 0 {
        0.0
    } else {
        samples.iter().map(|&s| s as f64).sum::<f64>() / count as f64
    };
    Summary {
        count,
        min: samples.first().copied().unwrap_or(0),
        median: percentile(samples, 0.5),
        p99: percentile(samples, 0.99),
        p999: percentile(samples, 0.999),
        max: samples.last().copied().unwrap_or(0),
        mean,
    }
}

/// The repetitions of one measurement and the one reported.
#[derive(Debug, Clone)]
pub struct Repeated {
    /// The median repetition (by its median; the lower one of an even
    /// count), whose figures are reported.
    pub chosen: Summary,
    /// Every repetition, in the order they ran.
    pub runs: Vec<Summary>,
}

impl Repeated {
    pub fn new(runs: Vec<Summary>) -> Option<Repeated> {
        let mut order: Vec<&Summary> = runs.iter().collect();
        order.sort_by_key(|s| s.median);
        let chosen = **order.get(order.len().checked_sub(1)? / 2)?;
        Some(Repeated { chosen, runs })
    }

    /// Smallest and largest median over the repetitions.
    pub fn median_spread(&self) -> (u64, u64) {
        spread(self.runs.iter().map(|r| r.median))
    }

    /// Smallest and largest p99 over the repetitions.
    pub fn p99_spread(&self) -> (u64, u64) {
        spread(self.runs.iter().map(|r| r.p99))
    }
}

fn spread(values: impl Iterator<Item = u64>) -> (u64, u64) {
    values.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// Median of floating-point values (mean of the middle two for an even
/// count); `NaN` for none.
pub fn median_f64(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&sorted, 0.5), 500);
        assert_eq!(percentile(&sorted, 0.99), 990);
        assert_eq!(percentile(&sorted, 0.999), 999);
        assert_eq!(percentile(&sorted, 1.0), 1000);
        assert_eq!(percentile(&sorted, 0.0), 1);
        assert_eq!(percentile(&[7], 0.999), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn summary_sorts_and_reports_tails() {
        let mut samples: Vec<u64> = (1..=100_000).rev().collect();
        let s = summarize(&mut samples);
        assert_eq!(s.count, 100_000);
        assert_eq!((s.min, s.max), (1, 100_000));
        assert_eq!(s.median, 50_000);
        assert_eq!(s.p99, 99_000);
        assert_eq!(s.p999, 99_900);
        assert!((s.mean - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn an_outlier_moves_the_tail_not_the_median() {
        let mut samples = vec![100; 1000];
        samples[3] = 1_000_000;
        let s = summarize(&mut samples);
        assert_eq!(s.median, 100);
        assert_eq!(s.p99, 100);
        assert_eq!(s.max, 1_000_000);
    }

    #[test]
    fn the_median_repetition_is_chosen_and_spread_kept() {
        let run = |median| Summary {
            count: 1,
            min: median,
            median,
            p99: median * 2,
            p999: median * 3,
            max: median * 4,
            mean: median as f64,
        };
        let r = Repeated::new(vec![run(30), run(10), run(20)]).unwrap();
        assert_eq!(r.chosen.median, 20);
        assert_eq!(r.chosen.p99, 40);
        assert_eq!(r.median_spread(), (10, 30));
        assert_eq!(r.p99_spread(), (20, 60));
        let even = Repeated::new(vec![run(40), run(10), run(30), run(20)]).unwrap();
        assert_eq!(even.chosen.median, 20);
        assert!(Repeated::new(Vec::new()).is_none());
    }

    #[test]
    fn float_median() {
        assert_eq!(median_f64(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median_f64(&mut []).is_nan());
    }
}
