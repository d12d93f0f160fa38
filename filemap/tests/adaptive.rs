//! Adaptive waiting: spins only while it pays, costs next to nothing
//! while it does not. (Its lost-wake-up test is in load.rs, beside the
//! blocking one; its latency is measured in the bench harness.)

mod common;

use filemap::TextExt;
use std::time::{Duration, Instant};

use common::{unique, Cleanup};
use filemap::FileMap;

/// The tests of this file measure spinning and CPU time: run one at a time,
/// so that none of them is the load another one backs off from.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The calling thread's resource usage so far.
#[cfg(target_os = "linux")]
fn thread_usage() -> libc::rusage {
    // SAFETY: getrusage(2) fills the zeroed struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage
    }
}

/// CPU time (user + system) used so far by the calling thread.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    let usage = thread_usage();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU a waiter thread uses while another thread publishes `changes`
/// times, `every` apart; `wait` is the wait under test.
#[cfg(target_os = "linux")]
fn waiter_cpu(
    name: &str,
    changes: u64,
    every: Duration,
    wait: fn(&FileMap, u64) -> Option<u64>,
) -> (Duration, Duration) {
    let waiter = FileMap::open(name).unwrap();
    let writer = FileMap::open(name).unwrap();
    let start_gen = waiter.generation();
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let before = thread_cpu();
            let started = Instant::now();
            let mut seen = start_gen;
            while seen < start_gen + changes {
                seen = wait(&waiter, seen).expect("a change in time");
            }
            (thread_cpu() - before, started.elapsed())
        });
        for i in 0..changes {
            std::thread::sleep(every);
            writer.write(&i.to_le_bytes()).unwrap();
        }
        handle.join().unwrap()
    })
}

/// Voluntary context switches of the calling thread so far: one per
/// sleep, none while it spins.
#[cfg(target_os = "linux")]
fn thread_sleeps() -> i64 {
    thread_usage().ru_nvcsw
}

/// Pin the calling thread to `cpu`.
#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) {
    // SAFETY: the set is zeroed, then filled by CPU_SET within its size,
    // and handed to sched_setaffinity(2) with that size (0 = this thread).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0
        );
    }
}

/// Latency-sensitive programs pin their threads to a core. The spinner
/// limit is about the machine's cores, not the thread's affinity: a
/// pinned waiter used to count one core, leave it to "the publisher", and
/// never spin at all.
#[cfg(target_os = "linux")]
#[test]
fn adaptive_waiters_pinned_to_a_core_each_still_spin_for_a_prompt_peer() {
    let _serial = serial();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cpus >= 2,
        "this test needs two CPUs; this machine has {cpus}"
    );
    // A machine loaded by something else makes the waiters sleep on
    // purpose (they back off while more threads are runnable than CPUs).
    // So each attempt waits a while for a quiet machine and watches the
    // run queue while it runs: an attempt during which the machine was
    // crowded proves nothing either way. A quiet attempt that slept fails.
    let mut quiet_failures = Vec::new();
    for _attempt in 0..5 {
        wait_for_quiet(cpus, Duration::from_secs(5));
        let ((answered, sleeps), crowded_share) = watching_the_run_queue(cpus, pinned_ping_pong);
        assert_eq!(answered, ROUNDS);
        if sleeps < ROUNDS as i64 / 2 {
            return;
        }
        if crowded_share <= 0.1 {
            quiet_failures.push((sleeps, crowded_share));
        }
    }
    assert!(
        quiet_failures.is_empty(),
        "the pinned waiter slept in more than half of {ROUNDS} waits on a quiet machine: \
         (sleeps, share of run-queue samples that were crowded) = {quiet_failures:?}"
    );
    eprintln!(
        "inconclusive: the machine was crowded by other work in every attempt, where \
         the waiters back off on purpose (/proc/loadavg: {:?})",
        std::fs::read_to_string("/proc/loadavg")
    );
}

/// Threads runnable on the machine now: the fourth field of
/// `/proc/loadavg`, which counts the reader itself.
#[cfg(target_os = "linux")]
fn runnable() -> usize {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_ascii_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(running, _)| running.parse().ok())
        .unwrap_or(0)
}

/// Wait up to `limit` for a moment when the two waiters would have the
/// machine's `cpus` CPUs to themselves (the reader counts as one).
#[cfg(target_os = "linux")]
fn wait_for_quiet(cpus: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while runnable() + 1 > cpus && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `f` while a third thread samples the run queue every 5 ms, and
/// return its result with the share of samples that saw more threads
/// runnable than the two waiters and the sampler itself on `cpus` CPUs.
#[cfg(target_os = "linux")]
fn watching_the_run_queue<T: Send>(cpus: usize, f: impl FnOnce() -> T + Send) -> (T, f64) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut samples, mut crowded) = (0u32, 0u32);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                samples += 1;
                // The sampler is running as it reads: one more than the
                // waiters' own crowding rule counts.
                crowded += u32::from(runnable() > cpus + 1);
                std::thread::sleep(Duration::from_millis(5));
            }
            f64::from(crowded) / f64::from(samples.max(1))
        });
        let result = f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (result, sampler.join().unwrap())
    })
}

