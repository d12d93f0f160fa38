//! Status codes, the thread-local last error, and the boundary every entry
//! point goes through.
//!
//! This module owns the mapping from [`filemap::Error`] to a C status and
//! the rule that no panic crosses into C: [`boundary`] runs an entry point's
//! body under `catch_unwind` and turns every failure into a status plus a
//! message and numbers for `fm_last_error`/`fm_last_error_info`.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use filemap::{Error, ErrorKind};

/// A status returned by every `fm_*` call: `FM_OK` (0) or a negative error
/// code. Codes are stable; new ones may be added (treat unknown negative
/// codes as errors).
pub type FmStatus = i32;

/// Success.
pub const FM_OK: FmStatus = 0;
/// A required pointer argument was NULL (also `fm_write`'s `data` with a
/// nonzero length within the maximum capacity).
pub const FM_E_NULL: FmStatus = -1;
/// An argument is out of range: unknown flag bits (or `FM_CREATE_ONLY`
/// with `FM_OPEN_ONLY`), an unknown wait strategy, an
/// `fm_open_options.size` too small or too large, or a handle pointer
/// whose memory does not start with the tag of a handle of that
/// kind (a handle of another kind, a misaligned pointer, or a handle
/// closed already whose memory nothing reused yet). The tag is no
/// registry: a closed handle whose memory was reused (a later `fm_open`
/// may get the same address) or a pointer to memory that is not readable
/// is not caught, and using one is undefined behaviour (it may act on
/// another handle or crash). As with `FILE*`, using a handle after
/// closing or freeing it is the caller's error.
pub const FM_E_INVALID_ARGUMENT: FmStatus = -2;
/// A Rust panic was caught at the boundary (a bug in filemap): the call
/// did nothing visible, the region's published content is intact.
pub const FM_E_PANIC: FmStatus = -3;
/// The caller's buffer is too small; the needed length was stored.
pub const FM_E_BUFFER_TOO_SMALL: FmStatus = -4;
/// An error of a kind this version of the C ABI has no code for: never
/// returned while the C ABI and the library it is built with agree (a
/// test checks that every kind of library error has a code of its own).
pub const FM_E_UNKNOWN: FmStatus = -5;
/// The region name breaks a naming rule, is not UTF-8, or has no NUL
/// within `fm_max_name_len() + 1` bytes.
pub const FM_E_INVALID_NAME: FmStatus = -10;
/// The capacity is outside `FM_MIN_CAPACITY..=FM_MAX_CAPACITY`, or the
/// maximum capacity (`fm_open_ex`) outside `capacity..=FM_MAX_CAPACITY`.
pub const FM_E_INVALID_CAPACITY: FmStatus = -11;
/// The content does not fit the region, even grown to its maximum
/// capacity; nothing was written. A write's length is checked first, so
/// any length past the maximum (`SIZE_MAX` too) gives this, whatever the
/// data pointer.
pub const FM_E_TOO_LARGE: FmStatus = -12;
/// No region of that name exists (`FM_OPEN_ONLY`, `fm_remove`).
pub const FM_E_NOT_FOUND: FmStatus = -13;
/// A region of that name exists already (`FM_CREATE_ONLY`).
pub const FM_E_ALREADY_EXISTS: FmStatus = -14;
/// The operating system refused access to the region.
pub const FM_E_PERMISSION_DENIED: FmStatus = -15;
/// No space left to create the region.
pub const FM_E_OUT_OF_SPACE: FmStatus = -16;
/// The region was made by a filemap with another layout version.
pub const FM_E_INCOMPATIBLE_VERSION: FmStatus = -17;
/// The backing object is not a filemap region.
pub const FM_E_NOT_A_REGION: FmStatus = -18;
/// The backing file is shorter than its header says.
pub const FM_E_TRUNCATED: FmStatus = -19;
/// The shared header holds an impossible value.
pub const FM_E_CORRUPTED: FmStatus = -20;
/// A blocking call gave up (lock timeout, `fm_wait` timeout).
pub const FM_E_TIMEOUT: FmStatus = -21;
/// This thread already holds the region's lock.
pub const FM_E_WOULD_DEADLOCK: FmStatus = -22;
/// The region's attach table is full.
pub const FM_E_TOO_MANY_ATTACHED: FmStatus = -23;
/// The content is not UTF-8 (text reads).
pub const FM_E_NOT_UTF8: FmStatus = -24;
/// filemap has no backend for this platform.
pub const FM_E_UNSUPPORTED: FmStatus = -25;
/// This platform cannot do what was asked (e.g. an option).
pub const FM_E_UNSUPPORTED_OPTION: FmStatus = -26;
/// Another operating-system error; `fm_error_info.os_error` has its code.
pub const FM_E_IO: FmStatus = -27;
/// A conditional write found another generation than expected.
pub const FM_E_CONFLICT: FmStatus = -28;
/// The lock belongs to another thread: `fm_unlock` (and a locked read or
/// write) must come from the thread that called `fm_lock`.
pub const FM_E_WRONG_THREAD: FmStatus = -29;
/// `fm_unlock` without a held lock.
pub const FM_E_NOT_LOCKED: FmStatus = -30;
/// The handle was inherited through fork(): open the region again by name
/// in the child.
pub const FM_E_FORKED_HANDLE: FmStatus = -31;
/// The content is not a typed value (the Rust API's typed reads; the C
/// ABI itself reads bytes and never returns it today).
pub const FM_E_NOT_A_VALUE: FmStatus = -32;
/// A typed value of another type (the Rust API's typed reads).
pub const FM_E_WRONG_TYPE: FmStatus = -33;
/// A typed value could not be encoded or decoded (the Rust API).
pub const FM_E_CODEC: FmStatus = -34;
/// The shared-memory object of this name belongs to a region of another
/// name (macOS and FreeBSD name objects by a hash of the region name).
pub const FM_E_NAME_COLLISION: FmStatus = -35;
/// A wait ended because its cancel token was cancelled (`fm_cancel`).
pub const FM_E_CANCELLED: FmStatus = -36;
/// A wait was cut short by a signal delivered to the waiting thread (the
/// Rust API's interruptible waits; the C ABI's waits never return it
/// today).
pub const FM_E_INTERRUPTED: FmStatus = -37;

