//! The error type: one enum, each variant carrying the numbers that matter.
//!
//! This module owns the wording users see. It must never hide a cause: an
//! I/O failure keeps its `io::Error` as `source`.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which naming rule a region name broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// The name is empty.
    Empty,
    /// The name is longer than the platform's longest name (`MAX_NAME_LEN`:
    /// 247 bytes, 224 on Windows).
    TooLong {
        /// Length of the rejected name in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The name contains a path separator (`/` or `\`).
    Separator,
    /// The name contains a NUL byte or another control character.
    ControlCharacter,
    /// The name is `.` or `..`.
    Dots,
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameRule::Empty => f.write_str("it is empty"),
            NameRule::TooLong { len, max } => {
                write!(f, "it is {len} bytes long and the maximum is {max}")
            }
            NameRule::Separator => f.write_str("it contains a path separator ('/' or '\\')"),
            NameRule::ControlCharacter => {
                f.write_str("it contains a NUL byte or another control character")
            }
            NameRule::Dots => f.write_str("'.' and '..' are reserved"),
        }
    }
}

/// Everything that can go wrong with a region.
///
/// Whatever the variant, an operation that fails leaves the published
/// content of the region as it was.
///
/// ```
/// use filemap::{Error, ErrorKind, FileMap};
///
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-error-{}", std::process::id());
/// let map = FileMap::builder(&name).capacity(32).open()?;
/// match map.write(&[0; 33]) {
///     Err(Error::TooLarge { len, capacity, .. }) => assert_eq!((len, capacity), (33, 32)),
///     other => panic!("{other:?}"),
/// }
/// // Callers that map errors to their own codes match on the kind.
/// assert_eq!(map.write(&[0; 33]).unwrap_err().kind(), ErrorKind::TooLarge);
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The region name breaks a naming rule.
    #[error("invalid region name {name:?}: {rule}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        rule: NameRule,
    },

    /// The requested capacity is outside the supported range.
    #[error("invalid capacity {requested} bytes: it must be between {min} and {max} bytes")]
    InvalidCapacity {
        /// The requested capacity in bytes.
        requested: u64,
        /// The minimum capacity.
        min: usize,
        /// The maximum capacity.
        max: usize,
    },

    /// The requested maximum capacity is less than the capacity or more
    /// than [`MAX_CAPACITY`](crate::MAX_CAPACITY) ([`ErrorKind::InvalidCapacity`]).
    #[error("invalid maximum capacity {requested} bytes: it must be between the capacity ({capacity} bytes) and {max} bytes")]
    InvalidMaxCapacity {
        /// The requested maximum capacity in bytes.
        requested: u64,
        /// The capacity asked for (the least the maximum may be).
        capacity: usize,
        /// The largest maximum accepted.
        max: usize,
    },

    /// The content does not fit the region, even grown to its maximum
    /// capacity; nothing was written.
    #[error("{}", too_large(*len, *capacity, *max_capacity))]
    TooLarge {
        /// Length of the rejected content in bytes.
        len: usize,
        /// Capacity of the region in bytes when the content was refused.
        capacity: usize,
        /// The most the region may grow to in bytes (equal to `capacity`
        /// for a region that cannot grow): the content is longer.
        max_capacity: usize,
    },

    /// No region of that name exists (and the builder was told not to create one).
    #[error("no region named {name:?} exists")]
    NotFound {
        /// The region name.
        name: String,
    },

    /// A region of that name exists (and the builder was told to create only).
    #[error("a region named {name:?} exists already")]
    AlreadyExists {
        /// The region name.
        name: String,
    },

    /// The operating system refused access to the region's backing object.
    #[error("permission denied for region {name:?} ({path})")]
    PermissionDenied {
        /// The region name.
        name: String,
        /// The backing object's path.
        path: String,
    },

    /// The backing store has no room for the region.
    #[error("no space left to create region {name:?}: it needs {needed} bytes")]
    OutOfSpace {
        /// The region name.
        name: String,
        /// Bytes the region needs.
        needed: u64,
    },

    /// The region was made by a filemap with another layout version.
    #[error("region {name:?} has layout version {found}; this filemap reads version {expected}")]
    IncompatibleVersion {
        /// The region name.
        name: String,
        /// The version found in the region.
        found: u32,
        /// The version this build understands.
        expected: u32,
    },

    /// The backing object exists but is not a filemap region.
    #[error("{path} is not a filemap region ({reason})")]
    NotARegion {
        /// The backing object's path.
        path: String,
        /// Why it was not recognised.
        reason: &'static str,
    },

    /// Another region's object has the name this region's would have
    /// (macOS and FreeBSD name objects by a hash of the region name): the
    /// two names hash the same. Nothing was attached to.
    #[error("region {name:?} collides with region {other:?}: their object names hash the same")]
    NameCollision {
        /// The region asked for.
        name: String,
        /// The region the object belongs to.
        other: String,
    },

    /// The backing file is shorter than its header says the region is:
    /// found at open, or later, when the file shrank under an open handle
    /// (someone truncated it). Such a handle reads zero pages of its own
    /// from then on and every call on it returns this error; open the
    /// region again.
    #[error(
        "region {name:?} is truncated: its file holds {size} bytes, its header needs {needed}"
    )]
    Truncated {
        /// The region name.
        name: String,
        /// Size of the backing file in bytes.
        size: u64,
        /// Size the header's capacity implies.
        needed: u64,
    },

    /// A value read from the shared header is impossible; another process
    /// wrote garbage into the region.
    #[error("region {name:?} is corrupted: header field `{field}` holds {value}")]
    Corrupted {
        /// The region name.
        name: String,
        /// The header field that holds the impossible value.
        field: &'static str,
        /// The value found.
        value: u64,
    },

    /// A blocking call gave up.
    #[error("timed out after {waited:?} waiting for {what}{}", holder_text(*.holder_pid))]
    Timeout {
        /// What the call waited for.
        what: &'static str,
        /// How long it waited.
        waited: Duration,
        /// The process recorded as holding the lock, when waiting for it.
        holder_pid: Option<u32>,
    },

    /// A wait was cancelled through its [`CancelToken`](crate::CancelToken).
    #[error("the wait on region {name:?} was cancelled")]
    Cancelled {
        /// The region name.
        name: String,
    },

    /// An [interruptible](crate::Wait::interruptible) wait was cut short
    /// by a signal delivered to the waiting thread (Unix), so that the
    /// caller can handle it (a language runtime's Ctrl-C, for one).
    #[error("the wait on region {name:?} was interrupted by a signal")]
    Interrupted {
        /// The region name.
        name: String,
    },

    /// [`FileMap::read_into`](crate::FileMap::read_into): the caller's
    /// buffer is shorter than the content; nothing was copied.
    #[error("the content of region {name:?} is {needed} bytes; the buffer holds only {len}")]
    BufferTooSmall {
        /// The region name.
        name: String,
        /// Length of the caller's buffer in bytes.
        len: usize,
        /// Length of the content in bytes: the buffer that holds it.
        needed: usize,
    },

    /// This thread already holds the region's lock (through this or another handle).
    #[error("this thread already holds the lock of region {name:?}")]
    WouldDeadlock {
        /// The region name.
        name: String,
    },

    /// [`FileMap::write_if`](crate::FileMap::write_if): the region moved
    /// past the generation the caller expected; nothing was written.
    #[error("region {name:?} is at generation {found}, not the expected {expected}; nothing was written")]
    Conflict {
        /// The region name.
        name: String,
        /// The generation the caller expected.
        expected: u64,
        /// The generation found.
        found: u64,
    },

    /// An [`OwnedGuard`](crate::OwnedGuard) was used from a thread other
    /// than the one that took the lock; the lock is still held.
    #[error("the lock of region {name:?} belongs to the thread that took it; it is still held")]
    WrongThread {
        /// The region name.
        name: String,
    },

    /// An [`OwnedGuard`](crate::OwnedGuard) was used after it unlocked.
    #[error("the lock of region {name:?} was already released by this guard")]
    NotLocked {
        /// The region name.
        name: String,
    },

    /// The handle was inherited through `fork()`: the child must open the
    /// region again by name (the parent's handle may close, and with it a
    /// non-persistent region, at any time).
    #[error("this handle of region {name:?} was opened by process {opened_by} and inherited by process {pid} through fork(); open the region again in the child")]
    ForkedHandle {
        /// The region name.
        name: String,
        /// The process that opened the handle.
        opened_by: u32,
        /// The calling process.
        pid: u32,
    },

    /// A typed read (`ValueExt::read_value`, feature `serde`)
    /// found content that is not a typed value.
    #[error(
        "region {name:?} does not hold a typed value (it holds {len} bytes of something else)"
    )]
    NotAValue {
        /// The region name.
        name: String,
        /// Length of the content found.
        len: usize,
    },

    /// A typed read found a value of another type than the one asked for.
    #[error("region {name:?} holds a value of type {found:?}, not {expected:?}")]
    WrongType {
        /// The region name.
        name: String,
        /// The type tag asked for.
        expected: String,
        /// The type tag found.
        found: String,
    },

    /// A typed value could not be encoded or decoded.
    #[error("cannot {op} the value of region {name:?}: {reason}")]
    Codec {
        /// The region name.
        name: String,
        /// `"encode"` or `"decode"`.
        op: &'static str,
        /// What the codec said.
        reason: String,
    },

    /// Every slot of the region's attach table is taken by a live process.
    #[error("region {name:?} has {max} attached handles already, the most it can track")]
    TooManyAttached {
        /// The region name.
        name: String,
        /// Size of the attach table.
        max: usize,
    },

    /// The content is not valid UTF-8 (from the text readers).
    #[error("the region's content is not UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },

    /// filemap has no backend for this platform yet.
    #[error("filemap does not support this platform yet")]
    Unsupported,

    /// This platform's backend cannot do what the builder asked for.
    #[error("{option} is not available on this platform: {reason}")]
    UnsupportedOption {
        /// What was asked for.
        option: &'static str,
        /// Why it cannot be done here, and what to do instead.
        reason: &'static str,
    },

    /// Another operating-system error.
    #[error("{op} failed for region {name:?}: {source}")]
    Io {
        /// The operation that failed, e.g. `"mmap"`.
        op: &'static str,
        /// The region name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What kind of failure an [`Error`] is: a stable, fieldless code for
/// callers that map errors to their own (status codes, exception classes).
///
/// New kinds may come with new versions (`#[non_exhaustive]`); every one
/// is listed in [`ErrorKind::ALL`], so a binding can check that it maps
/// each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::InvalidName`].
    InvalidName,
    /// [`Error::InvalidCapacity`].
    InvalidCapacity,
    /// [`Error::TooLarge`].
    TooLarge,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::AlreadyExists`].
    AlreadyExists,
    /// [`Error::PermissionDenied`].
    PermissionDenied,
    /// [`Error::OutOfSpace`].
    OutOfSpace,
    /// [`Error::IncompatibleVersion`].
    IncompatibleVersion,
    /// [`Error::NotARegion`].
    NotARegion,
    /// [`Error::NameCollision`].
    NameCollision,
    /// [`Error::Truncated`].
    Truncated,
    /// [`Error::Corrupted`].
    Corrupted,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Cancelled`].
    Cancelled,
    /// [`Error::Interrupted`].
    Interrupted,
    /// [`Error::BufferTooSmall`].
    BufferTooSmall,
    /// [`Error::WouldDeadlock`].
    WouldDeadlock,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::WrongThread`].
    WrongThread,
    /// [`Error::NotLocked`].
    NotLocked,
    /// [`Error::ForkedHandle`].
    ForkedHandle,
    /// [`Error::NotAValue`].
    NotAValue,
    /// [`Error::WrongType`].
    WrongType,
    /// [`Error::Codec`].
    Codec,
    /// [`Error::TooManyAttached`].
    TooManyAttached,
    /// [`Error::NotUtf8`].
    NotUtf8,
    /// [`Error::Unsupported`].
    Unsupported,
    /// [`Error::UnsupportedOption`].
    UnsupportedOption,
    /// [`Error::Io`].
    Io,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::InvalidName,
        ErrorKind::InvalidCapacity,
        ErrorKind::TooLarge,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::PermissionDenied,
        ErrorKind::OutOfSpace,
        ErrorKind::IncompatibleVersion,
        ErrorKind::NotARegion,
        ErrorKind::NameCollision,
        ErrorKind::Truncated,
        ErrorKind::Corrupted,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::Interrupted,
        ErrorKind::BufferTooSmall,
        ErrorKind::WouldDeadlock,
        ErrorKind::Conflict,
        ErrorKind::WrongThread,
        ErrorKind::NotLocked,
        ErrorKind::ForkedHandle,
        ErrorKind::NotAValue,
        ErrorKind::WrongType,
        ErrorKind::Codec,
        ErrorKind::TooManyAttached,
        ErrorKind::NotUtf8,
        ErrorKind::Unsupported,
        ErrorKind::UnsupportedOption,
        ErrorKind::Io,
    ];

    /// The kind's name as written in Rust (`"NotFound"`), stable across
    /// versions: what bindings and logs may key on.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidName => "InvalidName",
            ErrorKind::InvalidCapacity => "InvalidCapacity",
            ErrorKind::TooLarge => "TooLarge",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::PermissionDenied => "PermissionDenied",
            ErrorKind::OutOfSpace => "OutOfSpace",
            ErrorKind::IncompatibleVersion => "IncompatibleVersion",
            ErrorKind::NotARegion => "NotARegion",
            ErrorKind::NameCollision => "NameCollision",
            ErrorKind::Truncated => "Truncated",
            ErrorKind::Corrupted => "Corrupted",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Interrupted => "Interrupted",
            ErrorKind::BufferTooSmall => "BufferTooSmall",
            ErrorKind::WouldDeadlock => "WouldDeadlock",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::WrongThread => "WrongThread",
            ErrorKind::NotLocked => "NotLocked",
            ErrorKind::ForkedHandle => "ForkedHandle",
            ErrorKind::NotAValue => "NotAValue",
            ErrorKind::WrongType => "WrongType",
            ErrorKind::Codec => "Codec",
            ErrorKind::TooManyAttached => "TooManyAttached",
            ErrorKind::NotUtf8 => "NotUtf8",
            ErrorKind::Unsupported => "Unsupported",
            ErrorKind::UnsupportedOption => "UnsupportedOption",
            ErrorKind::Io => "Io",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Error {
    /// What kind of failure this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        // Exhaustive on purpose: a new variant does not compile until it
        // has a kind, and `ErrorKind::ALL` is checked to list every kind.
        match self {
            Error::InvalidName { .. } => ErrorKind::InvalidName,
            Error::InvalidCapacity { .. } | Error::InvalidMaxCapacity { .. } => {
                ErrorKind::InvalidCapacity
            }
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::OutOfSpace { .. } => ErrorKind::OutOfSpace,
            Error::IncompatibleVersion { .. } => ErrorKind::IncompatibleVersion,
            Error::NotARegion { .. } => ErrorKind::NotARegion,
            Error::NameCollision { .. } => ErrorKind::NameCollision,
            Error::Truncated { .. } => ErrorKind::Truncated,
            Error::Corrupted { .. } => ErrorKind::Corrupted,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Interrupted { .. } => ErrorKind::Interrupted,
            Error::BufferTooSmall { .. } => ErrorKind::BufferTooSmall,
            Error::WouldDeadlock { .. } => ErrorKind::WouldDeadlock,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::WrongThread { .. } => ErrorKind::WrongThread,
            Error::NotLocked { .. } => ErrorKind::NotLocked,
            Error::ForkedHandle { .. } => ErrorKind::ForkedHandle,
            Error::NotAValue { .. } => ErrorKind::NotAValue,
            Error::WrongType { .. } => ErrorKind::WrongType,
            Error::Codec { .. } => ErrorKind::Codec,
            Error::TooManyAttached { .. } => ErrorKind::TooManyAttached,
            Error::NotUtf8 { .. } => ErrorKind::NotUtf8,
            Error::Unsupported => ErrorKind::Unsupported,
            Error::UnsupportedOption { .. } => ErrorKind::UnsupportedOption,
            Error::Io { .. } => ErrorKind::Io,
        }
    }
}

fn holder_text(holder: Option<u32>) -> String {
    match holder {
        Some(pid) => format!(" (held by process {pid})"),
        None => String::new(),
    }
}

/// The text of [`Error::TooLarge`]: both numbers, and the maximum when the
/// region may grow.
fn too_large(len: usize, capacity: usize, max_capacity: usize) -> String {
    if capacity >= max_capacity {
        format!(
            "content of {len} bytes does not fit the region's capacity of {max_capacity} bytes; \
             the previous content is kept"
        )
    } else {
        format!(
            "content of {len} bytes does not fit the region's maximum capacity of \
             {max_capacity} bytes (it holds {capacity} bytes now, and grows up to the \
             maximum); the previous content is kept"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_in_declaration_order() {
        // No wildcard: a new kind does not compile here until it is
        // listed, and then must be in `ALL` too.
        let listed = |k: ErrorKind| match k {
            ErrorKind::InvalidName
            | ErrorKind::InvalidCapacity
            | ErrorKind::TooLarge
            | ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::PermissionDenied
            | ErrorKind::OutOfSpace
            | ErrorKind::IncompatibleVersion
            | ErrorKind::NotARegion
            | ErrorKind::NameCollision
            | ErrorKind::Truncated
            | ErrorKind::Corrupted
            | ErrorKind::Timeout
            | ErrorKind::Cancelled
            | ErrorKind::Interrupted
            | ErrorKind::BufferTooSmall
            | ErrorKind::WouldDeadlock
            | ErrorKind::Conflict
            | ErrorKind::WrongThread
            | ErrorKind::NotLocked
            | ErrorKind::ForkedHandle
            | ErrorKind::NotAValue
            | ErrorKind::WrongType
            | ErrorKind::Codec
            | ErrorKind::TooManyAttached
            | ErrorKind::NotUtf8
            | ErrorKind::Unsupported
            | ErrorKind::UnsupportedOption
            | ErrorKind::Io => k.name(),
        };
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|&k| listed(k)).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a kind is listed twice");
        assert_eq!(names.len(), 29, "ErrorKind::ALL misses a kind");
    }

    #[test]
    fn an_error_reports_its_kind() {
        let e = Error::TooLarge {
            len: 5000,
            capacity: 4096,
            max_capacity: 4096,
        };
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert_eq!(e.kind().to_string(), "TooLarge");
    }

    #[test]
    fn too_large_names_the_length_and_the_maximum() {
        let fixed = Error::TooLarge {
            len: 5000,
            capacity: 4096,
            max_capacity: 4096,
        };
        assert_eq!(
            fixed.to_string(),
            "content of 5000 bytes does not fit the region's capacity of 4096 bytes; \
             the previous content is kept"
        );
        let growing = Error::TooLarge {
            len: 70000,
            capacity: 8192,
            max_capacity: 65536,
        }
        .to_string();
        assert!(growing.contains("70000 bytes"), "{growing}");
        assert!(
            growing.contains("maximum capacity of 65536 bytes"),
            "{growing}"
        );
        assert!(growing.contains("8192 bytes now"), "{growing}");
    }
}
