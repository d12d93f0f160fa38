//! Command line and the settings each mode implies.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::harness::Plan;
use crate::mech::Mechanism;
use crate::suite::Suite;

/// `--help`: [`USAGE_HEAD`], the suites' names, [`USAGE_TAIL`].
pub fn usage(suites: &[Suite]) -> String {
    const FIRST: &str = "  --suites A,B       only these of: ";
    const NEXT: &str = "                     ";
    let mut text = USAGE_HEAD.to_owned();
    let mut line = FIRST.to_owned();
    for (i, s) in suites.iter().enumerate() {
        let word = if i + 1 < suites.len() {
            format!("{},", s.name)
        } else {
            s.name.to_owned()
        };
        if line.len() > NEXT.len() && line.len() + word.len() > 80 {
            text.push_str(&line);
            text.push('\n');
            line = NEXT.to_owned();
        }
        line.push_str(&word);
    }
    text.push_str(&line);
    text.push('\n');
    text + USAGE_TAIL
}

const USAGE_HEAD: &str = "\
filemap-bench: filemap against its peers, with real processes.

USAGE: filemap-bench [--smoke | --quick | --full] [--json FILE] [OPTIONS]

MODES
  (default), --full  every benchmark, >= 100,000 round trips per repetition
                     (payloads up to 64 KiB), 5 repetitions, payloads up to 4 MiB
  --quick            the same set, time-boxed (under 2 minutes on 2 cores)
  --smoke            a few hundred round trips per mechanism; no timing claims

OPTIONS
  --json FILE        write results as a JSON array to FILE, SVG plots beside it
  --mechanisms A,B   only these ping-pong mechanisms (default: all)
";

// No `\` after the quote: it would eat the indentation of `--runs`.
const USAGE_TAIL: &str = "  --runs N           repetitions per measurement
  --no-pin           do not pin the two processes to their own cores
  -h, --help         this text

MECHANISMS
  filemap-blocking filemap-spin filemap-adaptive futex-floor spin-floor
  unix-socket pipe
  tcp-loopback iceoryx2-spin iceoryx2-event shared_memory-raw_sync