/// The numbers of the last failed call on this thread. Fields a status
/// does not use are 0.
///
/// | status | fields |
/// |---|---|
/// | `FM_E_TOO_LARGE` | `len` (content), `capacity` (the most it may hold: its maximum capacity) |
/// | `FM_E_BUFFER_TOO_SMALL` | `len` (needed), `capacity` (the buffer's) |
/// | `FM_E_INVALID_CAPACITY` | `len` (requested), `min`, `max`; for a maximum capacity, `min` is the capacity |
/// | `FM_E_INVALID_NAME` | `len` (the name's length in bytes, whichever rule it breaks; for a name without a NUL within `max + 1` bytes, the `max + 1` bytes read), `max` (`fm_max_name_len()`) |
/// | `FM_E_INCOMPATIBLE_VERSION` | `found`, `expected` |
/// | `FM_E_CONFLICT` | `found`, `expected` (generations) |
/// | `FM_E_TRUNCATED` | `len` (file size), `capacity` (needed) |
/// | `FM_E_CORRUPTED` | `found` (the impossible value) |
/// | `FM_E_OUT_OF_SPACE` | `len` (bytes needed) |
/// | `FM_E_TIMEOUT` | `waited_ms`, `pid` (lock holder, 0 if none) |
/// | `FM_E_TOO_MANY_ATTACHED` | `max` |
/// | `FM_E_NOT_UTF8` | `len` (valid prefix) |
/// | `FM_E_NOT_A_VALUE` | `len` (content) |
/// | `FM_E_FORKED_HANDLE` | `pid` (this process), `expected` (the opener's pid) |
/// | `FM_E_UNSUPPORTED_OPTION` (`fm_open_ex`) | `len` (`options.size`), `found` (the first nonzero byte past the known fields) |
/// | `FM_E_IO` | `os_error` (errno / GetLastError) |
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FmErrorInfo {
    /// The status the failed call returned (`FM_OK` when none failed yet).
    pub status: FmStatus,
    /// OS error code for `FM_E_IO`, else 0.
    pub os_error: i32,
    /// A length; see the table.
    pub len: u64,
    /// A capacity; see the table.
    pub capacity: u64,
    /// A lower bound; see the table.
    pub min: u64,
    /// An upper bound; see the table.
    pub max: u64,
    /// The value expected; see the table.
    pub expected: u64,
    /// The value found; see the table.
    pub found: u64,
    /// Milliseconds waited, for `FM_E_TIMEOUT`.
    pub waited_ms: u64,
    /// A process id; see the table.
    pub pid: u32,
}

