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
    /// The name is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
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

    /// The content does not fit the region; nothing was written.
    #[error("content of {len} bytes does not fit the region's capacity of {capacity} bytes; the previous content is kept")]
    TooLarge {
        /// Length of the rejected content in bytes.
        len: usize,
        /// Capacity of the region in bytes.
        capacity: usize,
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

    /// A typed read ([`FileMap::read_value`](crate::FileMap::read_value))
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

fn holder_text(holder: Option<u32>) -> String {
    match holder {
        Some(pid) => format!(" (held by process {pid})"),
        None => String::new(),
    }
}
