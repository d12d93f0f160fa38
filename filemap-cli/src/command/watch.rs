//! `filemap watch NAME`: one line per change until Ctrl-C.
//!
//! Watching never creates a region (a region made by a watcher would go
//! away with it, taking along what `filemap write` put there): a region
//! that does not exist yet is waited for, and its content printed when it
//! appears. A region removed while watched (`filemap rm`) ends the watch
//! with an error, since no process can reach it any more.
//!
//! Nothing here polls on Linux: the watch sleeps in the region's wait until
//! a change, Ctrl-C (which cancels the wait's token) or an inotify event on
//! the region's name in `/dev/shm` (see `filemap::admin::NameWatch`).
//! Elsewhere the name is looked at every 100 ms.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use filemap::admin::{Alarm, NameWatch};
use filemap::{Error, FileMap, Stamp, Wait};

use crate::cli::WatchArgs;

pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let name = &args.region.name;
    // Every wait below ends at once on Ctrl-C or SIGTERM, and the watch
    // leaves through the normal path, so the handle closes.
    let alarm = Arc::new(Alarm::default());
    ctrlc::set_handler({
        let alarm = Arc::clone(&alarm);
        move || alarm.stop()
    })
    .context("cannot install the Ctrl-C handler")?;
    // The region's name appearing or going away rings the alarm: it is
    // watched before the first look, so no change after it is missed.
    let _names = NameWatch::start(name, Arc::clone(&alarm))?;

    let mut waited = false;
    let map = loop {
        let Some((_, rings)) = alarm.arm() else {
            return Ok(());
        };
        match FileMap::builder(name).open_only().open() {
            Ok(map) => break map,
            Err(Error::NotFound { .. }) => {
                if !waited {
                    eprintln!("filemap: waiting for region {name:?} to be created");
                    waited = true;
                }
                if !alarm.wait(rings) {
                    return Ok(());
                }
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
    let removed = || {
        anyhow::anyhow!(
            "region {name:?} was removed (filemap rm); no process can change this copy any more"
        )
    };
    // Armed before each look at the name: a removal after the look rings
    // the token the next wait is given.
    let Some((mut token, _)) = alarm.arm() else {
        return Ok(());
    };
    if map.is_removed() {
        return Err(removed());
    }
    loop {
        match map.wait_change(seen, Wait::adaptive().cancel(&token)) {
            Ok(_) => {}
            Err(Error::Cancelled { .. }) => {
                // Ctrl-C, or the name changed: removed, or a false alarm.
                let Some((next, _)) = alarm.arm() else {
                    return Ok(());
                };
                token = next;
                if map.is_removed() {
                    return Err(removed());
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let stamp = map.read_into(&mut buf)?;
        seen = stamp.generation;
        if print(&mut out, &args, stamp, &buf).is_err() {
            return Ok(()); // the reader of our output went away
        }
    }
}

fn print(
    out: &mut impl Write,
    args: &WatchArgs,
    stamp: Stamp,
    content: &[u8],
) -> std::io::Result<()> {
    let line = if args.json {
        super::output::json(&serde_json::json!({
            "generation": stamp.generation,
            "writer_pid": stamp.writer.pid,
            "content": String::from_utf8_lossy(content),
        }))
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