/// Why an entry point failed: a library error or a boundary check.
#[derive(Debug)]
pub(crate) enum Fail {
    Core(Error),
    Null(&'static str),
    Invalid(String),
    Name {
        message: String,
        scanned: usize,
    },
    BufferTooSmall {
        needed: usize,
        capacity: usize,
    },
    /// `fm_unlock` without a lock of its own to release; the message says
    /// why (the library's `NotLocked` speaks of a guard C never sees).
    NotLocked(String),
    /// `fm_open_ex` options with a nonzero byte at `at`, past the fields
    /// this library knows, in a struct of `size` bytes.
    LaterOption {
        size: u32,
        at: u32,
        message: String,
    },
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Core(e)
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Fail>;

struct LastError {
    info: FmErrorInfo,
    message: CString,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError {
        info: FmErrorInfo::default(),
        message: CString::default(),
    });
}

/// Run an entry point's body: its status, with every failure (and panic)
/// recorded for `fm_last_error`. Success leaves the last error as it was
/// (like errno), so the fast path touches no thread-local.
#[inline]
pub(crate) fn boundary(body: impl FnOnce() -> FfiResult) -> FmStatus {
    // The status is made inside: what crosses catch_unwind is an i32, not
    // the whole `Result<(), Fail>`, which halves the boundary's cost.
    let status = catch_unwind(AssertUnwindSafe(|| match body() {
        Ok(()) => FM_OK,
        Err(fail) => record(fail),
    }));
    match status {
        Ok(status) => status,
        Err(payload) => record_panic(payload.as_ref()),
    }
}

#[cold]
pub(crate) fn record_panic(payload: &(dyn std::any::Any + Send)) -> FmStatus {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    set_last(
        FmErrorInfo {
            status: FM_E_PANIC,
            ..FmErrorInfo::default()
        },
        format!("panic caught at the C boundary (a filemap bug): {what}"),
    );
    FM_E_PANIC
}

#[cold]
pub(crate) fn record(fail: Fail) -> FmStatus {
    let (info, message) = describe(&fail);
    let status = info.status;
    set_last(info, message);
    status
}

fn set_last(info: FmErrorInfo, message: String) {
    // A message never holds NUL in practice; if one does, cut it there
    // rather than lose the whole text.
    let bytes: Vec<u8> = message
        .into_bytes()
        .into_iter()
        .take_while(|&b| b != 0)
        .collect();
    let message = CString::new(bytes).unwrap_or_default();
    // `try_with`: a thread being torn down has no slot left; the status
    // alone must do then.
    let _ = LAST.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = LastError { info, message };
        }
    });
}

pub(crate) fn last_info() -> FmErrorInfo {
    LAST.try_with(|last| last.try_borrow().map(|l| l.info).unwrap_or_default())
        .unwrap_or_default()
}

pub(crate) fn last_message_ptr() -> *const c_char {
    static EMPTY: &[u8; 1] = b"\0";
    LAST.try_with(|last| {
        last.try_borrow()
            // The CString lives in the thread-local until the next failure
            // on this thread replaces it.
            .map(|l| l.message.as_ptr())
            .unwrap_or(EMPTY.as_ptr().cast())
    })
    .unwrap_or(EMPTY.as_ptr().cast())
}

fn info(status: FmStatus) -> FmErrorInfo {
    FmErrorInfo {
        status,
        ..FmErrorInfo::default()
    }
}

