//! Process plumbing shared by every benchmark: the run's namespace (names
//! of every OS object it creates, and their removal), child processes
//! (re-executions of this binary in a child role), messages and the
//! ping-pong driver.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::sys;

/// Longest any side waits for its peer before giving up. Generous: a noisy
/// 2-core machine can stall a process for a while; a dead peer is caught
/// sooner by the parent's exit checks and `PR_SET_PDEATHSIG`.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Sequence number that tells an echo child to exit.
pub const STOP: u64 = u64::MAX;

/// Prefix of every name a harness run gives an OS object.
const PREFIX: &str = "fmbench-";

/// The names of one harness run: every shared-memory object, region,
/// socket and directory it creates carries `fmbench-<pid>`, so the run
/// removes all of them when it ends (even on error or panic, through
/// `Drop`), and a later run removes those of a run that was killed.
pub struct Namespace {
    prefix: String,
    dir: PathBuf,
    counter: AtomicU32,
    owner: bool,
}

impl Namespace {
    /// A fresh namespace for this process; sweeps leftovers of dead runs.
    pub fn create() -> Result<Namespace> {
        sweep_dead_runs();
        let prefix = format!("{PREFIX}{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Namespace {
            prefix,
            dir,
            counter: AtomicU32::new(0),
            owner: true,
        })
    }

    /// The parent's namespace, seen from a child (which removes nothing).
    pub fn attach(prefix: &str, dir: &Path) -> Namespace {
        Namespace {
            prefix: prefix.to_owned(),
            dir: dir.to_owned(),
            counter: AtomicU32::new(0),
            owner: false,
        }
    }

    /// A unique name for an object of this run: `fmbench-<pid>-<n>-<what>`.
    pub fn name(&self, what: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}-{what}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Private directory of this run (sockets, iceoryx2's bookkeeping).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Remove every object of this run that is still there.
    pub fn clean(&self) {
        remove_run_objects(&self.prefix);
        let _ = std::fs::create_dir_all(&self.dir);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if self.owner {
            remove_run_objects(&self.prefix);
        }
    }
}

/// Remove `/dev/shm/*<prefix>*` (bare objects, `filemap.<prefix>...`
/// regions, iceoryx2 segments, mmap-sync files) and `$TMPDIR/<prefix>`.
fn remove_run_objects(prefix: &str) {
    // `fmbench-12-` must not match `fmbench-123-...` of another run.
    let needle = format!("{prefix}-");
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().contains(&needle) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(prefix));
}

/// Remove the objects of earlier runs whose process is gone.
fn sweep_dead_runs() {
    let mut dead = std::collections::BTreeSet::new();
    for dir in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(at) = name.find(PREFIX) else {
                continue;
            };
            let digits: String = name[at + PREFIX.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(pid) = digits.parse::<u32>() {
                if !sys::process_exists(pid) {
                    dead.insert(pid);
                }
            }
        }
    }
    for pid in dead {
        remove_run_objects(&format!("{PREFIX}{pid}"));
    }
}

/// Arguments of a child role: `key=value` words.
#[derive(Debug, Default, Clone)]
pub struct ChildArgs(BTreeMap<String, String>);

impl ChildArgs {
    pub fn parse(words: &[String]) -> Result<ChildArgs> {
        let mut map = BTreeMap::new();
        for word in words {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| anyhow!("child argument {word:?} is not key=value"))?;
            map.insert(k.to_owned(), v.to_owned());
        }
        Ok(ChildArgs(map))
    }

    pub fn get(&self, key: &str) -> Result<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("child argument {key} missing"))
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.get(key)?
            .parse()
            .with_context(|| format!("child argument {key}"))
    }

    pub fn opt(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The namespace the parent passed down.
    pub fn namespace(&self) -> Result<Namespace> {
        Ok(Namespace::attach(
            self.get("prefix")?,
            Path::new(self.get("dir")?),
        ))
    }
}

/// How the child's standard input is connected.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ChildStdinMode {
    Null,
    Piped,
}

/// A child process running this binary in a child role. Killed and reaped
/// on drop if it has not finished.
pub struct ChildProc {
    child: Child,
    stdout: Option<ChildStdout>,
    what: String,
    done: bool,
}

