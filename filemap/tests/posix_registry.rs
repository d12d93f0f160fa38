//! The posix backend's registry of region names (`$TMPDIR/filemap-<uid>`,
//! one empty file `filemap.<name>` per region) holds files anyone running
//! as this user can replace: a FIFO there must not block an open, and a
//! symbolic link there must not be followed. Run with
//! `cargo test -p filemap --features posix-backend --test posix_registry`.
//!
//! Every blocking call runs on a thread with a deadline, so a regression
//! fails the test instead of hanging the suite.

#![cfg(all(target_os = "linux", feature = "posix-backend"))]

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use common::{unique, Cleanup, STEP};
use filemap::{Error, FileMap};

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    if std::env::var("FILEMAP_CHILD_ROLE").as_deref() == Ok("private-registry") {
        list_and_clean_stale_in_a_private_registry();
        std::process::exit(0);
    }
    common::child_main();
}

/// The registry directory, made as the library makes it if no region was
/// made yet in this test process.
fn registry_dir() -> PathBuf {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("filemap-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    dir
}

fn entry(name: &str) -> PathBuf {
    registry_dir().join(format!("filemap.{name}"))
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Run `f` on a thread and return its result, or fail the test when it
/// has not returned within [`STEP`]. `fifo`, when given, is opened for
/// reading on a timeout, which lets a writer blocked on it go.
fn within_deadline<T: Send + 'static>(
    what: &str,
    fifo: Option<&Path>,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(STEP) {
        Ok(value) => value,
        Err(_) => {
            if let Some(fifo) = fifo {
                let _ = std::fs::File::open(fifo);
            }
            panic!("{what} was still blocked after {STEP:?}");
        }
    }
}

fn open_in_thread(name: &str, fifo: Option<&Path>) -> filemap::Result<FileMap> {
    let owned = name.to_owned();
    within_deadline("open", fifo, move || FileMap::builder(owned).open())
}

#[test]
fn a_fifo_at_the_registry_entry_refuses_the_region_without_blocking() {
    let name = unique("reg-fifo");
    let _cleanup = Cleanup(name.clone());
    let entry = entry(&name);
    mkfifo(&entry);
    match open_in_thread(&name, Some(&entry)) {
        Err(Error::NotARegion { path, reason }) => {
            assert_eq!(path, entry.display().to_string());
            assert!(reason.contains("FIFO"), "{reason}");
            let message = Error::NotARegion { path, reason }.to_string();
            assert!(message.contains("registry entry"), "{message}");
        }
        other => panic!("expected NotARegion, got {:?}", other.map(|_| "a handle")),
    }
    // Refused before anything was made, and the FIFO is left as found.
    assert!(!common::region_file_exists(&name));
    assert!(std::fs::symlink_metadata(&entry).is_ok());
}

#[test]
fn a_symlink_at_the_registry_entry_is_refused_and_not_followed() {
    let name = unique("reg-link");
    let _cleanup = Cleanup(name.clone());
    let entry = entry(&name);
    let target = std::env::temp_dir().join(format!("{name}.target"));
    let _ = std::fs::remove_file(&target);
    std::os::unix::fs::symlink(&target, &entry).unwrap();
    let opened = open_in_thread(&name, None);
    let target_made = target.exists();
    let _ = std::fs::remove_file(&target);
    match opened {
        Err(Error::NotARegion { path, reason }) => {
            assert_eq!(path, entry.display().to_string());
            assert!(reason.contains("symbolic link"), "{reason}");
        }
        other => panic!("expected NotARegion, got {:?}", other.map(|_| "a handle")),
    }
    assert!(!target_made, "the entry's symlink was followed");
    assert!(!common::region_file_exists(&name));
}

#[test]
fn a_symlink_to_a_fifo_at_the_registry_entry_does_not_block() {
    let name = unique("reg-linkfifo");
    let _cleanup = Cleanup(name.clone());
    let entry = entry(&name);
    let fifo = std::env::temp_dir().join(format!("{name}.fifo"));
    let _ = std::fs::remove_file(&fifo);
    mkfifo(&fifo);
    std::os::unix::fs::symlink(&fifo, &entry).unwrap();
    let opened = open_in_thread(&name, Some(&fifo));
    let _ = std::fs::remove_file(&fifo);
    assert!(
        matches!(opened, Err(Error::NotARegion { .. })),
        "{:?}",
        opened.map(|_| "a handle")
    );
    assert!(!common::region_file_exists(&name));
}

/// Runs in a child process with a registry of its own (`TMPDIR`): its
/// `clean_stale` would otherwise remove the entries the other tests of
/// this file plant, and theirs would race it.
#[test]
fn list_and_clean_stale_pass_fifos_and_symlinks_in_the_registry_without_blocking() {
    let tmp = std::env::temp_dir().join(unique("reg-private"));
    std::fs::create_dir(&tmp).unwrap();
    let mut child = filemap_testkit::child::command()
        .env("FILEMAP_CHILD_ROLE", "private-registry")
        .env("TMPDIR", &tmp)
        .spawn()
        .unwrap();
    let status = filemap_testkit::await_exit(&mut child, STEP);
    let _ = std::fs::remove_dir_all(&tmp);
    let status = status.expect("list/clean_stale still blocked after the deadline");
    assert!(status.success(), "{status:?}");
}

fn list_and_clean_stale_in_a_private_registry() {
    let fifo_name = unique("reg-list-fifo");
    let link_name = unique("reg-list-link");
    let _cleanup = (Cleanup(fifo_name.clone()), Cleanup(link_name.clone()));
    let fifo_entry = entry(&fifo_name);
    mkfifo(&fifo_entry);
    let fifo_target = std::env::temp_dir().join(format!("{link_name}.fifo"));
    let _ = std::fs::remove_file(&fifo_target);
    mkfifo(&fifo_target);
    let link_entry = entry(&link_name);
    std::os::unix::fs::symlink(&fifo_target, &link_entry).unwrap();

    let listed = within_deadline("list", Some(&fifo_entry), filemap::admin::list).unwrap();
    for name in [&fifo_name, &link_name] {
        // Not a region: listed as not found, never opened.
        let (_, info) = listed.iter().find(|(n, _)| n == name).unwrap();
        assert!(
            matches!(info, Err(Error::NotFound { .. })),
            "{name}: {info:?}"
        );
    }
    let cleaned = within_deadline(
        "clean_stale",
        Some(&fifo_entry),
        filemap::admin::clean_stale,
    )
    .unwrap();
    assert!(
        cleaned.contains(&fifo_name) && cleaned.contains(&link_name),
        "{cleaned:?}"
    );
    // The entries are gone; what the symlink pointed at is untouched.
    assert!(std::fs::symlink_metadata(&fifo_entry).is_err());
    assert!(std::fs::symlink_metadata(&link_entry).is_err());
    assert!(std::fs::symlink_metadata(&fifo_target).is_ok());
    let _ = std::fs::remove_file(&fifo_target);
}

#[test]
fn a_region_is_made_and_listed_through_a_plain_entry_and_its_entry_goes_with_it() {
    let name = unique("reg-plain");
    let _cleanup = Cleanup(name.clone());
    let entry = entry(&name);
    let map = FileMap::builder(&name).open().unwrap();
    let meta = std::fs::symlink_metadata(&entry).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert!(filemap::admin::list()
        .unwrap()
        .iter()
        .any(|(n, info)| n == &name && info.is_ok()));
    drop(map);
    assert!(std::fs::symlink_metadata(&entry).is_err());
}