fn describe(fail: &Fail) -> (FmErrorInfo, String) {
    match fail {
        Fail::Core(e) => (core_info(e), e.to_string()),
        Fail::Null(what) => (info(FM_E_NULL), format!("{what} is NULL")),
        Fail::Invalid(message) => (info(FM_E_INVALID_ARGUMENT), message.clone()),
        Fail::Name { message, scanned } => (
            FmErrorInfo {
                len: *scanned as u64,
                max: filemap::admin::MAX_NAME_LEN as u64,
                ..info(FM_E_INVALID_NAME)
            },
            message.clone(),
        ),
        Fail::BufferTooSmall { needed, capacity } => (
            FmErrorInfo {
                len: *needed as u64,
                capacity: *capacity as u64,
                ..info(FM_E_BUFFER_TOO_SMALL)
            },
            format!("the buffer holds {capacity} bytes and the content needs {needed}"),
        ),
        Fail::NotLocked(message) => (info(FM_E_NOT_LOCKED), message.clone()),
        Fail::LaterOption { size, at, message } => (
            FmErrorInfo {
                len: u64::from(*size),
                found: u64::from(*at),
                ..info(FM_E_UNSUPPORTED_OPTION)
            },
            message.clone(),
        ),
    }
}

/// The status of each kind of library error: the one table from
/// [`ErrorKind`] to a C status. `FM_E_UNKNOWN` only for a kind added to the
/// library after this table (`ErrorKind` is `#[non_exhaustive]`), which
/// `every_kind_has_a_status_of_its_own` catches.
pub(crate) fn status_of(kind: ErrorKind) -> FmStatus {
    match kind {
        ErrorKind::InvalidName => FM_E_INVALID_NAME,
        ErrorKind::InvalidCapacity => FM_E_INVALID_CAPACITY,
        ErrorKind::TooLarge => FM_E_TOO_LARGE,
        ErrorKind::NotFound => FM_E_NOT_FOUND,
        ErrorKind::AlreadyExists => FM_E_ALREADY_EXISTS,
        ErrorKind::PermissionDenied => FM_E_PERMISSION_DENIED,
        ErrorKind::OutOfSpace => FM_E_OUT_OF_SPACE,
        ErrorKind::IncompatibleVersion => FM_E_INCOMPATIBLE_VERSION,
        ErrorKind::NotARegion => FM_E_NOT_A_REGION,
        ErrorKind::NameCollision => FM_E_NAME_COLLISION,
        ErrorKind::Truncated => FM_E_TRUNCATED,
        ErrorKind::Corrupted => FM_E_CORRUPTED,
        ErrorKind::Timeout => FM_E_TIMEOUT,
        ErrorKind::Cancelled => FM_E_CANCELLED,
        ErrorKind::Interrupted => FM_E_INTERRUPTED,
        ErrorKind::BufferTooSmall => FM_E_BUFFER_TOO_SMALL,
        ErrorKind::WouldDeadlock => FM_E_WOULD_DEADLOCK,
        ErrorKind::Conflict => FM_E_CONFLICT,
        ErrorKind::WrongThread => FM_E_WRONG_THREAD,
        ErrorKind::NotLocked => FM_E_NOT_LOCKED,
        ErrorKind::ForkedHandle => FM_E_FORKED_HANDLE,
        ErrorKind::NotAValue => FM_E_NOT_A_VALUE,
        ErrorKind::WrongType => FM_E_WRONG_TYPE,
        ErrorKind::Codec => FM_E_CODEC,
        ErrorKind::TooManyAttached => FM_E_TOO_MANY_ATTACHED,
        ErrorKind::NotUtf8 => FM_E_NOT_UTF8,
        ErrorKind::Unsupported => FM_E_UNSUPPORTED,
        ErrorKind::UnsupportedOption => FM_E_UNSUPPORTED_OPTION,
        ErrorKind::Io => FM_E_IO,
        _ => FM_E_UNKNOWN,
    }
}

/// The status and numbers of a library error: the status from its kind,
/// the numbers from the variants that carry some (see [`FmErrorInfo`]).
fn core_info(e: &Error) -> FmErrorInfo {
    FmErrorInfo {
        status: status_of(e.kind()),
        ..core_numbers(e)
    }
}

