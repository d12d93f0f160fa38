//! Publish a typed struct (a robot's pose) into region `pose`, once per
//! line typed, serialised straight into the region (feature `serde`).
//!
//! Run these in two terminals:
//!
//! ```text
//! cargo run -p filemap --features serde --example typed_reader
//! cargo run -p filemap --features serde --example typed_writer   # type "x y heading" lines
//! ```
//!
//! Optional argument: the region name.

use filemap::prelude::*;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// The struct both sides share (typed_reader.rs declares the same one).
#[derive(Debug, Serialize, Deserialize)]
struct Pose {
    x: f64,
    y: f64,
    heading: f64,
    label: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "pose".into());
    let map = FileMap::open(&name)?;
    eprintln!("typed_writer: type \"x y heading [label]\" lines for region {name:?}");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut fields = line.split_whitespace();
        let mut number = || -> Result<f64, Box<dyn std::error::Error>> {
            Ok(fields.next().ok_or("expected x y heading")?.parse()?)
        };
        let (x, y, heading) = (number()?, number()?, number()?);
        let label = fields.collect::<Vec<_>>().join(" ");
        // The tag names the type for readers built apart from this program.
        let published = map.write_value_as(
            filemap::Codec::MessagePack,
            "example.Pose",
            &Pose {
                x,
                y,
                heading,
                label,
            },
        )?;
        println!("published generation {}", published.generation);
    }
    Ok(())
}
