//! A region's file truncated under the processes attached to it.
//!
//! Anyone who may write the file may shrink it, and every access to the
//! pages past the new end then raises `SIGBUS`, which kills by default.
//! Here a process in each role (a watcher, a reader in a loop, a lock
//! holder, a loan, a spinning and a sleeping waiter) is attached when the
//! test truncates the file to nothing, to half its size, and to one byte
//! short of the header: each must get `Error::Truncated` with the sizes,
//! keep running (it then opens and uses another region), and exit 0.
//!
//! Linux only: Windows sections cannot shrink, and macOS shared-memory
//! objects are sized once; FreeBSD's can shrink and take the same path,
//! but nothing here runs on FreeBSD.

mod common;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    #[cfg(target_os = "linux")]
    if let Ok(role) = std::env::var("FILEMAP_CHILD_ROLE") {
        if let Some(role) = role.strip_prefix("cut-") {
            linux::role(role);
            return;
        }
    }
    common::child_main();
}

#[cfg(target_os = "linux")]
mod linux {
    use filemap::TextExt;
    use std::sync::mpsc;

    use filemap::{Error, FileMap};

    use crate::common::{cut_file, say, stdin_line, unique, Child, Cleanup, STEP};

    /// Capacity of the regions truncated here, and the size of their
    /// content: a read or a publish then touches the end of a buffer,
    /// which lies past every cut.
    const CAP: usize = 16 << 10;

    /// What one role reports of an error: `truncated size=S needed=N`,
    /// or the unexpected error in full.
    fn report(e: &Error) -> String {
        match e {
            Error::Truncated { size, needed, .. } => {
                format!("truncated size={size} needed={needed}")
            }
            other => format!("unexpected error: {other:?}"),
        }
    }

    fn content(byte: u8) -> Vec<u8> {
        vec![byte; CAP]
    }

    /// A child's role: attach, say "ready", do its thing until an error
    /// comes, report it, then prove it still runs by using another region.
    pub fn role(role: &str) {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        if role == "foreign-bus" {
            foreign_bus(&name);
        }
        let map = FileMap::builder(&name).open_only().open().unwrap();
        let seen = map.generation();
        let error = match role {
            "watcher" => {
                let (tx, rx) = mpsc::channel();
                let watcher = map
                    .watch(move |change| {
                        let _ = tx.send(change.map(drop));
                    })
                    .unwrap();
                say("ready");
                let error = loop {
                    match rx.recv_timeout(STEP) {
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => break e,
                        Err(e) => panic!("the watcher reported nothing: {e}"),
                    }
                };
                drop(watcher);
                error
            }
            "reader" => {
                say("ready");
                let mut buf = Vec::new();
                loop {
                    if let Err(e) = map.read_into(&mut buf) {
                        break e;
                    }
                }
            }
            "lock-holder" => {
                let mut guard = map.lock_owned().unwrap();
                say("ready");
                assert_eq!(stdin_line().as_deref(), Some("go"));
                let error = guard.publish(&content(b'h')).unwrap_err();
                // Every later call says the same, and dropping the guard
                // releases nothing that is gone.
                assert!(matches!(guard.read(), Err(Error::Truncated { .. })));
                drop(guard);
                error
            }
            "loan" => {
                use std::io::Write;
                let mut loan = map.loan().unwrap();
                loan.write_all(&content(b'l')[..CAP / 2]).unwrap();
                say("ready");
                assert_eq!(stdin_line().as_deref(), Some("go"));
                // A piece this large goes straight into the region, so the
                // cut may meet the write itself, or else the commit.
                match loan.write_all(&content(b'l')[CAP / 2..]) {
                    Err(e) => *e
                        .into_inner()
                        .and_then(|inner| inner.downcast::<Error>().ok())
                        .expect("the loan's write fails with a filemap error"),
                    Ok(()) => loan.commit().unwrap_err(),
                }
            }
            "spinner" => {
                say("ready");
                // The wait itself ends, saying why.
                map.wait_change(seen, filemap::Wait::spin()).unwrap_err()
            }
            "sleeper" => {
                say("ready");
                // The wait itself ends, saying why.
                map.wait_change(seen, filemap::Wait::sleep()).unwrap_err()
            }
            other => panic!("no role {other}"),
        };
        say(report(&error));
        // Every call on the handle keeps saying so.
        assert!(matches!(map.write(b"x"), Err(Error::Truncated { .. })));
        drop(map);
        let after = FileMap::open(format!("{name}-after")).unwrap();
        after.write_str("still here").unwrap();
        assert_eq!(after.read_string().unwrap().content, "still here");
        say("alive");
        std::process::exit(0);
    }

