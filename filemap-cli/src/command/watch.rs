//! `filemap watch NAME`: one line per change until Ctrl-C.
//!
//! Watching never creates a region (a region made by a watcher would go
//! away with it, taking along what `filemap write` put there): a region
//! that does not exist yet is waited for, and its content printed when it
//! appears. A region removed while watched (`filemap rm`) ends the watch
//! with an error, since no process can reach it any more.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use filemap::{Error, FileMap, Stamp};

use crate::cli::WatchArgs;

/// How often a missing region is looked for, and a watched one checked
/// for removal, while nothing changes.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let name = &args.region.name;
    // Leave through the normal path on Ctrl-C or SIGTERM, so the handle
    // closes.
    let stop = Arc::new(AtomicBool::new(false));
    ctrlc::set_handler({
        let stop = Arc::clone(&stop);
        move || stop.store(true, Ordering::SeqCst)
    })
    .context("cannot install the Ctrl-C handler")?;

    let mut waited = false;
    let map = loop {
        match FileMap::builder(name).open_only().open() {
            Ok(map) => break map,
            Err(Error::NotFound { .. }) => {
                if !waited {
                    eprintln!("filemap: waiting for region {name:?} to be created");
                    waited = true;
                }
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(e.into()),
        }
    };

    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    let mut seen = map.generation();
    if waited && seen != 0 {
        // The region appeared with content: that is the first change.
        let stamp = map.read_into(&mut buf)?;
        seen = stamp.generation;
        if print(&mut out, &args, stamp, &buf).is_err() {
            return Ok(());
        }
    }
    while !stop.load(Ordering::SeqCst) {
        if map
            .wait_change(seen, filemap::Wait::adaptive().timeout(POLL))
            .ok()
            .is_none()
        {
            if map.is_removed() {
                anyhow::bail!(
                    "region {name:?} was removed (filemap rm); no process can change this copy any more"
                );
            }
            continue;
        }
        let stamp = map.read_into(&mut buf)?;
        seen = stamp.generation;
        if print(&mut out, &args, stamp, &buf).is_err() {
            break; // the reader of our output went away
        }
    }
    Ok(())
}

fn print(
    out: &mut impl Write,
    args: &WatchArgs,
    stamp: Stamp,
    content: &[u8],
) -> std::io::Result<()> {
    let line = if args.json {
        serde_json::json!({
            "generation": stamp.generation,
            "writer_pid": stamp.writer.pid,
            "content": String::from_utf8_lossy(content),
        })
        .to_string()
    } else {
        format!(
            "{} {} {}",
            stamp.generation,
            stamp.writer.pid,
            super::output::escape(content, &[])
        )
    };
    writeln!(out, "{line}").and_then(|()| out.flush())
}
