//! `filemap watch NAME`: one line per change until Ctrl-C.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use filemap::FileMap;

use crate::cli::WatchArgs;

pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let map = FileMap::builder(&args.region.name)
        .capacity(args.capacity)
        .persistent(args.persistent)
        .open()?;
    // Leave through the normal path on Ctrl-C or SIGTERM, so the handle
    // closes and a region nobody else uses goes away.
    let stop = Arc::new(AtomicBool::new(false));
    ctrlc::set_handler({
        let stop = Arc::clone(&stop);
        move || stop.store(true, Ordering::SeqCst)
    })
    .context("cannot install the Ctrl-C handler")?;

    let mut out = std::io::stdout().lock();
    let mut seen = map.generation();
    let mut buf = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if map
            .wait_change(seen, Some(Duration::from_millis(100)))
            .is_none()
        {
            continue;
        }
        let stamp = map.read_into(&mut buf)?;
        seen = stamp.generation;
        let line = if args.json {
            serde_json::json!({
                "generation": stamp.generation,
                "writer_pid": stamp.writer.pid,
                "content": String::from_utf8_lossy(&buf),
            })
            .to_string()
        } else {
            format!(
                "{} {} {}",
                stamp.generation,
                stamp.writer.pid,
                super::escape(&buf, &[])
            )
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            break; // the reader of our output went away
        }
    }
    Ok(())
}
