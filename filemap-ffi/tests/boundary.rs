//! Every boundary case of the C ABI, called the way C would: NULLs, names
//! that are not UTF-8 or not terminated, absurd lengths, pointers of the
//! wrong kind, panics in callbacks. Each gets its status, and the region's
//! content stays what it was.

use std::ffi::{c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::mpsc;
use std::time::Duration;

use filemap_ffi::*;

/// `filemap_testkit::unique` as a C string.
fn unique(tag: &str) -> CString {
    CString::new(filemap_testkit::unique(tag)).unwrap()
}

/// A handle on a fresh region, closed and removed at the end.
struct Map {
    ptr: *mut FmMap,
    name: CString,
}

impl Map {
    fn new(tag: &str, capacity: u64) -> Map {
        let name = unique(tag);
        let mut ptr = null_mut();
        // SAFETY: a valid C string and out-pointer.
        let status = unsafe { fm_open(name.as_ptr(), capacity, FM_CREATE_ONLY, &mut ptr) };
        assert_eq!(status, FM_OK, "{}", last_error());
        Map { ptr, name }
    }

    fn write(&self, content: &[u8]) -> FmStatus {
        // SAFETY: a live handle and a valid slice.
        unsafe { fm_write(self.ptr, content.as_ptr(), content.len(), null_mut()) }
    }

    fn read(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0;
        let status =
            // SAFETY: a live handle, a buffer of buf.len() bytes.
            unsafe { fm_read(self.ptr, buf.as_mut_ptr(), buf.len(), &mut len, null_mut()) };
        assert_eq!(status, FM_OK, "{}", last_error());
        buf.truncate(len);
        buf
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the handle from `new`, closed once.
        unsafe { fm_close(self.ptr) };
        // SAFETY: a valid C string.
        unsafe { fm_remove(self.name.as_ptr()) };
    }
}

fn last_error() -> String {
    // SAFETY: fm_last_error returns a valid C string, never NULL.
    unsafe { CStr::from_ptr(fm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn last_info() -> FmErrorInfo {
    let mut info = FmErrorInfo::default();
    // SAFETY: a writable struct.
    assert_eq!(unsafe { fm_last_error_info(&mut info) }, FM_OK);
    info
}

fn open_status(name: *const std::ffi::c_char, capacity: u64, flags: u32) -> FmStatus {
    let mut ptr = null_mut();
    // SAFETY: the name is NULL or valid as each test sets up; out is valid.
    let status = unsafe { fm_open(name, capacity, flags, &mut ptr) };
    if status == FM_OK {
        // SAFETY: a handle just opened.
        unsafe { fm_close(ptr) };
    }
    status
}

#[test]
fn open_refuses_null_and_bad_names_flags_and_capacities() {
    assert_eq!(open_status(null(), 0, 0), FM_E_NULL);
    assert!(last_error().contains("name"), "{}", last_error());

    let name = unique("nullout");
    assert_eq!(
        // SAFETY: a NULL out-pointer is what is being tested.
        unsafe { fm_open(name.as_ptr(), 0, 0, null_mut()) },
        FM_E_NULL
    );

    let not_utf8 = [b'a', 0xff, 0xfe, 0];
    assert_eq!(
        open_status(not_utf8.as_ptr().cast(), 0, 0),
        FM_E_INVALID_NAME
    );
    assert!(last_error().contains("UTF-8"), "{}", last_error());
    assert_eq!(last_info().len, 3);

    // No NUL anywhere in the longest readable prefix: refused after
    // reading exactly that much (the Vec holds no more).
    let unterminated = vec![b'x'; fm_max_name_len() + 1];
    assert_eq!(
        open_status(unterminated.as_ptr().cast(), 0, 0),
        FM_E_INVALID_NAME
    );
    assert_eq!(last_info().len, fm_max_name_len() as u64 + 1);

    // Every invalid name gives its length in bytes, whichever rule it
    // breaks.
    let slash = CString::new("a/b").unwrap();
    assert_eq!(open_status(slash.as_ptr(), 0, 0), FM_E_INVALID_NAME);
    let info = last_info();
    assert_eq!(
        (info.status, info.len, info.max),
        (FM_E_INVALID_NAME, 3, fm_max_name_len() as u64)
    );
    let dots = CString::new("..").unwrap();
    assert_eq!(open_status(dots.as_ptr(), 0, 0), FM_E_INVALID_NAME);
    assert_eq!(last_info().len, 2);
    let long = CString::new("n".repeat(fm_max_name_len() + 1)).unwrap();
    assert_eq!(open_status(long.as_ptr(), 0, 0), FM_E_INVALID_NAME);
    assert_eq!(last_info().len, fm_max_name_len() as u64 + 1);
    let control = CString::new("a\x01b").unwrap();
    assert_eq!(open_status(control.as_ptr(), 0, 0), FM_E_INVALID_NAME);
    assert_eq!(last_info().len, 3);
    // SAFETY: a valid C string; refused before any region is looked up.
    assert_eq!(unsafe { fm_remove(slash.as_ptr()) }, FM_E_INVALID_NAME);
    assert_eq!(last_info().len, 3);
    let empty = CString::new("").unwrap();
    assert_eq!(open_status(empty.as_ptr(), 0, 0), FM_E_INVALID_NAME);

    let name = unique("flags");
    assert_eq!(open_status(name.as_ptr(), 0, 0x80), FM_E_INVALID_ARGUMENT);
    assert!(last_error().contains("0x80"), "{}", last_error());
    assert_eq!(
        open_status(name.as_ptr(), 0, FM_CREATE_ONLY | FM_OPEN_ONLY),
        FM_E_INVALID_ARGUMENT
    );
    assert_eq!(open_status(name.as_ptr(), 0, FM_OPEN_ONLY), FM_E_NOT_FOUND);

    assert_eq!(open_status(name.as_ptr(), 16, 0), FM_E_INVALID_CAPACITY);
    let info = last_info();
    assert_eq!(
        (info.status, info.len, info.min, info.max),
        (FM_E_INVALID_CAPACITY, 16, 32, 1 << 30)
    );
    assert_eq!(
        open_status(name.as_ptr(), u64::MAX, 0),
        FM_E_INVALID_CAPACITY
    );
    // SAFETY: valid C string (the region does not exist: nothing removed).
    assert_eq!(unsafe { fm_remove(name.as_ptr()) }, FM_E_NOT_FOUND);
}

#[test]
fn open_flags_create_only_and_existed_already() {
    let map = Map::new("existed", 0);
    let mut existed = true;
    // SAFETY: live handle, writable bool.
    assert_eq!(unsafe { fm_existed_already(map.ptr, &mut existed) }, FM_OK);
    assert!(!existed);
    let mut cap = 0;
    // SAFETY: live handle, writable size.
    assert_eq!(unsafe { fm_capacity(map.ptr, &mut cap) }, FM_OK);
    assert_eq!(cap, 4096);
    assert_eq!(
        open_status(map.name.as_ptr(), 0, FM_CREATE_ONLY),
        FM_E_ALREADY_EXISTS
    );

    let mut second = null_mut();
    assert_eq!(
        // SAFETY: valid name and out-pointer.
        unsafe { fm_open(map.name.as_ptr(), 0, FM_OPEN_ONLY, &mut second) },
        FM_OK
    );
    // SAFETY: live handle, writable bool.
    assert_eq!(unsafe { fm_existed_already(second, &mut existed) }, FM_OK);
    assert!(existed);
    // SAFETY: NULL out-pointer is the case under test.
    assert_eq!(unsafe { fm_existed_already(second, null_mut()) }, FM_E_NULL);
    // SAFETY: the handle opened above, closed once.
    assert_eq!(unsafe { fm_close(second) }, FM_OK);
}

#[test]
fn write_refuses_null_data_and_absurd_lengths_and_keeps_the_content() {
    let map = Map::new("write", 64);
    assert_eq!(map.write(b"kept"), FM_OK);

    assert_eq!(
        // SAFETY: NULL data with a nonzero length is the case under test.
        unsafe { fm_write(map.ptr, null(), 3, null_mut()) },
        FM_E_NULL
    );
    // The statuses the header gives: NULL data is FM_E_NULL, and any
    // length past the maximum is FM_E_TOO_LARGE, even with NULL data (the
    // length is checked first); FM_E_INVALID_ARGUMENT for neither.
    // SAFETY: (block) NULL data is refused before any read.
    unsafe {
        assert_eq!(fm_write(map.ptr, null(), 5, null_mut()), FM_E_NULL);
        assert_eq!(last_info().status, FM_E_NULL);
        assert_eq!(
            fm_write(map.ptr, null(), usize::MAX, null_mut()),
            FM_E_TOO_LARGE
        );
        assert_eq!(last_info().status, FM_E_TOO_LARGE);
        assert_eq!(fm_write_if(map.ptr, 1, null(), 5, null_mut()), FM_E_NULL);
        assert_eq!(
            fm_write_if(map.ptr, 1, null(), usize::MAX, null_mut()),
            FM_E_TOO_LARGE
        );
    }
    // Absurd length: refused as too large before any byte is read.
    let one = [0u8; 1];
    assert_eq!(
        // SAFETY: the length is checked against the capacity before any read.
        unsafe { fm_write(map.ptr, one.as_ptr(), usize::MAX, null_mut()) },
        FM_E_TOO_LARGE
    );
    let info = last_info();
    assert_eq!((info.len, info.capacity), (usize::MAX as u64, 64));
    assert_eq!(map.write(&[b'x'; 65]), FM_E_TOO_LARGE);
    assert!(
        last_error().contains("65") && last_error().contains("64"),
        "{}",
        last_error()
    );
    assert_eq!(map.read(), b"kept");

    // Exactly the capacity fits; NULL with length 0 is empty content.
    assert_eq!(map.write(&[b'y'; 64]), FM_OK);
    let mut generation = 0;
    assert_eq!(
        // SAFETY: NULL data with length 0 is allowed.
        unsafe { fm_write(map.ptr, null(), 0, &mut generation) },
        FM_OK
    );
    assert_eq!(generation, 3);
    assert_eq!(map.read(), b"");
}

#[test]
fn read_reports_the_needed_length_and_leaves_a_small_buffer_alone() {
    let map = Map::new("read", 0);
    assert_eq!(map.write(b"hello world"), FM_OK);
    let mut buf = [b'#'; 4];
    let mut len = 0;
    let mut stamp = FmStamp::default();
    // SAFETY: a 4-byte buffer is passed with cap 4.
    let status = unsafe { fm_read(map.ptr, buf.as_mut_ptr(), 4, &mut len, &mut stamp) };
    assert_eq!(status, FM_E_BUFFER_TOO_SMALL);
    assert_eq!(len, 11);
    assert_eq!(&buf, b"####");
    assert_eq!(stamp.generation, 1);
    assert_eq!(stamp.writer.pid, std::process::id());
    let info = last_info();
    assert_eq!(
        (info.status, info.len, info.capacity),
        (FM_E_BUFFER_TOO_SMALL, 11, 4)
    );

    // Length query with no buffer at all.
    // SAFETY: NULL buffer with cap 0 is allowed.
    let status = unsafe { fm_read(map.ptr, null_mut(), 0, &mut len, null_mut()) };
    assert_eq!((status, len), (FM_E_BUFFER_TOO_SMALL, 11));
    // NULL buffer claiming room is refused.
    assert_eq!(
        // SAFETY: the NULL buffer is refused before use.
        unsafe { fm_read(map.ptr, null_mut(), 8, &mut len, null_mut()) },
        FM_E_NULL
    );
    assert_eq!(map.read(), b"hello world");

    // The same under the lock this thread took with fm_lock.
    // SAFETY: (block) live handle, a 4-byte buffer passed with cap 4.
    unsafe {
        assert_eq!(fm_lock(map.ptr, null_mut()), FM_OK);
        let mut stamp = FmStamp::default();
        let status = fm_read(map.ptr, buf.as_mut_ptr(), 4, &mut len, &mut stamp);
        assert_eq!((status, len, &buf), (FM_E_BUFFER_TOO_SMALL, 11, b"####"));
        assert_eq!(stamp.generation, 1);
        assert_eq!(stamp.writer.pid, std::process::id());
        assert_eq!(map.read(), b"hello world");
        assert_eq!(fm_unlock(map.ptr), FM_OK);
    }
}

#[test]
fn null_and_foreign_handles_are_refused() {
    // What the tag check catches: NULL, and pointers to readable memory
    // that does not start with the tag (zeros, a handle of another kind,
    // a misaligned address). A freed handle is not used here: its memory
    // may hold a new handle, which no check can tell from the old one.
    // SAFETY: (whole test) NULL and wrong-kind pointers are what the
    // library checks; the foreign pointers point to readable memory.
    unsafe {
        assert_eq!(fm_write(null(), null(), 0, null_mut()), FM_E_NULL);
        assert_eq!(fm_close(null_mut()), FM_E_NULL);
        assert_eq!(fm_watch_stop(null_mut()), FM_E_NULL);
        let mut g = 0;
        assert_eq!(fm_generation(null(), &mut g), FM_E_NULL);

        let mut garbage = [0u64; 8];
        let fake: *mut FmMap = garbage.as_mut_ptr().cast();
        assert_eq!(fm_write(fake, null(), 0, null_mut()), FM_E_INVALID_ARGUMENT);
        assert_eq!(fm_close(fake), FM_E_INVALID_ARGUMENT);
        assert!(last_error().contains("live map"), "{}", last_error());

        // A map handle passed where a watcher is expected.
        let map = Map::new("kind", 0);
        assert_eq!(fm_watch_stop(map.ptr.cast()), FM_E_INVALID_ARGUMENT);
        // Misaligned pointer.
        let bytes = [0u8; 16];
        assert_eq!(
            fm_close(bytes.as_ptr().add(1) as *mut FmMap),
            FM_E_INVALID_ARGUMENT
        );
        assert_eq!(map.write(b"still fine"), FM_OK);
    }
}

#[test]
fn status_names_and_last_error_info() {
    let name = |s| {
        // SAFETY: fm_status_name returns static C strings.
        unsafe { CStr::from_ptr(fm_status_name(s)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(name(FM_OK), "FM_OK");
    assert_eq!(name(FM_E_TOO_LARGE), "FM_E_TOO_LARGE");
    assert_eq!(name(FM_E_CANCELLED), "FM_E_CANCELLED");
    assert_eq!(name(FM_E_INTERRUPTED), "FM_E_INTERRUPTED");
    assert_eq!(name(-999), "FM_E_?");
    // A NULL `out` is a failure like any other: it becomes the last error.
    let slash = CString::new("a/b").unwrap();
    assert_eq!(open_status(slash.as_ptr(), 0, 0), FM_E_INVALID_NAME);
    // SAFETY: NULL is the case under test.
    assert_eq!(unsafe { fm_last_error_info(null_mut()) }, FM_E_NULL);
    assert_eq!(last_info().status, FM_E_NULL);
    assert!(last_error().contains("out"), "{}", last_error());
    assert_eq!(fm_abi_version(), FM_ABI_VERSION);
    // The last error is per thread.
    assert_eq!(open_status(null(), 0, 0), FM_E_NULL);
    let other = std::thread::spawn(|| (last_info().status, last_error()))
        .join()
        .unwrap();
    assert_eq!(other, (FM_OK, String::new()));
}

const STRATEGIES: [u32; 3] = [FM_WAIT_SLEEP, FM_WAIT_SPIN, FM_WAIT_ADAPTIVE];

#[test]
fn wait_times_out_and_wakes_with_every_strategy() {
    let map = Map::new("wait", 0);
    for (i, strategy) in STRATEGIES.into_iter().enumerate() {
        let seen = i as u64;
        let mut g = 0;
        // SAFETY: (block) live handle, writable u64, no token.
        unsafe {
            assert_eq!(
                fm_wait(map.ptr, seen, strategy, 0, null(), &mut g),
                FM_E_TIMEOUT
            );
            assert_eq!(
                fm_wait(map.ptr, seen, strategy, 20_000_000, null(), &mut g),
                FM_E_TIMEOUT
            );
        }
        let info = last_info();
        assert_eq!(info.status, FM_E_TIMEOUT);
        assert!(info.waited_ms >= 20, "waited {} ms", info.waited_ms);
        let name = map.name.clone();
        let writer = std::thread::spawn(move || {
            let mut p = null_mut();
            assert_eq!(
                // SAFETY: valid name and out-pointer.
                unsafe { fm_open(name.as_ptr(), 0, FM_OPEN_ONLY, &mut p) },
                FM_OK
            );
            assert_eq!(
                // SAFETY: live handle and slice.
                unsafe { fm_write(p, b"x".as_ptr(), 1, null_mut()) },
                FM_OK
            );
            // SAFETY: the handle opened above, closed once.
            unsafe { fm_close(p) };
        });
        // SAFETY: live handle; a negative timeout waits as long as it takes.
        let s = unsafe { fm_wait(map.ptr, seen, strategy, -1, null(), &mut g) };
        assert_eq!((s, g), (FM_OK, seen + 1), "strategy {strategy}");
        writer.join().unwrap();
    }
}

#[test]
fn wait_refuses_unknown_strategies_and_foreign_tokens() {
    let map = Map::new("wait-args", 0);
    // SAFETY: (block) live handle; the wrong-kind pointers point to
    // readable memory and are refused before use.
    unsafe {
        assert_eq!(
            fm_wait(map.ptr, 0, 3, 0, null(), null_mut()),
            FM_E_INVALID_ARGUMENT
        );
        assert!(last_error().contains("strategy 3"), "{}", last_error());
        assert_eq!(
            fm_wait(null(), 0, FM_WAIT_SLEEP, 0, null(), null_mut()),
            FM_E_NULL
        );
        // A map where a token is expected, and a token where a map is.
        assert_eq!(
            fm_wait(map.ptr, 0, FM_WAIT_SLEEP, 0, map.ptr.cast(), null_mut()),
            FM_E_INVALID_ARGUMENT
        );
        assert!(last_error().contains("cancel token"), "{}", last_error());
        let mut token = null_mut();
        assert_eq!(fm_cancel_new(&mut token), FM_OK);
        assert_eq!(
            fm_wait(token.cast(), 0, FM_WAIT_SLEEP, 0, null(), null_mut()),
            FM_E_INVALID_ARGUMENT
        );
        assert_eq!(fm_cancel(map.ptr.cast()), FM_E_INVALID_ARGUMENT);
        assert_eq!(fm_cancel(null()), FM_E_NULL);
        assert_eq!(fm_cancel_new(null_mut()), FM_E_NULL);
        assert_eq!(fm_cancel_free(null_mut()), FM_E_NULL);
        assert_eq!(fm_cancel_free(token), FM_OK);
    }
}

/// The state letter of this process's thread named `name` (`R`, `S`...),
/// from /proc; `None` while no such thread exists.
#[cfg(target_os = "linux")]
fn thread_state(name: &str) -> Option<char> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // "pid (comm) S ...": the state follows the last ')'.
        return stat[stat.rfind(')')? + 1..].trim_start().chars().next();
    }
    None
}

#[test]
fn cancel_from_another_thread_ends_a_wait_promptly_with_every_strategy() {
    let map = Map::new("cancel", 0);
    for strategy in STRATEGIES {
        let mut token = null_mut();
        // SAFETY: a writable out-pointer.
        assert_eq!(unsafe { fm_cancel_new(&mut token) }, FM_OK);
        let (map_addr, token_addr) = (map.ptr as usize, token as usize);
        let thread_name = format!("fm-wait-{strategy}");
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                // Nothing changes: only the token (or the 60 s timeout,
                // which fails the test) ends this wait.
                // SAFETY: the handle and the token outlive the join below.
                let s = unsafe {
                    fm_wait(
                        map_addr as *const FmMap,
                        0,
                        strategy,
                        60_000_000_000,
                        token_addr as *const FmCancelToken,
                        null_mut(),
                    )
                };
                let _ = tx.send((s, last_info(), last_error()));
            })
            .unwrap();
        // A sleeping wait is cancelled once it is asleep in the kernel: the
        // token must wake it, not the end of a sleep slice.
        #[cfg(target_os = "linux")]
        if strategy == FM_WAIT_SLEEP {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while thread_state(&thread_name) != Some('S') {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the waiter never went to sleep"
                );
                std::thread::yield_now();
            }
        }
        let cancelled_at = std::time::Instant::now();
        // SAFETY: a live token.
        assert_eq!(unsafe { fm_cancel(token) }, FM_OK);
        let (status, info, message) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        let took = cancelled_at.elapsed();
        waiter.join().unwrap();
        assert_eq!(status, FM_E_CANCELLED, "strategy {strategy}: {message}");
        assert_eq!(info.status, FM_E_CANCELLED);
        assert!(message.contains("cancelled"), "{message}");
        // Well inside the kernel sleep's 1 s slice.
        assert!(
            took < Duration::from_millis(500),
            "strategy {strategy}: the wait ended {took:?} after the cancel"
        );
        // A cancelled token stays so: a later wait ends at once.
        // SAFETY: live handle and token.
        let again = unsafe { fm_wait(map.ptr, 0, strategy, 10_000_000_000, token, null_mut()) };
        assert_eq!(again, FM_E_CANCELLED);
        // SAFETY: the token from fm_cancel_new, no wait uses it any more.
        assert_eq!(unsafe { fm_cancel_free(token) }, FM_OK);
    }
}

unsafe extern "C-unwind" fn increment(
    _user: *mut c_void,
    buf: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> i32 {
    // SAFETY: fm_update passes `capacity` bytes and a valid `len`.
    let (bytes, len) = unsafe { (std::slice::from_raw_parts_mut(buf, capacity), &mut *len) };
    let n: u64 = std::str::from_utf8(&bytes[..*len])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let text = (n + 1).to_string();
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    *len = text.len();
    0
}

unsafe extern "C-unwind" fn abort_after_scribbling(
    _user: *mut c_void,
    buf: *mut u8,
    _capacity: usize,
    len: *mut usize,
) -> i32 {
    // SAFETY: fm_update passes a buffer of at least MIN_CAPACITY bytes.
    unsafe {
        *buf = b'!';
        *len = 1;
    }
    1
}

unsafe extern "C-unwind" fn overflow(
    user: *mut c_void,
    _buf: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> i32 {
    // SAFETY: `len` is valid; `user` is unused.
    unsafe { *len = capacity + usize::from(!user.is_null()) + 1 };
    0
}

unsafe extern "C-unwind" fn panics(_: *mut c_void, _: *mut u8, _: usize, _: *mut usize) -> i32 {
    panic!("callback panicked");
}

#[test]
fn update_publishes_aborts_refuses_overflow_and_catches_panics() {
    let map = Map::new("update", 64);
    let (mut generation, mut published) = (0, false);
    // SAFETY: (block) live handle, callbacks as FmUpdateFn says, outputs valid.
    unsafe {
        for _ in 0..5 {
            let s = fm_update(
                map.ptr,
                Some(increment),
                null_mut(),
                &mut generation,
                &mut published,
            );
            assert_eq!(s, FM_OK, "{}", last_error());
        }
        assert!(published);
        assert_eq!(generation, 5);
        assert_eq!(map.read(), b"5");

        let s = fm_update(
            map.ptr,
            Some(abort_after_scribbling),
            null_mut(),
            &mut generation,
            &mut published,
        );
        assert_eq!((s, published, generation), (FM_OK, false, 5));
        assert_eq!(map.read(), b"5");

        let s = fm_update(
            map.ptr,
            Some(overflow),
            null_mut(),
            &mut generation,
            &mut published,
        );
        assert_eq!(s, FM_E_TOO_LARGE);
        assert_eq!(map.read(), b"5");

        assert_eq!(
            fm_update(map.ptr, None, null_mut(), null_mut(), null_mut()),
            FM_E_NULL
        );

        let s = fm_update(map.ptr, Some(panics), null_mut(), null_mut(), null_mut());
        assert_eq!(s, FM_E_PANIC);
        assert!(
            last_error().contains("callback panicked"),
            "{}",
            last_error()
        );
        // The lock was released on the way out, the content kept.
        let s = fm_update(
            map.ptr,
            Some(increment),
            null_mut(),
            &mut generation,
            null_mut(),
        );
        assert_eq!((s, generation), (FM_OK, 6));
        assert_eq!(map.read(), b"6");
    }
}

/// What `unlock_inside` saw: the status and message of an `fm_unlock`
/// called from inside an `fm_update` callback on the same handle.
struct UnlockInside {
    map: *const FmMap,
    status: FmStatus,
    message: String,
}

unsafe extern "C-unwind" fn unlock_inside(
    user: *mut c_void,
    _buf: *mut u8,
    _capacity: usize,
    _len: *mut usize,
) -> i32 {
    // SAFETY: the test passes a live `UnlockInside` as `user`.
    let probe = unsafe { &mut *user.cast::<UnlockInside>() };
    // SAFETY: the handle outlives the fm_update that calls this.
    probe.status = unsafe { fm_unlock(probe.map) };
    probe.message = last_error();
    1
}

#[test]
fn unlock_inside_an_update_says_the_lock_belongs_to_the_update() {
    let map = Map::new("unlock-in-update", 0);
    assert_eq!(map.write(b"before"), FM_OK);
    let mut probe = UnlockInside {
        map: map.ptr,
        status: FM_OK,
        message: String::new(),
    };
    let mut published = true;
    // SAFETY: live handle, a callback as FmUpdateFn says, `probe` lives
    // across the call.
    let s = unsafe {
        fm_update(
            map.ptr,
            Some(unlock_inside),
            std::ptr::from_mut(&mut probe).cast(),
            null_mut(),
            &mut published,
        )
    };
    assert_eq!((s, published), (FM_OK, false), "{}", last_error());
    assert_eq!(probe.status, FM_E_NOT_LOCKED);
    assert!(
        probe
            .message
            .contains("belongs to the fm_update in progress on this thread"),
        "{}",
        probe.message
    );
    assert!(
        !probe.message.contains("already released"),
        "{}",
        probe.message
    );
    assert_eq!(map.read(), b"before");
    // The update released its lock on the way out.
    // SAFETY: (block) live handle.
    unsafe {
        assert_eq!(fm_lock(map.ptr, null_mut()), FM_OK);
        assert_eq!(fm_unlock(map.ptr), FM_OK);
        // Outside an update: a message of its own, the same status.
        assert_eq!(fm_unlock(map.ptr), FM_E_NOT_LOCKED);
    }
    assert_eq!(last_info().status, FM_E_NOT_LOCKED);
    let message = last_error();
    assert!(
        message.contains("no lock taken with fm_lock is held through this handle"),
        "{message}"
    );
}

#[test]
fn write_if_under_the_callers_lock_compares_and_publishes_under_it() {
    let map = Map::new("lock-write-if", 0);
    assert_eq!(map.write(b"one"), FM_OK);
    // SAFETY: (block) live handle, valid slices and outputs.
    unsafe {
        assert_eq!(fm_lock(map.ptr, null_mut()), FM_OK);
        let mut now = 0;
        assert_eq!(fm_generation(map.ptr, &mut now), FM_OK);
        assert_eq!(now, 1);
        // The current generation: published under the held lock.
        let mut published = 0;
        assert_eq!(
            fm_write_if(map.ptr, now, b"two".as_ptr(), 3, &mut published),
            FM_OK
        );
        assert_eq!(published, now + 1);
        assert_eq!(map.read(), b"two");
        // A stale one: FM_E_CONFLICT with both generations, nothing written.
        let mut untouched = 99;
        assert_eq!(
            fm_write_if(map.ptr, now, b"three".as_ptr(), 5, &mut untouched),
            FM_E_CONFLICT
        );
        assert_eq!(untouched, 99);
        let info = last_info();
        assert_eq!((info.expected, info.found), (now, now + 1));
        assert_eq!(map.read(), b"two");
        // Past the maximum: refused before the lock is looked at.
        assert_eq!(
            fm_write_if(map.ptr, now + 1, null(), usize::MAX, null_mut()),
            FM_E_TOO_LARGE
        );
        // The lock is still this thread's, and still held.
        assert_eq!(fm_lock(map.ptr, null_mut()), FM_E_WOULD_DEADLOCK);
        assert_eq!(fm_unlock(map.ptr), FM_OK);
        let mut generation = 0;
        assert_eq!(fm_generation(map.ptr, &mut generation), FM_OK);
        assert_eq!(generation, now + 1);
    }
}

#[test]
fn lock_is_thread_affine_and_writes_go_through_it() {
    let map = Map::new("lock", 0);
    let mut died = true;
    // SAFETY: (block) live handle, valid outputs.
    unsafe {
        assert_eq!(fm_unlock(map.ptr), FM_E_NOT_LOCKED);
        assert_eq!(fm_lock(map.ptr, &mut died), FM_OK);
        assert!(!died);
        assert_eq!(fm_lock(map.ptr, null_mut()), FM_E_WOULD_DEADLOCK);
        // Read and write under the lock, on the locking thread.
        assert_eq!(map.write(b"under lock"), FM_OK);
        assert_eq!(map.read(), b"under lock");
        assert_eq!(
            fm_update(map.ptr, Some(increment), null_mut(), null_mut(), null_mut()),
            FM_E_WOULD_DEADLOCK
        );
    }
    let addr = map.ptr as usize;
    let from_other_thread = std::thread::spawn(move || {
        // SAFETY: the handle stays open until this thread is joined.
        unsafe { fm_unlock(addr as *const FmMap) }
    })
    .join()
    .unwrap();
    assert_eq!(from_other_thread, FM_E_WRONG_THREAD);
    // Still held by this thread.
    // SAFETY: live handle.
    assert_eq!(unsafe { fm_lock(map.ptr, null_mut()) }, FM_E_WOULD_DEADLOCK);
    // SAFETY: live handle.
    assert_eq!(unsafe { fm_unlock(map.ptr) }, FM_OK);
    // SAFETY: live handle.
    assert_eq!(unsafe { fm_unlock(map.ptr) }, FM_E_NOT_LOCKED);

    // Another thread can take it now; its write goes through.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let p = addr as *const FmMap;
        // SAFETY: the handle stays open until the result is received.
        let r = unsafe {
            (
                fm_lock(p, null_mut()),
                fm_write(p, b"t2".as_ptr(), 2, null_mut()),
                fm_unlock(p),
            )
        };
        tx.send(r).unwrap();
    });
    let r = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(r, (FM_OK, FM_OK, FM_OK));
    assert_eq!(map.read(), b"t2");
}

#[test]
fn close_releases_a_held_lock() {
    let map = Map::new("closelock", 0);
    let mut second = null_mut();
    // SAFETY: (block) valid name, live handles, each closed once.
    unsafe {
        assert_eq!(
            fm_open(map.name.as_ptr(), 0, FM_OPEN_ONLY, &mut second),
            FM_OK
        );
        assert_eq!(fm_lock(second, null_mut()), FM_OK);
        assert_eq!(fm_close(second), FM_OK);
    }
    // The lock is free again: this thread can take it through `map`.
    // SAFETY: live handle.
    assert_eq!(unsafe { fm_lock(map.ptr, null_mut()) }, FM_OK);
    // SAFETY: live handle.
    assert_eq!(unsafe { fm_unlock(map.ptr) }, FM_OK);
}

struct Seen {
    tx: mpsc::Sender<(FmStatus, u64, Vec<u8>)>,
    panic_once: bool,
}

unsafe extern "C-unwind" fn on_change(
    user: *mut c_void,
    status: FmStatus,
    stamp: *const FmStamp,
    data: *const u8,
    len: usize,
) {
    // SAFETY: `user` is the `Seen` the test keeps alive until fm_watch_stop.
    let seen = unsafe { &mut *user.cast::<Seen>() };
    if status != FM_OK {
        let _ = seen.tx.send((status, 0, Vec::new()));
        return;
    }
    // SAFETY: on FM_OK, `stamp` and `len` bytes at `data` are valid for the call.
    let (generation, content) = unsafe {
        (
            (*stamp).generation,
            std::slice::from_raw_parts(data, len).to_vec(),
        )
    };
    if seen.panic_once {
        seen.panic_once = false;
        panic!("watch callback panicked");
    }
    let _ = seen.tx.send((status, generation, content));
}

#[test]
fn watch_skips_own_writes_and_survives_a_panicking_callback() {
    let map = Map::new("watch", 0);
    let (tx, rx) = mpsc::channel();
    let mut seen = Box::new(Seen {
        tx,
        panic_once: true,
    });
    let mut watcher = null_mut();
    // SAFETY: live handle, a callback as FmWatchFn says, `seen` outlives the watcher.
    let s = unsafe {
        fm_watch(
            map.ptr,
            Some(on_change),
            (&mut *seen as *mut Seen).cast(),
            &mut watcher,
        )
    };
    assert_eq!(s, FM_OK);
    assert_eq!(
        // SAFETY: NULL callback is the case under test.
        unsafe { fm_watch(map.ptr, None, null_mut(), &mut watcher.clone()) },
        FM_E_NULL
    );

    let mut other = null_mut();
    assert_eq!(
        // SAFETY: valid name and out-pointer.
        unsafe { fm_open(map.name.as_ptr(), 0, FM_OPEN_ONLY, &mut other) },
        FM_OK
    );
    // Own write: not reported. Then another handle's write: reported,
    // first as a caught panic, then (next write) as content.
    assert_eq!(map.write(b"own"), FM_OK);
    assert_eq!(
        // SAFETY: live handle and slice.
        unsafe { fm_write(other, b"theirs".as_ptr(), 6, null_mut()) },
        FM_OK
    );
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(first.0, FM_E_PANIC);
    assert_eq!(
        // SAFETY: live handle and slice.
        unsafe { fm_write(other, b"again".as_ptr(), 5, null_mut()) },
        FM_OK
    );
    let second = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(second, (FM_OK, 3, b"again".to_vec()));

    // SAFETY: the watcher from fm_watch, stopped once; then no callback runs.
    assert_eq!(unsafe { fm_watch_stop(watcher) }, FM_OK);
    assert_eq!(
        // SAFETY: live handle and slice.
        unsafe { fm_write(other, b"late".as_ptr(), 4, null_mut()) },
        FM_OK
    );
    drop(seen);
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    // SAFETY: opened above, closed once.
    unsafe { fm_close(other) };
}

#[test]
fn info_and_clean_stale() {
    let map = Map::new("info", 128);
    assert_eq!(map.write(b"abc"), FM_OK);
    let mut info = FmInfo::default();
    // SAFETY: live handle, writable struct.
    assert_eq!(unsafe { fm_info(map.ptr, &mut info) }, FM_OK);
    assert_eq!((info.capacity, info.len, info.generation), (128, 3, 1));
    assert_eq!(info.last_writer.pid, std::process::id());
    assert_eq!(info.attached, 1);
    assert!(!info.persistent && !info.stale);
    let mut id = FmWriter::default();
    // SAFETY: live handle, writable struct.
    assert_eq!(unsafe { fm_id(map.ptr, &mut id) }, FM_OK);
    assert_eq!(id, info.last_writer);
    // SAFETY: NULL is allowed for the count.
    assert_eq!(unsafe { fm_clean_stale(null_mut()) }, FM_OK);
    // SAFETY: NULL out is the case under test.
    assert_eq!(unsafe { fm_info(map.ptr, null_mut()) }, FM_E_NULL);
}

/// `fm_open_ex` with `options`; the status, and the handle when it opened.
fn open_ex(name: &CString, options: *const FmOpenOptions) -> (FmStatus, *mut FmMap) {
    let mut ptr = null_mut();
    // SAFETY: a valid C string; `options` is NULL or as each test sets it
    // up (readable for its `size`); a valid out-pointer.
    let status = unsafe { fm_open_ex(name.as_ptr(), options, &mut ptr) };
    (status, ptr)
}

fn grow_options(capacity: u64, max_capacity: u64) -> FmOpenOptions {
    FmOpenOptions {
        size: FM_OPEN_OPTIONS_SIZE,
        flags: FM_CREATE_ONLY,
        capacity,
        max_capacity,
    }
}

fn capacities(map: *const FmMap) -> (usize, usize) {
    let (mut capacity, mut max) = (0, 0);
    // SAFETY: a live handle, writable sizes.
    unsafe {
        assert_eq!(fm_capacity(map, &mut capacity), FM_OK);
        assert_eq!(fm_max_capacity(map, &mut max), FM_OK);
    }
    (capacity, max)
}

#[test]
fn open_ex_refuses_null_short_absurd_and_later_options_and_bad_maximums() {
    let name = unique("open-ex");
    assert_eq!(open_ex(&name, null()).0, FM_E_NULL);
    assert!(last_error().contains("options"), "{}", last_error());
    let options = grow_options(4096, 1 << 20);
    // SAFETY: a NULL out-pointer is the case under test.
    let s = unsafe { fm_open_ex(name.as_ptr(), &options, null_mut()) };
    assert_eq!(s, FM_E_NULL);

    // `size` left 0 (the usual mistake), and garbage.
    for size in [0, 23, 4097, u32::MAX] {
        let options = FmOpenOptions {
            size,
            ..grow_options(4096, 1 << 20)
        };
        assert_eq!(open_ex(&name, &options).0, FM_E_INVALID_ARGUMENT);
        assert!(
            last_error().contains(&format!("options.size is {size}"))
                && last_error().contains("sizeof(fm_open_options)"),
            "{}",
            last_error()
        );
    }

    // A later header's larger struct: its unknown fields left 0 are
    // fine, one set is refused, naming the byte. Unaligned on purpose.
    #[repr(C)]
    struct Later {
        pad: u8,
        bytes: [u8; 33],
    }
    let mut later = Later {
        pad: 0,
        bytes: [0; 33],
    };
    let known = grow_options(4096, 1 << 20);
    let size = 32u32;
    later.bytes[..4].copy_from_slice(&size.to_ne_bytes());
    later.bytes[4..8].copy_from_slice(&known.flags.to_ne_bytes());
    later.bytes[8..16].copy_from_slice(&known.capacity.to_ne_bytes());
    later.bytes[16..24].copy_from_slice(&known.max_capacity.to_ne_bytes());
    later.bytes[28] = 7;
    // A byte past `size` is never read, whatever it holds.
    later.bytes[32] = 0xff;
    let unaligned = later.bytes.as_ptr().cast::<FmOpenOptions>();
    assert_eq!(open_ex(&name, unaligned).0, FM_E_UNSUPPORTED_OPTION);
    let info = last_info();
    assert_eq!((info.len, info.found), (32, 28), "{}", last_error());
    assert!(last_error().contains("byte 28"), "{}", last_error());
    later.bytes[28] = 0;
    let unaligned = later.bytes.as_ptr().cast::<FmOpenOptions>();
    let (s, map) = open_ex(&name, unaligned);
    assert_eq!(s, FM_OK, "{}", last_error());
    assert_eq!(capacities(map), (4096, 1 << 20));
    // SAFETY: the handle just opened, closed once; a valid name.
    unsafe {
        assert_eq!(fm_close(map), FM_OK);
        fm_remove(name.as_ptr());
    }

    // Flags go through the same checks as fm_open's.
    let options = FmOpenOptions {
        flags: 0x80,
        ..grow_options(4096, 1 << 20)
    };
    assert_eq!(open_ex(&name, &options).0, FM_E_INVALID_ARGUMENT);
    assert!(last_error().contains("0x80"), "{}", last_error());

    // A maximum below the capacity or past FM_MAX_CAPACITY: the numbers.
    for (capacity, max, least) in [
        (8192, 4096, 8192),
        (0, 100, 4096),
        (4096, FM_MAX_CAPACITY + 1, 4096),
        (4096, u64::MAX, 4096),
    ] {
        let options = grow_options(capacity, max);
        assert_eq!(open_ex(&name, &options).0, FM_E_INVALID_CAPACITY);
        let info = last_info();
        assert_eq!(
            (info.len, info.min, info.max),
            (max, least, FM_MAX_CAPACITY),
            "{}",
            last_error()
        );
        let message = last_error();
        assert!(
            message.contains("maximum capacity")
                && message.contains(&max.to_string())
                && message.contains(&least.to_string()),
            "{message}"
        );
    }
    // SAFETY: a valid name; nothing was created.
    assert_eq!(unsafe { fm_remove(name.as_ptr()) }, FM_E_NOT_FOUND);

    // fm_max_capacity checks its arguments as every getter does.
    let mut out = 0;
    // SAFETY: NULL and foreign pointers are the cases under test.
    unsafe {
        assert_eq!(fm_max_capacity(null(), &mut out), FM_E_NULL);
        let foreign = [0u64; 4];
        assert_eq!(
            fm_max_capacity(foreign.as_ptr().cast(), &mut out),
            FM_E_INVALID_ARGUMENT
        );
    }
}

#[test]
fn write_grows_up_to_the_maximum_and_every_handle_sees_the_capacity() {
    let name = unique("grow-write");
    let (s, map) = open_ex(&name, &grow_options(4096, 1 << 20));
    assert_eq!(s, FM_OK, "{}", last_error());
    let mut other = null_mut();
    // SAFETY: a valid name and out-pointer.
    let s = unsafe { fm_open(name.as_ptr(), 0, FM_OPEN_ONLY, &mut other) };
    assert_eq!(s, FM_OK, "{}", last_error());
    // The maximum is the region's: an attaching fm_open sees it.
    assert_eq!(capacities(other), (4096, 1 << 20));

    let big = vec![b'g'; 100_000];
    // SAFETY: a live handle and a valid slice.
    let s = unsafe { fm_write(map, big.as_ptr(), big.len(), null_mut()) };
    assert_eq!(s, FM_OK, "{}", last_error());
    let (capacity, max) = capacities(other);
    assert!((100_000..1 << 20).contains(&capacity), "{capacity}");
    assert_eq!(max, 1 << 20);
    let mut info = FmInfo::default();
    // SAFETY: a live handle, a writable struct.
    assert_eq!(unsafe { fm_info(other, &mut info) }, FM_OK);
    assert_eq!((info.capacity, info.len), (capacity as u64, 100_000));

    // One byte past the maximum: refused with the numbers, content kept.
    let past = vec![b'x'; (1 << 20) + 1];
    // SAFETY: a live handle and a valid slice.
    let s = unsafe { fm_write(other, past.as_ptr(), past.len(), null_mut()) };
    assert_eq!(s, FM_E_TOO_LARGE);
    let info = last_info();
    assert_eq!((info.len, info.capacity), ((1 << 20) + 1, 1 << 20));
    assert!(
        last_error().contains("1048577") && last_error().contains("maximum capacity of 1048576"),
        "{}",
        last_error()
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    // SAFETY: a live handle, a buffer of buf.len() bytes.
    let s = unsafe { fm_read(map, buf.as_mut_ptr(), buf.len(), &mut len, null_mut()) };
    assert_eq!(s, FM_OK, "{}", last_error());
    assert_eq!(&buf[..len], &big[..]);
    // Exactly the maximum fits.
    // SAFETY: a live handle and a valid slice.
    let s = unsafe { fm_write(other, past.as_ptr(), 1 << 20, null_mut()) };
    assert_eq!(s, FM_OK, "{}", last_error());
    assert_eq!(capacities(map), (1 << 20, 1 << 20));
    // SAFETY: the handles opened above, closed once; a valid name.
    unsafe {
        fm_close(other);
        fm_close(map);
        fm_remove(name.as_ptr());
    }
}

/// Sets the content to `*user` bytes of `g` when they fit the room, or
/// only `*len` when they do not (for the library to refuse).
unsafe extern "C-unwind" fn grow_to(
    user: *mut c_void,
    buf: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> i32 {
    // SAFETY: the test passes a live usize as `user`; fm_update passes
    // `capacity` writable bytes and a valid `len`.
    unsafe {
        let target = *user.cast::<usize>();
        if target <= capacity {
            std::ptr::write_bytes(buf, b'g', target);
        }
        *len = target;
    }
    0
}

#[test]
fn update_grows_a_region_up_to_its_maximum() {
    let name = unique("grow-update");
    let (s, map) = open_ex(&name, &grow_options(64, 1 << 20));
    assert_eq!(s, FM_OK, "{}", last_error());
    let (mut generation, mut published) = (0, false);
    let target = std::cell::Cell::new(5000usize);
    // SAFETY: (block) a live handle, a callback as FmUpdateFn says with a
    // live usize behind `user`, outputs valid.
    unsafe {
        let s = fm_update(
            map,
            Some(grow_to),
            target.as_ptr().cast(),
            &mut generation,
            &mut published,
        );
        assert_eq!(s, FM_OK, "{}", last_error());
        assert!(published);
        assert!(capacities(map).0 >= 5000, "{:?}", capacities(map));
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0;
        let s = fm_read(map, buf.as_mut_ptr(), buf.len(), &mut len, null_mut());
        assert_eq!(s, FM_OK, "{}", last_error());
        assert_eq!(&buf[..len], &vec![b'g'; 5000][..]);

        // Past the maximum: refused with its numbers, content kept.
        target.set((1 << 20) + 1);
        let s = fm_update(
            map,
            Some(grow_to),
            target.as_ptr().cast(),
            &mut generation,
            &mut published,
        );
        assert_eq!(s, FM_E_TOO_LARGE);
        let info = last_info();
        assert_eq!((info.len, info.capacity), ((1 << 20) + 1, 1 << 20));
        let s = fm_read(map, buf.as_mut_ptr(), buf.len(), &mut len, null_mut());
        assert_eq!((s, len), (FM_OK, 5000));
        fm_close(map);
        fm_remove(name.as_ptr());
    }
}