impl ChildProc {
    /// Spawn `current_exe __child <role> prefix=.. dir=.. <args...>`.
    /// Its stdout is piped back (the ready byte, then any report); its
    /// stderr goes to ours.
    pub fn spawn(
        ns: &Namespace,
        role: &str,
        args: &[String],
        stdin: ChildStdinMode,
    ) -> Result<ChildProc> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("__child")
            .arg(role)
            .arg(format!("prefix={}", ns.prefix()))
            .arg(format!("dir={}", ns.dir().display()))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(match stdin {
                ChildStdinMode::Null => Stdio::null(),
                ChildStdinMode::Piped => Stdio::piped(),
            });
        let what = format!("child {role} {}", args.join(" "));
        let mut child = cmd.spawn().with_context(|| format!("spawning {what}"))?;
        let stdout = child.stdout.take();
        Ok(ChildProc {
            child,
            stdout,
            what,
            done: false,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the child's ready byte (`R` on its stdout).
    pub fn wait_ready(&mut self) -> Result<()> {
        let out = self
            .stdout
            .as_mut()
            .ok_or_else(|| anyhow!("stdout taken"))?;
        let mut byte = [0u8; 1];
        match out.read(&mut byte) {
            Ok(1) if byte[0] == b'R' => Ok(()),
            Ok(_) => {
                let status = self.child.wait().ok();
                self.done = true;
                bail!("{} exited before it was ready ({status:?})", self.what)
            }
            Err(e) => Err(e).with_context(|| format!("reading ready byte of {}", self.what)),
        }
    }

    /// The child's stdin and stdout, for the pipe mechanism.
    pub fn take_pipes(&mut self) -> Result<(ChildStdin, ChildStdout)> {
        let stdin = self
            .child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("stdin not piped"))?;
        let stdout = self.stdout.take().ok_or_else(|| anyhow!("stdout taken"))?;
        Ok((stdin, stdout))
    }

    /// Whether the child has exited (successfully or not), without
    /// waiting; [`ChildProc::finish`] then collects its report and status.
    pub fn exited(&mut self) -> Result<bool> {
        Ok(self
            .child
            .try_wait()
            .with_context(|| format!("checking on {}", self.what))?
            .is_some())
    }

    /// Wait (at most [`TIMEOUT`]) for the child to exit successfully;
    /// returns what it printed after its ready byte.
    pub fn finish(mut self) -> Result<String> {
        let mut report = String::new();
        if let Some(mut out) = self.stdout.take() {
            out.read_to_string(&mut report)
                .with_context(|| format!("reading report of {}", self.what))?;
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.done = true;
                if !status.success() {
                    bail!("{} failed: {status}", self.what);
                }
                return Ok(report);
            }
            if Instant::now() >= deadline {
                bail!("{} did not exit within {TIMEOUT:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Child side: tell the parent we are set up.
pub fn child_ready() -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b"R")?;
    out.flush()?;
    Ok(())
}

/// Whether a buffer at `addr` sits just above or below a page boundary:
/// copies of 4–256 KiB between it and a page-aligned buffer then hit the
/// `rep movsb` 4K-aliasing slow path on AMD Zen 3 (glibc 2.36 here), 15–20×
/// slower. See docs/performance.md, "Known costs and findings".
pub fn near_page_boundary(addr: usize) -> bool {
    !(64..=4096 - 64).contains(&(addr % 4096))
}

/// A zeroed `len`-byte heap buffer for messages, placed away from the
/// 4K-aliasing window of page-aligned shared buffers, so that no mechanism
/// is slowed by where the allocator happened to put the harness's own
/// buffer. (Allocations that glibc serves with `mmap`, 128 KiB and up,
/// always start 16 bytes into a page; a few retries usually get a heap
/// one; 1 MiB and larger copies do not use `rep movsb` anyway.)
pub fn buffer(len: usize) -> Vec<u8> {
    let mut discarded = Vec::new();
    loop {
        let buf = vec![0u8; len];
        if !near_page_boundary(buf.as_ptr() as usize) || discarded.len() >= 16 {
            return buf;
        }
        discarded.push(buf);
    }
}

/// A message: `len` bytes whose first 8 hold a little-endian sequence
/// number; the rest is a fixed pattern.
pub struct Msg(Vec<u8>);

impl Msg {
    pub fn new(len: usize) -> Msg {
        assert!(len >= 8, "messages carry an 8-byte sequence number");
        let mut buf = buffer(len);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        Msg(buf)
    }

    #[inline]
    pub fn set_seq(&mut self, seq: u64) -> &[u8] {
        self.0[..8].copy_from_slice(&seq.to_le_bytes());
        &self.0
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The sequence number at the start of a received message.
#[inline]
pub fn seq_of(buf: &[u8]) -> u64 {
    match buf.get(..8) {
        Some(head) => u64::from_le_bytes(head.try_into().unwrap_or([0; 8])),
        None => 0,
    }
}

/// Check that a received message has the expected length and sequence.
#[inline]
pub fn expect(buf: &[u8], len: usize, seq: u64) -> Result<()> {
    if buf.len() != len || seq_of(buf) != seq {
        bail!(
            "got a message of {} bytes with sequence {}, expected {len} bytes with {seq}",
            buf.len(),
            seq_of(buf)
        );
    }
    Ok(())
}

/// How many round trips one repetition makes.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub payload: usize,
    pub warmup: usize,
    /// Measured round trips: at least `min`, at most `max`; in between,
    /// as many as fit `budget` at the pace the warm-up showed.
    pub min: usize,
    pub max: usize,
    pub budget: Duration,
}

/// One step of the parent's side of a ping-pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send message `seq` and wait for its echo.
    RoundTrip(u64),
    /// Send [`STOP`]; the child exits without answering.
    Stop,
}

/// Drive the parent's side: warm-up, then timed round trips, then stop.
/// Returns one latency in nanoseconds per measured round trip.
#[cfg(test)]
pub fn drive(plan: &Plan, step: impl FnMut(Step) -> Result<()>) -> Result<Vec<u64>> {
    drive_marked(plan, |_| {}, step)
}

/// Where [`drive_marked`] is: just before the first measured round trip,
/// or just after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Start,
    End,
}

/// [`drive`], calling `mark` around the measured round trips (the CPU
/// time of both processes is read there).
pub fn drive_marked(
    plan: &Plan,
    mut mark: impl FnMut(Mark),
    mut step: impl FnMut(Step) -> Result<()>,
) -> Result<Vec<u64>> {
    let started = Instant::now();
    for seq in 0..plan.warmup as u64 {
        step(Step::RoundTrip(seq))?;
    }
    let per_trip = started.elapsed().as_secs_f64() / plan.warmup.max(1) as f64;
    let fit = (plan.budget.as_secs_f64() / per_trip.max(1e-9)) as usize;
    let count = fit.clamp(plan.min, plan.max.max(plan.min));
    let mut samples = Vec::with_capacity(count);
    mark(Mark::Start);
    for i in 0..count as u64 {
        let t = Instant::now();
        step(Step::RoundTrip(plan.warmup as u64 + i))?;
        samples.push(t.elapsed().as_nanos() as u64);
    }
    mark(Mark::End);
    step(Step::Stop)?;
    Ok(samples)
}

/// Busy-poll `ready` with a PAUSE between polls, checking the clock every
/// 1024 polls; error after [`TIMEOUT`].
#[inline]
pub fn spin_until(what: &str, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let mut deadline = None;
    loop {
        for _ in 0..1024 {
            if ready()? {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        let now = Instant::now();
        match deadline {
            None => deadline = Some(now + TIMEOUT),
            Some(d) if now >= d => bail!("timed out after {TIMEOUT:?} waiting for {what}"),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_sequence() {
        let mut m = Msg::new(64);
        let bytes = m.set_seq(42).to_vec();
        assert_eq!(seq_of(&bytes), 42);
        assert!(expect(&bytes, 64, 42).is_ok());
        assert!(expect(&bytes, 64, 43).is_err());
        assert!(expect(&bytes[..63], 64, 42).is_err());
    }

    #[test]
    fn drive_makes_warmup_then_bounded_trips_then_stops() {
        let plan = Plan {
            payload: 8,
            warmup: 5,
            min: 10,
            max: 20,
            budget: Duration::from_secs(3600),
        };
        let mut steps = Vec::new();
        let samples = drive(&plan, |s| {
            steps.push(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(samples.len(), 20);
        assert_eq!(steps.len(), 5 + 20 + 1);
        assert_eq!(steps[0], Step::RoundTrip(0));
        assert_eq!(steps[24], Step::RoundTrip(24));
        assert_eq!(steps[25], Step::Stop);
    }

    #[test]
    fn message_buffers_avoid_the_4k_aliasing_window() {
        assert!(near_page_boundary(4096 + 16));
        assert!(near_page_boundary(8192 - 8));
        assert!(!near_page_boundary(4096 + 64));
        assert!(!near_page_boundary(4096 + 2048));
        for len in [8, 4096, 65536] {
            let buf = buffer(len);
            assert_eq!(buf.len(), len);
            assert!(!near_page_boundary(buf.as_ptr() as usize));
        }
    }

    #[test]
    fn child_args_parse_key_values() {
        let args = ChildArgs::parse(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(args.usize("a").unwrap(), 1);
        assert_eq!(args.get("b").unwrap(), "x=y");
        assert!(args.get("c").is_err());
        assert!(ChildArgs::parse(&["novalue".into()]).is_err());
    }
}
