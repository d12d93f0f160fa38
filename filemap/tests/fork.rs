//! A lock, a guard or a write loan inherited through `fork()`.
//!
//! The lock belongs to the parent. A forked child that publishes through
//! an inherited guard or loan would publish at the same time as the
//! parent, and readers would get mixed content; one that unlocks would
//! release nothing (the lock word names the parent's thread) yet be told
//! it did. Every such call gives `ForkedHandle` and publishes nothing;
//! the parent goes on as if the child did not exist.

mod common;

#[test]
fn child_role() {
    #[cfg(target_os = "linux")]
    match std::env::var("FILEMAP_CHILD_ROLE").as_deref() {
        Ok("fork-owned-guard") => linux::owned_guard(),
        Ok("fork-guard") => linux::guard(),
        Ok("fork-loan") => linux::loan(),
        _ => {}
    }
    common::child_main();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Write;
    use std::time::Duration;

    use filemap::{Error, FileMap};

    use crate::common::{say, unique, Child, Cleanup};

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
}