";

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Smoke,
    Quick,
    Full,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    /// Payload sizes of the ping-pong and throughput benchmarks.
    pub fn payloads(self) -> Vec<usize> {
        let mut sizes = vec![8, 4 << 10, 64 << 10, 1 << 20];
        if self == Mode::Full {
            sizes.push(4 << 20);
        }
        sizes
    }

    pub fn runs(self) -> usize {
        match self {
            Mode::Smoke => 1,
            Mode::Quick => 3,
            Mode::Full => 5,
        }
    }

    /// Round trips of one ping-pong repetition at `payload` bytes.
    pub fn plan(self, payload: usize) -> Plan {
        let large = payload >= 1 << 20;
        let fixed = |warmup, n| Plan {
            payload,
            warmup,
            min: n,
            max: n,
            budget: Duration::ZERO,
        };
        match self {
            Mode::Smoke => fixed(20, 200),
            Mode::Quick => Plan {
                payload,
                warmup: if large { 20 } else { 500 },
                min: if large { 100 } else { 2_000 },
                max: 100_000,
                budget: Duration::from_millis(if large { 100 } else { 250 }),
            },
            // 100,000 round trips of 1 MiB through a pipe take minutes per
            // repetition; the large payloads get fewer (stated in the
            // report), still 100,000 over the five repetitions at 1 MiB.
            Mode::Full => match payload {
                p if p <= 64 << 10 => fixed(10_000, 100_000),
                p if p <= 1 << 20 => fixed(1_000, 20_000),
                _ => fixed(500, 5_000),
            },
        }
    }

    /// How long a free-running writer runs in the throughput benchmark.
    pub fn throughput_time(self) -> Duration {
        match self {
            Mode::Smoke => Duration::from_millis(100),
            Mode::Quick => Duration::from_millis(400),
            Mode::Full => Duration::from_secs(3),
        }
    }

    /// (payload, measured reads) of the slow-reader case of the throughput
    /// suite. Above 64 KiB, where a read falls back to the lock after two
    /// spoiled copies, so smoke mode exercises that path too. A 256 MiB
    /// region maps 512 MiB of `/dev/shm`, and each side holds a private
    /// 256 MiB buffer besides: full mode only.
    pub fn slow_reader_plan(self) -> Vec<(usize, usize)> {
        match self {
            Mode::Smoke => vec![(256 << 10, 10)],
            Mode::Quick => vec![(16 << 20, 30), (64 << 20, 15)],
            Mode::Full => vec![(16 << 20, 200), (64 << 20, 100), (256 << 20, 40)],
        }
    }

    /// Samples of in-process timings (each a batch of calls).
    pub fn samples(self) -> usize {
        match self {
            Mode::Smoke => 5,
            Mode::Quick => 31,
            Mode::Full => 201,
        }
    }

    /// Watcher counts of the scaling benchmark.
    pub fn watcher_counts(self) -> Vec<usize> {
        match self {
            Mode::Smoke => vec![1, 2, 4],
            _ => vec![1, 2, 4, 8, 16, 32],
        }
    }

    /// (warm-up, measured) publishes per watcher count.
    pub fn publishes(self) -> (usize, usize) {
        match self {
            Mode::Smoke => (5, 30),
            Mode::Quick => (30, 300),
            Mode::Full => (300, 5_000),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Args {
    pub mode: Mode,
    pub json: Option<PathBuf>,
    pub mechanisms: Vec<Mechanism>,
    /// Names of the suites to run, from the registry.
    pub suites: Vec<&'static str>,
    pub runs: usize,
    pub pin: bool,
    pub help: bool,
}

impl Args {
    pub fn parse(argv: &[String], known: &'static [Suite]) -> Result<Args> {
        let mut mode = Mode::Full;
        let mut json = None;
        let mut mechanisms = Mechanism::ALL.to_vec();
        let mut suites: Vec<&'static str> = known.iter().map(|s| s.name).collect();
        let mut runs = None;
        let mut pin = true;
        let mut help = false;
        let mut words = argv.iter();
        while let Some(word) = words.next() {
            let mut value = || words.next().ok_or_else(|| anyhow!("{word} needs a value"));
            match word.as_str() {
                "--smoke" => mode = Mode::Smoke,
                "--quick" => mode = Mode::Quick,
                "--full" => mode = Mode::Full,
                "--json" => json = Some(PathBuf::from(value()?)),
                "--mechanisms" => {
                    mechanisms = value()?
                        .split(',')
                        .map(|n| {
                            Mechanism::from_name(n).ok_or_else(|| anyhow!("unknown mechanism {n}"))
                        })
                        .collect::<Result<_>>()?;
                }
                "--suites" => {
                    suites = value()?
                        .split(',')
                        .map(|n| {
                            crate::suite::find(known, n)
                                .map(|s| s.name)
                                .ok_or_else(|| anyhow!("unknown suite {n}"))
                        })
                        .collect::<Result<_>>()?;
                }
                "--runs" => {
                    let n: usize = value()?.parse()?;
                    if n == 0 {
                        bail!("--runs must be at least 1");
                    }
                    runs = Some(n);
                }
                "--no-pin" => pin = false,
                "-h" | "--help" => help = true,
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        Ok(Args {
            mode,
            json,
            mechanisms,
            suites,
            runs: runs.unwrap_or(mode.runs()),
            pin,
            help,
        })
    }

    pub fn wants(&self, suite: &Suite) -> bool {
        self.suites.contains(&suite.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Args> {
        Args::parse(
            &words.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            crate::SUITES,
        )
    }

    #[test]
    fn defaults_to_the_full_set() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.mode, Mode::Full);
        assert_eq!(args.mechanisms.len(), 11);
        assert_eq!(args.runs, 5);
        assert!(args.pin);
        assert!(Mode::Full.payloads().contains(&(4 << 20)));
        assert!(!Mode::Quick.payloads().contains(&(4 << 20)));
    }

    #[test]
    fn help_lists_every_suite_as_before() {
        assert_eq!(
            parse(&[]).unwrap().suites,
            [
                "latency",
                "waiting",
                "inproc",
                "loan",
                "throughput",
                "scaling",
                "lifecycle",
                "growth"
            ]
        );
        let text = usage(crate::SUITES);
        assert!(
            text.contains(
                "\
  --mechanisms A,B   only these ping-pong mechanisms (default: all)
  --suites A,B       only these of: latency,waiting,inproc,loan,throughput,
                     scaling,lifecycle,growth
  --runs N           repetitions per measurement
"
            ),
            "{text}"
        );
    }

    #[test]
    fn parses_flags() {
        let args = parse(&[
            "--quick",
            "--json",
            "r.json",
            "--mechanisms",
            "pipe,filemap-spin",
            "--suites",
            "latency",
            "--runs",
            "2",
            "--no-pin",
        ])
        .unwrap();
        assert_eq!(args.mode, Mode::Quick);
        assert_eq!(args.json.as_deref(), Some(std::path::Path::new("r.json")));
        assert_eq!(args.mechanisms, [Mechanism::Pipe, Mechanism::FilemapSpin]);
        assert_eq!(args.suites, ["latency"]);
        assert!(parse(&["--suites", "latency,bogus"]).is_err());
        assert_eq!(args.runs, 2);
        assert!(!args.pin);
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--json"]).is_err());
        assert!(parse(&["--mechanisms", "carrier-pigeon"]).is_err());
        assert!(parse(&["--runs", "0"]).is_err());
    }

    #[test]
    fn full_mode_keeps_100k_round_trips_for_small_payloads() {
        for payload in [8, 4096, 65536] {
            let plan = Mode::Full.plan(payload);
            assert!(plan.min >= 100_000 && plan.max >= plan.min);
        }
        assert!(Mode::Full
            .slow_reader_plan()
            .iter()
            .any(|&(p, _)| p == 256 << 20));
        for mode in [Mode::Smoke, Mode::Quick] {
            assert!(mode
                .slow_reader_plan()
                .iter()
                .all(|&(p, n)| p > 64 << 10 && p <= 64 << 20 && n >= 10));
        }
        let smoke = Mode::Smoke.plan(8);
        assert!(smoke.min >= 100 && smoke.max <= 1_000);
    }
}