    /// With a region open (so filemap's handler is installed), fault on
    /// a mapping of another file that was truncated.
    fn foreign_bus(name: &str) -> ! {
        let _map = FileMap::open(name).unwrap();
        let file = tempfile_in_shm(name);
        file.set_len(4096).unwrap();
        // SAFETY: a fresh shared mapping of one page of our own file; the
        // read below faults on purpose, which is what this role checks.
        unsafe {
            use std::os::fd::AsRawFd;
            let page = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(page, libc::MAP_FAILED);
            file.set_len(0).unwrap();
            std::ptr::read_volatile(page.cast::<u8>());
        }
        say("survived a foreign SIGBUS");
        std::process::exit(0);
    }

    fn tempfile_in_shm(name: &str) -> std::fs::File {
        let path = format!("/dev/shm/filemap-test-foreign-{name}");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    /// The sizes the file of `size` bytes is cut to: nothing, half (at a
    /// page boundary), one byte short of the 4096-byte header, and within
    /// the header's first lines, which zeroes the generation, or the
    /// buffer lines with the writer's id, without any fault (generation 0
    /// and writer pid 0 are never a publication).
    ///
    /// Half at a page boundary: the page that holds a cut stays mapped
    /// (the bytes past the end read as zeros, like any scribble), so a
    /// cut in mid-page leaves a reader whose content ends in that page
    /// nothing to notice but zeros; a reader notices the pages past it,
    /// and a waiter notices any cut within its sleep slice (the header
    /// cut below is in mid-page).
    fn cuts(size: u64) -> [u64; 5] {
        [0, size / 2 / 4096 * 4096, 4095, 100, 200]
    }

    /// For each cut: a region full of content, a child attached in `role`,
    /// the file truncated; the child reports `Truncated` and lives on, and
    /// so does this process, whose own handle reports the same.
    fn survives_every_cut(role: &str, nudge: bool) {
        for which in 0..5 {
            let name = unique(role);
            let _cleanup = Cleanup(name.clone());
            let _after = Cleanup(format!("{name}-after"));
            let map = FileMap::builder(&name).capacity(CAP).open().unwrap();
            map.write(&content(b'a')).unwrap();
            map.write(&content(b'b')).unwrap();
            let mut child = Child::spawn(&format!("cut-{role}"), &name);
            assert_eq!(child.line(), "ready", "{role}");
            let path = filemap::admin::shm_path(&name);
            let full = std::fs::metadata(&path).unwrap().len();
            let cut = cuts(full)[which];
            cut_file(&path, cut);
            if nudge {
                child.send("go");
            }
            assert_eq!(
                child.line(),
                format!("truncated size={cut} needed={full}"),
                "{role}, file cut to {cut} bytes"
            );
            assert_eq!(child.line(), "alive", "{role}, cut to {cut}");
            let status = child.wait();
            assert_eq!(status.code(), Some(0), "{role}, cut to {cut}: {status:?}");
            // This process had it mapped too.
            match map.read() {
                Err(Error::Truncated { size, needed, .. }) => {
                    assert_eq!((size, needed), (cut, full));
                }
                other => panic!("the test's own read after a cut to {cut}: {other:?}"),
            }
            // Closed by every handle that saw the cut, the short file
            // keeps its name (docs/guarantees.md), and removing the name
            // takes it away.
            drop(map);
            assert!(path.exists(), "{role}, cut to {cut}: the name is gone");
            filemap::admin::remove(&name).unwrap();
            assert!(!path.exists(), "{role}, cut to {cut}: removed, yet there");
        }
    }

    #[test]
    fn a_watcher_survives_its_file_being_truncated() {
        survives_every_cut("watcher", false);
    }

    #[test]
    fn a_reader_in_a_loop_survives_its_file_being_truncated() {
        survives_every_cut("reader", false);
    }

    #[test]
    fn a_lock_holder_survives_its_file_being_truncated() {
        survives_every_cut("lock-holder", true);
    }

    #[test]
    fn a_loan_survives_its_file_being_truncated() {
        survives_every_cut("loan", true);
    }

    #[test]
    fn a_spinning_waiter_survives_its_file_being_truncated() {
        survives_every_cut("spinner", false);
    }

    #[test]
    fn a_sleeping_waiter_survives_its_file_being_truncated() {
        survives_every_cut("sleeper", false);
    }

    /// A fault that is not in a region's mapping still kills, as it would
    /// without filemap: the handler passes it on.
    #[test]
    fn a_sigbus_outside_any_region_still_ends_the_process() {
        let name = unique("foreign-bus");
        let _cleanup = Cleanup(name.clone());
        let mut child = Child::spawn("cut-foreign-bus", &name);
        let status = child.wait();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    }
}
