//! Print every change published into region `demo` by another process.
//!
//! Run these in two terminals:
//!
//! ```text
//! cargo run --example reader        # prints every change
//! cargo run --example writer        # type lines here
//! ```
//!
//! Optional arguments: region name, and a generation after which to exit
//! (used by the test that runs this pair).

use filemap::TextExt;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "demo".into());
    let limit: Option<u64> = args.next().map(|n| n.parse()).transpose()?;
    let map = filemap::FileMap::open(&name)?;
    eprintln!("reader: watching region {name:?}");
    // The starting point first: a publish right after "ready" is a change.
    let mut seen = map.generation();
    println!("ready");
    while limit.is_none_or(|limit| seen < limit) {
        let Some(_) = map
            .wait_change(
                seen,
                filemap::Wait::sleep().timeout(Duration::from_secs(60)),
            )
            .ok()
        else {
            continue;
        };
        let snap = map.read_string()?;
        seen = snap.generation;
        println!(
            "generation {} from pid {}: {}",
            snap.generation, snap.writer.pid, snap.content
        );
    }
    Ok(())
}
