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

use filemap::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "demo".into());
    let limit: Option<u64> = args.next().map(|n| n.parse()).transpose()?;
    let map = FileMap::open(&name)?;
    eprintln!("reader: watching region {name:?}");
    // The starting point first: a publish right after "ready" is a change.
    let mut seen = map.generation();
    println!("ready");
    while limit.is_none_or(|limit| seen < limit) {
        // Sleep in the kernel until another process publishes, as long as
        // it takes (Ctrl-C ends the program). A program that must end a
        // wait from elsewhere gives it a token, `Wait::sleep().cancel(&token)`,
        // and calls `token.cancel()` from any thread (a Ctrl-C handler, a
        // shutdown): the wait then returns `ErrorKind::Cancelled`.
        map.wait_change(seen, Wait::sleep())?;
        let snap = map.read_string()?;
        seen = snap.generation;
        println!(
            "generation {} from pid {}: {}",
            snap.generation, snap.writer.pid, snap.content
        );
    }
    Ok(())
}
