//! The metadata a bridge attaches to every sample and reply.
//!
//! A fixed 56-byte little-endian record, carried as the Zenoh attachment;
//! the payload is the region's content, whole:
//!
//! | bytes | field                                                  |
//! |-------|--------------------------------------------------------|
//! | 0..4  | magic `FMBR`                                           |
//! | 4     | format version ([`VERSION`])                           |
//! | 5..8  | zero                                                   |
//! | 8..16 | HLC time of the write (NTP64: seconds << 32 + fraction) |
//! | 16..32| origin host id (the origin bridge's Zenoh id)          |
//! | 32..40| generation of the write in the origin region           |
//! | 40..44| writer's process id on the origin host                 |
//! | 44..48| writer's handle number inside that process             |
//! | 48..56| content length in bytes (must equal the payload's)     |

use filemap::WriterId;

/// First four bytes of every attachment.
pub const MAGIC: [u8; 4] = *b"FMBR";
/// The format version this build writes and accepts.
pub const VERSION: u8 = 1;
/// Length of an encoded [`Meta`].
pub const META_LEN: usize = 56;

/// Orders writes across hosts: HLC time first, then the origin host id.
/// Every bridge applies a value only if its `Version` is greater than the
/// one its region holds, so all hosts end on the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// HLC time (NTP64).
    pub time: u64,
    /// Origin host id.
    pub host: [u8; 16],
}

impl Version {
    /// The host id as hex, for logs: as Zenoh writes the id (the number,
    /// no leading zero), so that a bridge's `ready` line, its peers'
    /// `peer` fields and the `origin` of its values name it alike.
    pub fn host_hex(&self) -> String {
        format!("{:x}", u128::from_le_bytes(self.host))
    }
}

/// What travels with a content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Where the write stands in the global order.
    pub version: Version,
    /// Generation of the write in the origin host's region.
    pub generation: u64,
    /// Who wrote it on the origin host.
    pub writer: WriterId,
    /// Content length.
    pub len: u64,
}

/// Why an attachment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// No attachment at all.
    Missing,
    /// Not [`META_LEN`] bytes long.
    Length(usize),
    /// Not starting with [`MAGIC`].
    Magic,
    /// A format version this build does not know.
    Version(u8),
    /// The declared length differs from the payload's.
    LengthMismatch {
        /// Declared in the attachment.
        declared: u64,
        /// Actual payload length.
        actual: u64,
    },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Missing => write!(f, "no attachment"),
            WireError::Length(n) => write!(f, "attachment of {n} bytes, expected {META_LEN}"),
            WireError::Magic => write!(f, "attachment without the FMBR magic"),
            WireError::Version(v) => write!(f, "format version {v}, this bridge speaks {VERSION}"),
            WireError::LengthMismatch { declared, actual } => write!(
                f,
                "attachment declares {declared} bytes, payload has {actual}"
            ),
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

impl Meta {
    /// The 56-byte record.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[8..16].copy_from_slice(&self.version.time.to_le_bytes());
        b[16..32].copy_from_slice(&self.version.host);
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        b[40..44].copy_from_slice(&self.writer.pid.to_le_bytes());
        b[44..48].copy_from_slice(&self.writer.handle.to_le_bytes());
        b[48..56].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decode and check an attachment against the payload length.
    ///
    /// # Errors
    /// A [`WireError`] naming what is wrong.
    pub fn decode(attachment: Option<&[u8]>, payload_len: usize) -> Result<Meta, WireError> {
        let b = attachment.ok_or(WireError::Missing)?;
        if b.len() != META_LEN {
            return Err(WireError::Length(b.len()));
        }
        if b[0..4] != MAGIC {
            return Err(WireError::Magic);
        }
        if b[4] != VERSION {
            return Err(WireError::Version(b[4]));
        }
        let mut host = [0u8; 16];
        host.copy_from_slice(&b[16..32]);
        let meta = Meta {
            version: Version {
                time: u64_at(b, 8),
                host,
            },
            generation: u64_at(b, 32),
            writer: WriterId {
                pid: u32_at(b, 40),
                handle: u32_at(b, 44),
            },
            len: u64_at(b, 48),
        };
        if meta.len != payload_len as u64 {
            return Err(WireError::LengthMismatch {
                declared: meta.len,
                actual: payload_len as u64,
            });
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            version: Version {
                time: 0x1234_5678_9abc_def0,
                host: [7; 16],
            },
            generation: 42,
            writer: WriterId { pid: 99, handle: 3 },
            len: 5,
        }
    }

    /// As Zenoh writes an id: no leading zero, whatever the top byte.
    #[test]
    fn host_hex_writes_the_id_as_zenoh_does() {
        let host = |n: u128| Version {
            time: 0,
            host: n.to_le_bytes(),
        };
        assert_eq!(host(0x0f1f_2f3f_4f5f_6f7f).host_hex(), "f1f2f3f4f5f6f7f");
        assert_eq!(host(0xab_0001).host_hex(), "ab0001");
        assert_eq!(host(0).host_hex(), "0");
        assert_eq!(host(u128::MAX).host_hex(), "f".repeat(32));
    }

    #[test]
    fn round_trip() {
        let m = meta();
        assert_eq!(Meta::decode(Some(&m.encode()), 5), Ok(m));
    }

    #[test]
    fn refusals() {
        let good = meta().encode();
        assert_eq!(Meta::decode(None, 5), Err(WireError::Missing));
        assert_eq!(
            Meta::decode(Some(&good[..55]), 5),
            Err(WireError::Length(55))
        );
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(Meta::decode(Some(&bad), 5), Err(WireError::Magic));
        let mut bad = good;
        bad[4] = 2;
        assert_eq!(Meta::decode(Some(&bad), 5), Err(WireError::Version(2)));
        assert_eq!(
            Meta::decode(Some(&good), 6),
            Err(WireError::LengthMismatch {
                declared: 5,
                actual: 6
            })
        );
    }

    #[test]
    fn order_is_time_then_host() {
        let a = Version {
            time: 1,
            host: [9; 16],
        };
        let b = Version {
            time: 2,
            host: [1; 16],
        };
        let c = Version {
            time: 2,
            host: [2; 16],
        };
        assert!(a < b && b < c);
    }
}
