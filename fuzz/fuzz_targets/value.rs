//! A typed value's bytes, as another process can publish them: the `FMV`
//! header, the codec byte, the type tag, the MessagePack or JSON payload.
//! Read by `read_value`/`read_value_as` into several Rust types, and by
//! `filemap read --json`'s decoding (`value_parts` + `to_json_within`).
//!
//! Checks: a typed error or a value, never a panic; what `read --json`
//! would print is JSON that serde_json reads back (its nesting within the
//! promised depth); the heap grows in proportion to the input at most.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use filemap::prelude::*;
use filemap::{value_parts, MAX_JSON_DEPTH};
use filemap_fuzz::{private_shm, unique, Counting, Heap};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOC: Counting = Counting;

const CAPACITY: usize = 64 << 10;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sample {
    name: String,
    count: u64,
    ratio: f64,
    tags: Vec<String>,
    nested: Option<Box<Sample>>,
    kind: Kind,
    table: BTreeMap<String, i32>,
    bytes: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Kind {
    Unit,
    Pair(i8, u16),
    Named { a: bool, b: Option<char> },
}

/// One region for every input (made once; writes replace its content).
fn region() -> &'static FileMap {
    static MAP: OnceLock<FileMap> = OnceLock::new();
    MAP.get_or_init(|| {
        private_shm();
        FileMap::builder(unique("fzv"))
            .capacity(CAPACITY)
            .open()
            .expect("the value region")
    })
}

fuzz_target!(|data: &[u8]| {
    let map = region();
    let heap = Heap::start();

    // `filemap read --json`: the typed value shown one level down.
    if let Some(parts) = value_parts(data) {
        for levels in [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, usize::MAX] {
            if let Ok(json) = parts.to_json_within(levels) {
                let shown = serde_json::json!({ "type": parts.tag, "value": json }).to_string();
                let back: Result<serde_json::Value, _> = serde_json::from_str(&shown);
                assert!(
                    back.is_ok() || levels > MAX_JSON_DEPTH - 1,
                    "`read --json` would print what serde_json cannot read: {:?}",
                    back.err()
                );
            }
        }
    }

    if data.len() > CAPACITY {
        return;
    }
    let published = map.write(data).expect("a write within the capacity");
    let tag = value_parts(data).map(|p| p.tag.to_owned());

    let as_json = map.read_value::<serde_json::Value>();
    let _ = map.read_value::<Sample>();
    let _ = map.read_value::<Vec<Vec<u64>>>();
    let _ = map.read_value::<(String, Option<Kind>)>();
    let _ = map.read_value::<BTreeMap<String, Vec<String>>>();
    if let Some(tag) = &tag {
        match map.read_value_as::<serde_json::Value>(tag) {
            Ok(snap) => assert_eq!(snap.generation, published.generation),
            Err(e) => {
                let _ = e.to_string();
            }
        }
        let _ = map.read_value_as::<Sample>(tag);
        // The wrong tag is always refused.
        let wrong = format!("{tag}!");
        assert!(map.read_value_as::<serde_json::Value>(&wrong).is_err());
    } else {
        assert!(
            as_json.is_err(),
            "bytes without the value header decoded as a value"
        );
    }
    // What decodes can be written back.
    if let Ok(snap) = as_json {
        match map.write_value(&snap.content) {
            Ok(_) | Err(filemap::Error::TooLarge { .. }) => {}
            Err(e) => panic!("a decoded value cannot be written back: {e}"),
        }
    }
    // Values take more room than their bytes, in proportion.
    heap.check(256 * data.len() + (4 << 20), "value");
});