fn core_numbers(e: &Error) -> FmErrorInfo {
    let none = FmErrorInfo::default();
    match e {
        // The name's length whatever rule it breaks: the bytes the C
        // caller's string held before its NUL.
        Error::InvalidName { name, .. } => FmErrorInfo {
            len: name.len() as u64,
            max: filemap::admin::MAX_NAME_LEN as u64,
            ..none
        },
        Error::InvalidCapacity {
            requested,
            min,
            max,
        } => FmErrorInfo {
            len: *requested,
            min: *min as u64,
            max: *max as u64,
            ..none
        },
        Error::InvalidMaxCapacity {
            requested,
            capacity,
            max,
        } => FmErrorInfo {
            len: *requested,
            min: *capacity as u64,
            max: *max as u64,
            ..none
        },
        // `capacity` is the limit that refused the content: the maximum.
        Error::TooLarge {
            len, max_capacity, ..
        } => FmErrorInfo {
            len: *len as u64,
            capacity: *max_capacity as u64,
            ..none
        },
        Error::BufferTooSmall { len, needed, .. } => FmErrorInfo {
            len: *needed as u64,
            capacity: *len as u64,
            ..none
        },
        Error::OutOfSpace { needed, .. } => FmErrorInfo {
            len: *needed,
            ..none
        },
        Error::IncompatibleVersion {
            found, expected, ..
        } => FmErrorInfo {
            found: u64::from(*found),
            expected: u64::from(*expected),
            ..none
        },
        Error::Truncated { size, needed, .. } => FmErrorInfo {
            len: *size,
            capacity: *needed,
            ..none
        },
        Error::Corrupted { value, .. } => FmErrorInfo {
            found: *value,
            ..none
        },
        Error::Timeout {
            waited, holder_pid, ..
        } => FmErrorInfo {
            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            pid: holder_pid.unwrap_or(0),
            ..none
        },
        Error::TooManyAttached { max, .. } => FmErrorInfo {
            max: *max as u64,
            ..none
        },
        Error::NotUtf8 { valid_up_to } => FmErrorInfo {
            len: *valid_up_to as u64,
            ..none
        },
        Error::Io { source, .. } => FmErrorInfo {
            os_error: source.raw_os_error().unwrap_or(0),
            ..none
        },
        Error::Conflict {
            expected, found, ..
        } => FmErrorInfo {
            expected: *expected,
            found: *found,
            ..none
        },
        Error::ForkedHandle { opened_by, pid, .. } => FmErrorInfo {
            expected: u64::from(*opened_by),
            pid: *pid,
            ..none
        },
        Error::NotAValue { len, .. } => FmErrorInfo {
            len: *len as u64,
            ..none
        },
        // The others carry no numbers (their names and reasons are in
        // the message).
        _ => none,
    }
}

/// Every status and its constant's name, for `fm_status_name` (the header
/// test checks this list against `filemap.h` and the Pascal unit).
pub(crate) const STATUS_NAMES: &[(FmStatus, &CStr)] = &[
    (FM_OK, c"FM_OK"),
    (FM_E_NULL, c"FM_E_NULL"),
    (FM_E_INVALID_ARGUMENT, c"FM_E_INVALID_ARGUMENT"),
    (FM_E_PANIC, c"FM_E_PANIC"),
    (FM_E_BUFFER_TOO_SMALL, c"FM_E_BUFFER_TOO_SMALL"),
    (FM_E_UNKNOWN, c"FM_E_UNKNOWN"),
    (FM_E_INVALID_NAME, c"FM_E_INVALID_NAME"),
    (FM_E_INVALID_CAPACITY, c"FM_E_INVALID_CAPACITY"),
    (FM_E_TOO_LARGE, c"FM_E_TOO_LARGE"),
    (FM_E_NOT_FOUND, c"FM_E_NOT_FOUND"),
    (FM_E_ALREADY_EXISTS, c"FM_E_ALREADY_EXISTS"),
    (FM_E_PERMISSION_DENIED, c"FM_E_PERMISSION_DENIED"),
    (FM_E_OUT_OF_SPACE, c"FM_E_OUT_OF_SPACE"),
    (FM_E_INCOMPATIBLE_VERSION, c"FM_E_INCOMPATIBLE_VERSION"),
    (FM_E_NOT_A_REGION, c"FM_E_NOT_A_REGION"),
    (FM_E_TRUNCATED, c"FM_E_TRUNCATED"),
    (FM_E_CORRUPTED, c"FM_E_CORRUPTED"),
    (FM_E_TIMEOUT, c"FM_E_TIMEOUT"),
    (FM_E_WOULD_DEADLOCK, c"FM_E_WOULD_DEADLOCK"),
    (FM_E_TOO_MANY_ATTACHED, c"FM_E_TOO_MANY_ATTACHED"),
    (FM_E_NOT_UTF8, c"FM_E_NOT_UTF8"),
    (FM_E_UNSUPPORTED, c"FM_E_UNSUPPORTED"),
    (FM_E_UNSUPPORTED_OPTION, c"FM_E_UNSUPPORTED_OPTION"),
    (FM_E_IO, c"FM_E_IO"),
    (FM_E_CONFLICT, c"FM_E_CONFLICT"),
    (FM_E_WRONG_THREAD, c"FM_E_WRONG_THREAD"),
    (FM_E_NOT_LOCKED, c"FM_E_NOT_LOCKED"),
    (FM_E_FORKED_HANDLE, c"FM_E_FORKED_HANDLE"),
    (FM_E_NOT_A_VALUE, c"FM_E_NOT_A_VALUE"),
    (FM_E_WRONG_TYPE, c"FM_E_WRONG_TYPE"),
    (FM_E_CODEC, c"FM_E_CODEC"),
    (FM_E_NAME_COLLISION, c"FM_E_NAME_COLLISION"),
    (FM_E_CANCELLED, c"FM_E_CANCELLED"),
    (FM_E_INTERRUPTED, c"FM_E_INTERRUPTED"),
];

