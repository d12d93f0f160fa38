//! A lock, a guard, a write loan, a handle or a watcher inherited through
//! `fork()`.
//!
//! The lock belongs to the parent. A forked child that publishes through
//! an inherited guard or loan would publish at the same time as the
//! parent, and readers would get mixed content; one that unlocks would
//! release nothing (the lock word names the parent's thread) yet be told
//! it did. Every such call gives `ForkedHandle` and publishes nothing;
//! the parent goes on as if the child did not exist.

mod common;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    #[cfg(target_os = "linux")]
    match std::env::var("FILEMAP_CHILD_ROLE").as_deref() {
        Ok("fork-owned-guard") => linux::owned_guard(),
        Ok("fork-guard") => linux::guard(),
        Ok("fork-loan") => linux::loan(),
        Ok("fork-handle") => linux::fork_handle(),
        Ok("fork-watcher") => linux::fork_watcher(),
        Ok("fork-held") => linux::held_locks(),
        _ => {}
    }
    common::child_main();
}

#[cfg(target_os = "linux")]
mod linux {
    use filemap::TextExt;
    use std::io::Write;
    use std::time::{Duration, Instant};

    use filemap::{Error, FileMap};

    use crate::common::{self, say, unique, Child, Cleanup};

    fn forked<T: std::fmt::Debug>(what: &str, result: filemap::Result<T>) -> String {
        match result {
            Err(Error::ForkedHandle { .. }) => format!("{what}=forked"),
            other => format!("{what}={other:?}"),
        }
    }

    /// `fork(2)`: the child's pid in the parent, 0 in the child.
    fn fork() -> libc::pid_t {
        // SAFETY: this role process runs no thread of its own that the
        // child would miss (libtest runs `child_role` alone); the child
        // leaves by `child_says`, with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        pid
    }

    /// In the forked child: report `lines`, then leave at once, running
    /// no destructor (the inherited values are the parent's).
    fn child_says(lines: &[String]) -> ! {
        for line in lines {
            say(line);
        }
        // SAFETY: `_exit(2)` ends the forked child without the harness's
        // exit path.
        unsafe { libc::_exit(0) }
    }

    /// In the parent: wait for the child forked as `pid`.
    fn reap(pid: libc::pid_t) {
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }

    /// After the child's attempts: the region still holds what the parent
    /// published last, at the generation it had.
    fn unchanged(map: &FileMap, generation: u64, content: &[u8]) -> String {
        let now = map.read().unwrap();
        format!(
            "unchanged={}",
            now.generation == generation && now.content == content
        )
    }

