//! Publish each line typed on standard input into region `demo`.
//!
//! Run these in two terminals:
//!
//! ```text
//! cargo run --example reader        # prints every change
//! cargo run --example writer        # type lines here
//! ```

use filemap::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    let map = FileMap::open(&name)?;
    eprintln!(
        "writer: region {name:?} ({} bytes, {}); type lines, Ctrl-D to quit",
        map.capacity(),
        if map.existed_already() {
            "attached"
        } else {
            "created"
        }
    );
    for line in std::io::stdin().lines() {
        let published = map.write_str(&line?)?;
        println!("published generation {}", published.generation);
    }
    Ok(())
}
