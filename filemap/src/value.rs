//! Typed contents (cargo feature `serde`): a value serialised straight
//! into the region through a [`WriteLoan`](crate::WriteLoan), read back
//! with a check of its type.
//!
//! This module owns the typed-content format. A typed content is
//!
//! ```text
//! offset  size     field
//!      0     4     magic   b"FMV\x01"
//!      4     1     codec   1: MessagePack (named fields), 2: JSON
//!      5     2     tag_len little-endian u16
//!      7   tag_len tag     the type's name, UTF-8
//!      ...         payload the value, in the codec
//! ```
//!
//! The binary codec is MessagePack with named fields (`rmp-serde`): it is
//! compact, every language has a reader for it (Python's `msgpack`, C's
//! `msgpack-c`), and named fields keep a reader working when a writer adds
//! or reorders fields. JSON is there for people and for scripts: the CLI
//! prints it (`filemap read --json`). Like everything in a region, a typed
//! content is input from a stranger: every length is checked, and bad
//! bytes are [`Error::NotAValue`], [`Error::WrongType`] or
//! [`Error::Codec`], never a panic.

#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::region::FileMap;
use crate::snapshot::{Published, Snapshot};

/// First bytes of every typed content.
pub const VALUE_MAGIC: [u8; 4] = *b"FMV\x01";

/// How a typed value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack with named fields: compact, readable from any language.
    MessagePack,
    /// JSON: readable by people, and printed by `filemap read --json`.
    Json,
}

impl Codec {
    fn byte(self) -> u8 {
        match self {
            Codec::MessagePack => 1,
            Codec::Json => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Codec> {
        match byte {
            1 => Some(Codec::MessagePack),
            2 => Some(Codec::Json),
            _ => None,
        }
    }
}

/// The parts of a typed content, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueParts<'a> {
    /// How the payload is encoded.
    pub codec: Codec,
    /// The type tag it was written with.
    pub tag: &'a str,
    /// The encoded value.
    pub payload: &'a [u8],
}

/// The most levels of arrays and maps [`ValueParts::to_json`] decodes.
/// serde_json's reader refuses a 128th level, so whatever `to_json`
/// returns, from either codec, prints as JSON that serde_json (and
/// Python's `json`) read back. A MessagePack payload may nest up to 1,023
/// levels (rmp-serde's own limit); printed, that is JSON few readers take.
pub const MAX_JSON_DEPTH: usize = 127;

impl ValueParts<'_> {
    /// The value as JSON, whatever its codec (for printing it, or handing
    /// it to code that does not know its type), nested at most
    /// [`MAX_JSON_DEPTH`] levels.
    ///
    /// # Errors
    /// What the codec said, when the payload does not decode; a sentence
    /// naming the limit for a value nested deeper.
    pub fn to_json(&self) -> std::result::Result<serde_json::Value, String> {
        self.to_json_within(MAX_JSON_DEPTH)
    }

    /// As [`to_json`](Self::to_json), for a value nested at most `levels`
    /// levels of arrays and maps (at most [`MAX_JSON_DEPTH`]): a value
    /// printed inside other JSON has that many levels fewer to use.
    ///
    /// # Errors
    /// As [`to_json`](Self::to_json).
    pub fn to_json_within(&self, levels: usize) -> std::result::Result<serde_json::Value, String> {
        use serde::Deserialize;
        let levels = levels.min(MAX_JSON_DEPTH);
        let too_deep = || {
            format!(
                "the value is nested deeper than {levels} levels of arrays and maps, \
                 the most filemap shows as JSON"
            )
        };
        match self.codec {
            Codec::MessagePack => {
                let mut de = rmp_serde::Deserializer::from_read_ref(self.payload);
                // rmp-serde refuses the container that brings its count
                // to 0: `levels + 1` lets `levels` through.
                de.set_max_depth(levels + 1);
                serde_json::Value::deserialize(&mut de).map_err(|e| match e {
                    rmp_serde::decode::Error::DepthLimitExceeded => too_deep(),
                    e => e.to_string(),
                })
            }
            Codec::Json => {
                if json_nesting(self.payload) > levels {
                    return Err(too_deep());
                }
                serde_json::from_slice(self.payload).map_err(|e| e.to_string())
            }
        }
    }
}