    pub fn owned_guard() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        let generation = map.write(b"parent").unwrap().generation;
        let mut guard = map.lock_owned().unwrap();
        let pid = fork();
        if pid == 0 {
            child_says(&[
                forked("read", guard.read()),
                forked("publish", guard.publish(b"child")),
                forked("unlock", guard.unlock()),
                format!("still-held={}", guard.is_held()),
                // A wait on the inherited handle returns at once, saying why.
                forked("wait", map.wait_change(generation, filemap::Wait::sleep())),
            ]);
        }
        reap(pid);
        say(unchanged(&map, generation, b"parent"));
        // The lock is still the parent's, and still works.
        let published = guard.publish(b"parent again").unwrap();
        say(format!("parent published={}", published.generation));
        guard.unlock().unwrap();
        say("parent unlocked");
        std::process::exit(0);
    }

    pub fn guard() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        let generation = map.write(b"parent").unwrap().generation;
        let mut guard = map.lock().unwrap();
        let pid = fork();
        if pid == 0 {
            child_says(&[
                forked("read", guard.read()),
                forked("read_into", guard.read_into(&mut Vec::new())),
                forked("publish", guard.publish(b"child")),
            ]);
        }
        reap(pid);
        say(unchanged(&map, generation, b"parent"));
        let published = guard.publish(b"parent again").unwrap();
        say(format!("parent published={}", published.generation));
        drop(guard);
        say("parent unlocked");
        std::process::exit(0);
    }

    pub fn loan() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::builder(&name).capacity(1 << 20).open().unwrap();
        let generation = map.write(b"parent").unwrap().generation;
        let mut loan = map.loan().unwrap();
        loan.write_all(b"parent's loan").unwrap();
        let pid = fork();
        if pid == 0 {
            // Small writes stay in the loan's private staging; a large one
            // reaches the region, and is refused.
            let large = forked("append", loan.append(&vec![b'c'; 200 << 10]));
            child_says(&[large, forked("commit", loan.commit())]);
        }
        reap(pid);
        say(unchanged(&map, generation, b"parent"));
        let published = loan.commit().unwrap();
        say(format!("parent published={}", published.generation));
        say(format!(
            "parent content ok={}",
            map.read().unwrap().content == b"parent's loan"
        ));
        std::process::exit(0);
    }

    /// After the child tried, another process takes the lock only once the
    /// parent released it: the child released nothing.
    fn lock_was_the_parents_throughout(name: &str, role: &Child) {
        let other = FileMap::builder(name)
            .lock_timeout(Duration::from_secs(20))
            .open()
            .unwrap();
        assert_eq!(role.line(), "parent unlocked");
        let guard = other.lock().unwrap();
        assert!(!guard.owner_died());
    }

    #[test]
    fn an_owned_guard_inherited_through_fork_publishes_and_releases_nothing() {
        let name = unique("fork-owned");
        let _cleanup = Cleanup(name.clone());
        let role = Child::spawn("fork-owned-guard", &name);
        assert_eq!(role.line(), "read=forked");
        assert_eq!(role.line(), "publish=forked");
        assert_eq!(role.line(), "unlock=forked");
        assert_eq!(role.line(), "still-held=true");
        assert_eq!(role.line(), "wait=forked");
        assert_eq!(role.line(), "unchanged=true");
        // One publish by the parent: the child's did not count.
        assert_eq!(role.line(), "parent published=2");
        lock_was_the_parents_throughout(&name, &role);
    }

    #[test]
    fn a_guard_inherited_through_fork_reads_and_publishes_nothing() {
        let name = unique("fork-guard");
        let _cleanup = Cleanup(name.clone());
        let role = Child::spawn("fork-guard", &name);
        assert_eq!(role.line(), "read=forked");
        assert_eq!(role.line(), "read_into=forked");
        assert_eq!(role.line(), "publish=forked");
        assert_eq!(role.line(), "unchanged=true");
        assert_eq!(role.line(), "parent published=2");
        lock_was_the_parents_throughout(&name, &role);
    }

    #[test]
    fn a_loan_inherited_through_fork_commits_nothing() {
        let name = unique("fork-loan");
        let _cleanup = Cleanup(name.clone());
        let role = Child::spawn("fork-loan", &name);
        assert_eq!(role.line(), "append=forked");
        assert_eq!(role.line(), "commit=forked");
        assert_eq!(role.line(), "unchanged=true");
        assert_eq!(role.line(), "parent published=2");
        assert_eq!(role.line(), "parent content ok=true");
    }

    /// Where `held_locks`' second region lives: a file of the test's own.
    fn second_region(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{name}.second"))
    }

    /// Hold the lock of a region, fork; the child holds none of its
    /// parent's locks. In its own handle to a second region, whose lock
    /// word was scribbled to name the child's thread, it takes the word
    /// over (`owner_died`) instead of refusing it as its own re-entry
    /// (`WouldDeadlock`), which it would if it had inherited the parent's
    /// count of locks held.
    pub fn held_locks() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        let guard = map.lock().unwrap();
        let path = second_region(&name);
        let pid = fork();
        if pid == 0 {
            let second = FileMap::builder(format!("{name}-2"))
                .path(&path)
                .open()
                .unwrap();
            // The child runs one thread, so its thread id is its pid: the
            // owner either backend's lock word names. The start time (high
            // half) is anything: a word naming us is ours or scribbled.
            let word = 0x5eed_u64 << 32 | std::process::id() as u64;
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &word.to_le_bytes(), LOCK_OFFSET)
                .unwrap();
            let taken = match second.lock() {
                Ok(g) => format!("child lock owner_died={}", g.owner_died()),
                Err(e) => format!("child lock error={e:?}"),
            };
            child_says(&[taken]);
        }
        reap(pid);
        drop(guard);
        say("parent unlocked");
        std::process::exit(0);
    }

    /// Offset of the lock word in the region header.
    const LOCK_OFFSET: u64 = 64;

    #[test]
    fn a_forked_child_holds_none_of_its_parents_locks() {
        let name = unique("fork-held");
        let _cleanup = Cleanup(name.clone());
        let _second = filemap_testkit::RemoveFiles(vec![second_region(&name)]);
        let role = Child::spawn("fork-held", &name);
        assert_eq!(role.line(), "child lock owner_died=true");
        assert_eq!(role.line(), "parent unlocked");
    }

    /// Open, fork; the child tries the inherited handle (refused), opens
    /// its own, and writes through it after the parent closed.
    pub fn fork_handle() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        map.write_str("parent").unwrap();
        let mut pipe = [0i32; 2];
        // SAFETY: pipe(2) fills the two-element array.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: this role process runs no other thread of its own that
        // the child would miss (libtest's runs `child_role` alone); the
        // child exits with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let refused = |r: Result<(), Error>| matches!(r, Err(Error::ForkedHandle { .. }));
            let all_refused = refused(map.write_str("orphan").map(drop))
                && refused(map.read().map(drop))
                && refused(map.lock().map(drop))
                && refused(map.lock_owned().map(drop))
                && refused(map.update(|_| ()).map(drop))
                && refused(map.write_if(1, b"x").map(drop))
                && refused(map.watch(|_| ()).map(drop));
            common::say(format!("child refused={all_refused}"));
            let own = FileMap::open(&name).unwrap();
            common::say(format!("child existed={}", own.existed_already()));
            let mut byte = [0u8];
            // SAFETY: read(2) into a one-byte buffer from our pipe end.
            unsafe { libc::read(pipe[0], byte.as_mut_ptr().cast(), 1) };
            own.write_str("from child").unwrap();
            common::say("child wrote");
            // SAFETY: as above: wait for the parent's second byte.
            unsafe { libc::read(pipe[0], byte.as_mut_ptr().cast(), 1) };
            drop(map); // the inherited handle: closing it does nothing
            drop(own);
            // SAFETY: leave the forked child without running the test
            // harness's exit path.
            unsafe { libc::_exit(0) };
        }
        // Parent: on "close", close our handle, then let the child write.
        assert_eq!(common::stdin_line().as_deref(), Some("close"));
        drop(map);
        common::say("parent closed");
        // SAFETY: write(2) of one byte to our pipe end.
        unsafe { libc::write(pipe[1], b"g".as_ptr().cast(), 1) };
        assert_eq!(common::stdin_line().as_deref(), Some("done"));
        // SAFETY: as above.
        unsafe { libc::write(pipe[1], b"g".as_ptr().cast(), 1) };
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        common::say(format!("child exit={}", libc::WEXITSTATUS(status)));
        std::process::exit(0);
    }

    /// A forked child that uses its inherited handle is refused (its writes
    /// would go to an orphan once the parent's close unlinks it); the
    /// region it opens anew lives on after the parent closes.
    #[test]
    fn a_handle_inherited_through_fork_is_refused_and_the_child_can_reopen() {
        let name = unique("fork");
        let _cleanup = Cleanup(name.clone());
        let mut role = Child::spawn("fork-handle", &name);
        assert_eq!(role.line(), "child refused=true");
        assert_eq!(role.line(), "child existed=true");
        role.send("close");
        assert_eq!(role.line(), "parent closed");
        assert_eq!(role.line(), "child wrote");
        // The parent closed first, yet the child's own handle kept the
        // region: a newcomer sees the child's write.
        let newcomer = FileMap::builder(&name).open_only().open().unwrap();
        assert_eq!(newcomer.read_string().unwrap().content, "from child");
        role.send("done");
        assert_eq!(role.line(), "child exit=0");
    }

    /// Watch, fork, and drop the watcher in the child.
    pub fn fork_watcher() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        let watcher = map.watch(|_| ()).unwrap();
        // SAFETY: the child only drops values and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            drop(watcher);
            drop(map);
            // SAFETY: leave the forked child at once.
            unsafe { libc::_exit(7) };
        }
        let start = Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: polls the child forked above.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                common::say(format!("child exit={}", libc::WEXITSTATUS(status)));
                break;
            }
            if start.elapsed() > Duration::from_secs(5) {
                common::say("child hung");
                // SAFETY: kill(2) our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(watcher); // the parent's watcher still stops normally
        common::say("parent stopped its watcher");
        std::process::exit(0);
    }

    #[test]
    fn a_forked_child_dropping_an_inherited_watcher_returns() {
        let name = unique("forkwatch");
        let _cleanup = Cleanup(name.clone());
        let role = Child::spawn("fork-watcher", &name);
        assert_eq!(role.line(), "child exit=7");
        assert_eq!(role.line(), "parent stopped its watcher");
    }
}