/// The constant's name of `status`, for `fm_status_name`.
pub(crate) fn name_of(status: FmStatus) -> &'static CStr {
    STATUS_NAMES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(c"FM_E_?", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_kind_has_a_status_of_its_own() {
        // The statuses of the boundary's own failures, which no library
        // error may take.
        let boundary_only = [FM_OK, FM_E_NULL, FM_E_INVALID_ARGUMENT, FM_E_PANIC];
        let mut seen: Vec<(FmStatus, ErrorKind)> = Vec::new();
        for &kind in ErrorKind::ALL {
            let status = status_of(kind);
            assert_ne!(status, FM_E_UNKNOWN, "{kind} has no status of its own");
            assert!(
                !boundary_only.contains(&status),
                "{kind} maps to {status}, a status of the boundary's own"
            );
            if let Some((_, other)) = seen.iter().find(|(s, _)| *s == status) {
                panic!("{kind} and {other} share status {status}");
            }
            assert_ne!(
                name_of(status).to_bytes(),
                b"FM_E_?",
                "{kind}'s status {status} has no name"
            );
            seen.push((status, kind));
        }
    }

    #[test]
    fn status_names_are_unique_and_spell_the_constants() {
        for (i, (status, name)) in STATUS_NAMES.iter().enumerate() {
            assert!(*status <= 0, "{name:?} is positive");
            assert!(
                STATUS_NAMES[..i]
                    .iter()
                    .all(|(s, n)| s != status && n != name),
                "{name:?} ({status}) is listed twice"
            );
            assert_eq!(name_of(*status), *name);
        }
        assert_eq!(name_of(-999).to_bytes(), b"FM_E_?");
    }

    #[test]
    fn the_numbers_travel_with_the_status() {
        let info = core_info(&Error::Timeout {
            what: "x",
            waited: Duration::from_millis(5),
            holder_pid: Some(7),
        });
        assert_eq!(
            (info.status, info.waited_ms, info.pid),
            (FM_E_TIMEOUT, 5, 7)
        );
        let info = core_info(&Error::Io {
            op: "x",
            name: String::new(),
            source: std::io::Error::from_raw_os_error(2),
        });
        assert_eq!((info.status, info.os_error), (FM_E_IO, 2));
        let info = core_info(&Error::ForkedHandle {
            name: String::new(),
            opened_by: 1,
            pid: 2,
        });
        assert_eq!(
            (info.status, info.expected, info.pid),
            (FM_E_FORKED_HANDLE, 1, 2)
        );
        // As the boundary's own too-small buffer: `len` is what is needed.
        let info = core_info(&Error::BufferTooSmall {
            name: String::new(),
            len: 4,
            needed: 11,
        });
        assert_eq!(
            (info.status, info.len, info.capacity),
            (FM_E_BUFFER_TOO_SMALL, 11, 4)
        );
        let info = core_info(&Error::Cancelled {
            name: String::new(),
        });
        assert_eq!(
            info,
            FmErrorInfo {
                status: FM_E_CANCELLED,
                ..FmErrorInfo::default()
            }
        );
    }
}