/// How deep the arrays and objects of JSON text `bytes` nest (brackets
/// inside strings not counted), without decoding it: one pass, no
/// recursion, whatever the input.
fn json_nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Split a typed content into codec, tag and payload; `None` when `content`
/// is not a typed content (no magic, an unknown codec, a tag that runs past
/// the end or is not UTF-8).
pub fn value_parts(content: &[u8]) -> Option<ValueParts<'_>> {
    let rest = content.strip_prefix(&VALUE_MAGIC)?;
    let (&codec, rest) = rest.split_first()?;
    let codec = Codec::from_byte(codec)?;
    let (len, rest) = rest.split_at_checked(2)?;
    let len = u16::from_le_bytes([len[0], len[1]]) as usize;
    let (tag, payload) = rest.split_at_checked(len)?;
    let tag = std::str::from_utf8(tag).ok()?;
    Some(ValueParts {
        codec,
        tag,
        payload,
    })
}

/// The tag a type is written with by default: its name as the compiler
/// spells it (`std::any::type_name`). That spelling is the same for every
/// process built from the same source with the same compiler; where
/// writers and readers are built apart, name the tag yourself
/// ([`ValueExt::write_value_as`], [`ValueExt::read_value_as`]).
pub fn default_tag<T: ?Sized>() -> &'static str {
    std::any::type_name::<T>()
}

/// Typed values on a [`FileMap`] (in [`prelude`](crate::prelude)): a
/// value is published with a type tag and read back as the same type, in
/// MessagePack or JSON.
///
/// ```
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-value-{}", std::process::id());
/// use filemap::prelude::*;
///
/// let map = FileMap::open(&name)?;
/// map.write_value(&(3u8, "three".to_owned()))?;
/// let snap = map.read_value::<(u8, String)>()?;
/// assert_eq!(snap.content, (3, "three".to_owned()));
/// # Ok(()) }
/// ```
pub trait ValueExt {
    /// Publish `value` as the region's content, MessagePack-encoded with
    /// its type's default tag, serialised straight into the region.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (with the length the encoding reached, or at
    /// least the capacity plus one) when it does not fit; [`Error::Codec`];
    /// as [`FileMap::write`] otherwise. The content is kept on any error.
    fn write_value<T: Serialize + ?Sized>(&self, value: &T) -> Result<Published> {
        self.write_value_as(Codec::MessagePack, default_tag::<T>(), value)
    }

    /// Publish `value` as JSON with its type's default tag. See
    /// [`ValueExt::write_value`].
    ///
    /// # Errors
    /// As [`ValueExt::write_value`].
    fn write_value_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Published> {
        self.write_value_as(Codec::Json, default_tag::<T>(), value)
    }

    /// Publish `value` in `codec` under type tag `tag` (at most 65,535
    /// bytes). See [`ValueExt::write_value`].
    ///
    /// # Errors
    /// As [`ValueExt::write_value`]; [`Error::Codec`] for an over-long tag.
    fn write_value_as<T: Serialize + ?Sized>(
        &self,
        codec: Codec,
        tag: &str,
        value: &T,
    ) -> Result<Published>;

    /// Read the content as a value of type `T`, written with `T`'s default
    /// tag in either codec.
    ///
    /// # Errors
    /// [`Error::NotAValue`], [`Error::WrongType`] naming the type found,
    /// [`Error::Codec`] for a payload that does not decode as `T`; as
    /// [`FileMap::read`] otherwise.
    fn read_value<T: DeserializeOwned>(&self) -> Result<Snapshot<T>> {
        self.read_value_as(default_tag::<T>())
    }

    /// Read the content as a value of type `T` written under tag `tag`.
    ///
    /// # Errors
    /// As [`ValueExt::read_value`].
    fn read_value_as<T: DeserializeOwned>(&self, tag: &str) -> Result<Snapshot<T>>;
}