#[cfg(target_os = "linux")]
const ROUNDS: u64 = 4000;

/// Two threads pinned to a core each ping-pong `ROUNDS` times with
/// adaptive waits: the rounds answered and the ponger's sleeps.
#[cfg(target_os = "linux")]
fn pinned_ping_pong() -> (u64, i64) {
    let (ping_name, pong_name) = (unique("pinned-ping"), unique("pinned-pong"));
    let _cleanup = (Cleanup(ping_name.clone()), Cleanup(pong_name.clone()));
    let ping = FileMap::open(&ping_name).unwrap();
    let pong = FileMap::open(&pong_name).unwrap();
    let timeout = Some(Duration::from_secs(10));
    std::thread::scope(|s| {
        let ponger = s.spawn(|| {
            pin_to(1);
            let ping = FileMap::open(&ping_name).unwrap();
            let pong = FileMap::open(&pong_name).unwrap();
            let before = thread_sleeps();
            let mut seen = 0;
            for round in 1..=ROUNDS {
                seen = ping
                    .wait_change(
                        seen,
                        timeout.map_or(filemap::Wait::adaptive(), |t| {
                            filemap::Wait::adaptive().timeout(t)
                        }),
                    )
                    .expect("a ping");
                pong.write(&round.to_le_bytes()).unwrap();
            }
            (seen, thread_sleeps() - before)
        });
        pin_to(0);
        let mut seen = 0;
        for round in 1..=ROUNDS {
            ping.write(&round.to_le_bytes()).unwrap();
            seen = pong
                .wait_change(
                    seen,
                    timeout.map_or(filemap::Wait::adaptive(), |t| {
                        filemap::Wait::adaptive().timeout(t)
                    }),
                )
                .expect("a pong");
        }
        ponger.join().unwrap()
    })
}

#[cfg(target_os = "linux")]
#[test]
fn a_waiter_for_rare_changes_costs_what_a_blocking_one_costs() {
    let _serial = serial();
    let name = unique("adaptive-rare");
    let _cleanup = Cleanup(name.clone());
    let blocking = waiter_cpu(&name, 60, Duration::from_millis(10), |m, seen| {
        m.wait_change(seen, filemap::Wait::sleep().timeout(common::STEP))
            .ok()
    });
    let adaptive = waiter_cpu(&name, 60, Duration::from_millis(10), |m, seen| {
        m.wait_change(seen, filemap::Wait::adaptive().timeout(common::STEP))
            .ok()
    });
    let share = |(cpu, wall): (Duration, Duration)| cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "CPU share of a waiter, one change per 10 ms: blocking {:.3} %, adaptive {:.3} %",
        100.0 * share(blocking),
        100.0 * share(adaptive)
    );
    assert!(
        share(adaptive) - share(blocking) < 0.02,
        "within 2 percentage points of blocking"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_adaptive_waiter_uses_next_to_no_cpu() {
    let _serial = serial();
    let name = unique("adaptive-idle");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let before = thread_cpu();
    let start = Instant::now();
    assert_eq!(
        map.wait_change(
            map.generation(),
            filemap::Wait::adaptive().timeout(Duration::from_secs(1))
        )
        .ok(),
        None
    );
    let waited = start.elapsed();
    let cpu = thread_cpu() - before;
    eprintln!("idle adaptive waiter: {cpu:?} of CPU in {waited:?}");
    assert!(waited >= Duration::from_secs(1));
    assert!(cpu < Duration::from_millis(20), "{cpu:?}");
}

#[test]
fn an_adaptive_wait_is_woken_across_processes_and_honours_its_timeout() {
    let _serial = serial();
    let name = unique("adaptive-wake");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    let start = Instant::now();
    assert_eq!(
        map.wait_change(
            seen,
            filemap::Wait::adaptive().timeout(Duration::from_millis(40))
        )
        .ok(),
        None
    );
    assert!(start.elapsed() >= Duration::from_millis(40));
    let writer = common::Child::spawn("write", &name);
    writer.expect("open pid=");
    let mut writer = writer;
    writer.send("hello");
    let woke = map
        .wait_change(seen, filemap::Wait::adaptive().timeout(common::STEP))
        .ok();
    assert_eq!(woke, Some(seen + 1));
    assert_eq!(map.read_string().unwrap().content, "hello");
}

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}
