//! Typed contents (feature `serde`): round trips, wrong types, garbage,
//! too-large values, across processes.

#![cfg(feature = "serde")]

mod common;

use common::{unique, Child, Cleanup};
use filemap::TextExt;
use filemap::ValueExt;
use filemap::{Codec, Error, FileMap};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Telemetry {
    speed: f64,
    heading: u16,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Other {
    speed: f64,
}

fn sample() -> Telemetry {
    Telemetry {
        speed: 12.5,
        heading: 271,
        tags: vec!["a".into(), "ü".into()],
    }
}

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    if std::env::var("FILEMAP_CHILD_ROLE").as_deref() == Ok("read-telemetry") {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        let snap = map.read_value::<Telemetry>().unwrap();
        common::say(format!("{:?} gen={}", snap.content, snap.generation));
        std::process::exit(0);
    }
    common::child_main();
}

#[test]
fn a_value_round_trips_in_both_codecs_and_across_processes() {
    let name = unique("value");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let published = map.write_value(&sample()).unwrap();
    let snap = map.read_value::<Telemetry>().unwrap();
    assert_eq!(
        (snap.content, snap.generation),
        (sample(), published.generation)
    );
    let child = Child::spawn("read-telemetry", &name);
    assert_eq!(
        child.line(),
        format!("{:?} gen={}", sample(), published.generation)
    );

    map.write_value_json(&sample()).unwrap();
    let raw = map.read().unwrap().content;
    let parts = filemap::value_parts(&raw).unwrap();
    assert_eq!(parts.codec, Codec::Json);
    let json: serde_json::Value = serde_json::from_slice(parts.payload).unwrap();
    assert_eq!(json["speed"], 12.5);
    assert_eq!(parts.to_json().unwrap(), json);
    map.write_value(&sample()).unwrap();
    let raw = map.read().unwrap().content;
    let packed = filemap::value_parts(&raw).unwrap();
    assert_eq!(packed.codec, Codec::MessagePack);
    assert_eq!(
        packed.to_json().unwrap(),
        json,
        "MessagePack reads as the same JSON"
    );
    assert_eq!(map.read_value::<Telemetry>().unwrap().content, sample());
}

#[test]
fn a_reader_of_the_wrong_type_or_of_plain_bytes_gets_a_typed_error() {
    let name = unique("valuetype");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    map.write_value(&sample()).unwrap();
    match map.read_value::<Other>() {
        Err(Error::WrongType {
            expected, found, ..
        }) => {
            assert!(expected.ends_with("Other"), "{expected}");
            assert!(found.ends_with("Telemetry"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    // The same tag but a payload of another shape: a decode error.
    map.write_value_as(Codec::MessagePack, "shared.Tag", &"a string")
        .unwrap();
    assert!(matches!(
        map.read_value_as::<Telemetry>("shared.Tag"),
        Err(Error::Codec { op: "decode", .. })
    ));
    map.write_str("plain text").unwrap();
    assert!(matches!(
        map.read_value::<Telemetry>(),
        Err(Error::NotAValue { len: 10, .. })
    ));
}

#[test]
fn a_value_too_large_for_the_region_keeps_the_content() {
    let name = unique("valuebig");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(64).open().unwrap();
    map.write_value(&Other { speed: 1.0 }).unwrap();
    let big = Telemetry {
        tags: vec!["x".repeat(100)],
        ..sample()
    };
    match map.write_value(&big) {
        Err(Error::TooLarge {
            len, capacity: 64, ..
        }) => assert!(len > 64),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        map.read_value::<Other>().unwrap().content,
        Other { speed: 1.0 }
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Garbage, and values truncated or flipped anywhere, decode to typed
    /// errors, never a panic.
    #[test]
    fn garbage_never_panics_a_typed_read(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        cut in 0usize..200,
        flip in 0usize..200,
    ) {
        let name = unique("valuefuzz");
        let _cleanup = Cleanup(name.clone());
        let map = FileMap::builder(&name).capacity(512).open().unwrap();
        map.write(&bytes).unwrap();
        let garbage = map.read_value::<Telemetry>();
        proptest::prop_assert!(
            matches!(
                garbage,
                Err(Error::NotAValue { .. } | Error::WrongType { .. } | Error::Codec { .. })
            ),
            "{garbage:?}"
        );
        map.write_value(&sample()).unwrap();
        let original = map.read().unwrap().content;
        let mut valid = original.clone();
        valid.truncate(cut.min(valid.len()));
        if let Some(byte) = valid.get_mut(flip) {
            *byte ^= 0x5a;
        }
        let intact = valid == original;
        map.write(&valid).unwrap();
        // The header parses exactly when the read gets past "not a value";
        // an untouched value reads back as written.
        let parts = filemap::value_parts(&valid);
        match map.read_value::<Telemetry>() {
            Ok(snap) => proptest::prop_assert!(
                parts.is_some() && (!intact || snap.content == sample()),
                "{:?}",
                snap.content
            ),
            Err(Error::NotAValue { .. }) => proptest::prop_assert!(parts.is_none() && !intact),
            Err(e @ (Error::WrongType { .. } | Error::Codec { .. })) => {
                proptest::prop_assert!(parts.is_some() && !intact, "{e:?}")
            }
            Err(e) => proptest::prop_assert!(false, "not a typed value error: {e:?}"),
        }
    }
}

#[test]
fn to_json_decodes_up_to_serde_jsons_depth_in_either_codec_and_names_the_limit_past_it() {
    let limit = filemap::MAX_JSON_DEPTH;
    let typed = |codec: u8, payload: &[u8]| {
        let mut content = filemap::VALUE_MAGIC.to_vec();
        content.push(codec);
        content.extend_from_slice(&1u16.to_le_bytes());
        content.push(b't');
        content.extend_from_slice(payload);
        content
    };
    // `levels` arrays of one element around a nil / null.
    let packed = |levels: usize| [vec![0x91; levels], vec![0xc0]].concat();
    let json = |levels: usize| format!("{}null{}", "[".repeat(levels), "]".repeat(levels));
    // What serde_json's own reader takes, to the level.
    assert!(serde_json::from_str::<serde_json::Value>(&json(limit)).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(&json(limit + 1)).is_err());
    for levels in [limit, limit + 1, 1023] {
        for content in [typed(1, &packed(levels)), typed(2, json(levels).as_bytes())] {
            let parts = filemap::value_parts(&content).unwrap();
            match parts.to_json() {
                Ok(value) if levels <= limit => {
                    assert_eq!(value.to_string(), json(levels));
                }
                Err(reason) if levels > limit => {
                    assert!(
                        reason.contains(&format!("deeper than {limit} levels")),
                        "{levels} ({:?}): {reason}",
                        parts.codec
                    );
                }
                other => panic!("{levels} levels ({:?}): {other:?}", parts.codec),
            }
            // A lower limit, for a value printed inside other JSON.
            let within = parts.to_json_within(limit - 1);
            assert_eq!(within.is_ok(), levels < limit, "{levels}: {within:?}");
        }
    }
}