impl ValueExt for FileMap {
    fn write_value_as<T: Serialize + ?Sized>(
        &self,
        codec: Codec,
        tag: &str,
        value: &T,
    ) -> Result<Published> {
        let codec_error = |reason: String| Error::Codec {
            name: self.name().to_owned(),
            op: "encode",
            reason,
        };
        let tag_len = u16::try_from(tag.len()).map_err(|_| {
            codec_error(format!(
                "the type tag is {} bytes long, the most is 65535",
                tag.len()
            ))
        })?;
        let mut loan = self.loan()?;
        let mut head = Vec::with_capacity(7 + tag.len());
        head.extend_from_slice(&VALUE_MAGIC);
        head.push(codec.byte());
        head.extend_from_slice(&tag_len.to_le_bytes());
        head.extend_from_slice(tag.as_bytes());
        loan.append(&head)?;
        let encoded = match codec {
            Codec::MessagePack => {
                rmp_serde::encode::write_named(&mut loan, value).map_err(|e| e.to_string())
            }
            Codec::Json => serde_json::to_writer(&mut loan, value).map_err(|e| e.to_string()),
        };
        if let Err(reason) = encoded {
            // An encoder stopped by the capacity, or by a handle that can
            // no longer be used, reports an I/O error; say what really
            // happened.
            self.inner().usable()?;
            if let Some(refused) = loan.refusal() {
                return Err(refused);
            }
            return Err(codec_error(reason));
        }
        loan.commit()
    }

    fn read_value_as<T: DeserializeOwned>(&self, tag: &str) -> Result<Snapshot<T>> {
        let mut content = Vec::new();
        let stamp = self.read_into(&mut content)?;
        let value = decode(self.name(), &content, tag)?;
        Ok(stamp.with(value))
    }
}

/// Decode a typed content of region `name` as a `T` tagged `tag`.
fn decode<T: DeserializeOwned>(name: &str, content: &[u8], tag: &str) -> Result<T> {
    let parts = value_parts(content).ok_or_else(|| Error::NotAValue {
        name: name.to_owned(),
        len: content.len(),
    })?;
    if parts.tag != tag {
        return Err(Error::WrongType {
            name: name.to_owned(),
            expected: tag.to_owned(),
            found: parts.tag.to_owned(),
        });
    }
    let decoded = match parts.codec {
        Codec::MessagePack => rmp_serde::from_slice(parts.payload).map_err(|e| e.to_string()),
        Codec::Json => serde_json::from_slice(parts.payload).map_err(|e| e.to_string()),
    };
    decoded.map_err(|reason| Error::Codec {
        name: name.to_owned(),
        op: "decode",
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_garbage_are_none_and_of_a_value_are_exact() {
        assert_eq!(value_parts(b""), None);
        assert_eq!(value_parts(b"FMV\x01"), None);
        assert_eq!(value_parts(b"FMV\x01\x09\x00\x00"), None, "unknown codec");
        assert_eq!(
            value_parts(b"FMV\x01\x01\xff\xff ab"),
            None,
            "tag past the end"
        );
        assert_eq!(
            value_parts(b"FMV\x01\x01\x02\x00\xff\xfe"),
            None,
            "tag not UTF-8"
        );
        let parts = value_parts(b"FMV\x01\x02\x03\x00u32123").unwrap();
        assert_eq!(
            parts,
            ValueParts {
                codec: Codec::Json,
                tag: "u32",
                payload: b"123"
            }
        );
    }

    #[test]
    fn json_nesting_counts_brackets_outside_strings() {
        assert_eq!(json_nesting(b"1"), 0);
        assert_eq!(json_nesting(br#"{"a":[1,[2]],"b":{}}"#), 3);
        assert_eq!(json_nesting(br#"["[[[\"[", {"]": "\\"}]"#), 2);
        assert_eq!(json_nesting("[".repeat(500).as_bytes()), 500);
    }
}
