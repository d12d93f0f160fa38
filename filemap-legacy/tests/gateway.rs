//! The gateway through its Rust API, on Windows (Wine in CI), against
//! sections and mutexes this test makes itself: what a legacy program (or
//! one posing as it) can do that the Free Pascal peer of filemap-cli's
//! tests does not.

#[cfg(windows)]
mod windows {
    use std::ptr;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use filemap::FileMap;
    use filemap_legacy::{Error, Event, Gateway, Options};
    use filemap_testkit::{unique, Cleanup};
    use windows_sys::Win32::Foundation::{CloseHandle, INVALID_HANDLE_VALUE, WAIT_OBJECT_0};
    use windows_sys::Win32::System::Memory::{CreateFileMappingW, PAGE_READWRITE, SEC_RESERVE};
    use windows_sys::Win32::System::Threading::{CreateMutexW, ReleaseMutex, WaitForSingleObject};

    /// Generous bound for one step under Wine; tests fail, not hang.
    const STEP: Duration = Duration::from_secs(30);

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(Some(0)).collect()
    }

    /// A section named as the legacy map, reserved but never committed:
    /// every page of it faults when touched. The gateway refuses it at
    /// start, naming what is committed, instead of dying on the fault.
    #[test]
    fn a_section_with_uncommitted_pages_is_refused_not_touched() {
        let name = unique("lg-reserve");
        let _c = Cleanup(name.clone());
        let wname = wide(&name);
        // SAFETY: a pagefile-backed section, default security, a
        // NUL-terminated name that outlives the call.
        let section = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                ptr::null(),
                PAGE_READWRITE | SEC_RESERVE,
                0,
                1 << 20,
                wname.as_ptr(),
            )
        };
        assert!(!section.is_null(), "CreateFileMapping(SEC_RESERVE)");
        let started = Gateway::start(Options::new(&name), |_| {});
        match started {
            Err(e @ Error::NotALegacyMap { committed: 0, .. }) => {
                assert!(e.to_string().contains(&name), "{e}");
            }
            Err(other) => panic!("refused, but not as NotALegacyMap: {other}"),
            Ok(_) => panic!("a gateway started on a section it cannot read"),
        }
        // SAFETY: our own section handle, closed once.
        unsafe { CloseHandle(section) };
    }

    /// With the legacy mutex held by another program, a burst of region
    /// changes queues no waits: stopping the gateway takes at most the copy
    /// in progress (one mutex wait), not one wait per change.
    #[test]
    fn a_held_legacy_mutex_and_a_burst_of_changes_do_not_delay_the_stop() {
        let name = unique("lg-stop");
        let _c = Cleanup(name.clone());
        let (tx, events) = mpsc::channel();
        let gateway = Gateway::start(Options::new(&name), move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        let region = FileMap::builder(&name).open_only().open().unwrap();
        let mutex_name = wide(&format!("{name}.Mtx"));
        // SAFETY: opens the gateway's named mutex, not owned initially.
        let mutex = unsafe { CreateMutexW(ptr::null(), 0, mutex_name.as_ptr()) };
        assert!(!mutex.is_null(), "CreateMutex");
        // SAFETY: waits on our own handle to the mutex.
        assert_eq!(unsafe { WaitForSingleObject(mutex, 5000) }, WAIT_OBJECT_0);
        for i in 0..30 {
            region.write(format!("change {i}").as_bytes()).unwrap();
            // Paced, so that the watcher sees each change on its own.
            std::thread::sleep(Duration::from_millis(20));
        }
        // The first copy met the held mutex.
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(Event::MutexBusy { .. }) => break,
                Ok(_) => {}
                Err(e) => panic!("no MutexBusy event: {e}"),
            }
        }
        let stopping = Instant::now();
        gateway.stop();
        let took = stopping.elapsed();
        // SAFETY: releases the mutex this thread took above; closes our
        // handle once.
        unsafe {
            ReleaseMutex(mutex);
            CloseHandle(mutex);
        }
        assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    }
}
