//! Print every pose published into region `pose` by typed_writer.rs, or
//! say what else is there (feature `serde`).
//!
//! Run these in two terminals:
//!
//! ```text
//! cargo run -p filemap --features serde --example typed_reader
//! cargo run -p filemap --features serde --example typed_writer   # type "x y heading" lines
//! ```
//!
//! Optional arguments: region name, and a generation after which to exit
//! (used by the test that runs this pair).

use filemap::prelude::*;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Pose {
    x: f64,
    y: f64,
    heading: f64,
    label: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "pose".into());
    let limit: Option<u64> = args.next().map(|n| n.parse()).transpose()?;
    let map = FileMap::open(&name)?;
    let mut seen = map.generation();
    println!("ready");
    while limit.is_none_or(|limit| seen < limit) {
        // Adaptive: spins briefly while the writer answers promptly, else
        // sleeps; no deadline (Ctrl-C ends the program).
        seen = map.wait_change(seen, Wait::adaptive())?;
        match map.read_value_as::<Pose>("example.Pose") {
            Ok(snap) => {
                seen = snap.generation;
                let Pose {
                    x,
                    y,
                    heading,
                    label,
                } = snap.content;
                println!("generation {seen}: x={x} y={y} heading={heading} label={label:?}");
            }
            // Another writer's content: say so and go on watching.
            Err(e) => println!("generation {seen}: {e}"),
        }
    }
    Ok(())
}
