//! `filemap write NAME [TEXT]`.
//!
//! The content is read before the region is created, and at most one byte
//! past the capacity is read from standard input: an oversized input costs
//! memory bounded by the capacity, and a failed write leaves no region
//! behind that was not there before. Regions this command creates persist
//! until `filemap rm` unless `--transient`; an existing region keeps the
//! lifetime its creator gave it (`filemap-bridge` creates persistent ones,
//! `filemap memo` non-persistent ones).

use anyhow::Context;
use filemap::{Error, FileMap, MAX_CAPACITY, MIN_CAPACITY};

use super::input::read_at_most;
use crate::cli::WriteArgs;

pub fn run(args: WriteArgs) -> anyhow::Result<()> {
    let name = &args.region.name;
    // An existing region's capacity wins over --capacity.
    let existing = match FileMap::builder(name).open_only().open() {
        Ok(map) => Some(map),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let capacity = match &existing {
        Some(map) => map.max_capacity(),
        None if (MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&args.capacity)
            && args
                .max_capacity
                .is_none_or(|max| (args.capacity..=MAX_CAPACITY as u64).contains(&max)) =>
        {
            args.max_capacity.unwrap_or(args.capacity) as usize
        }
        // Let the library say why, without creating anything.
        None => {
            let mut builder = FileMap::builder(name)
                .capacity(usize::try_from(args.capacity).unwrap_or(usize::MAX));
            if let Some(max) = args.max_capacity {
                builder = builder.max_capacity(usize::try_from(max).unwrap_or(usize::MAX));
            }
            return Err(builder.open().unwrap_err().into());
        }
    };
    let content = match args.text.as_deref() {
        None | Some("-") => {
            read_at_most(std::io::stdin().lock(), capacity).context("cannot read standard input")?
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    if content.len() > capacity {
        if args.text.is_some_and(|t| t != "-") {
            return Err(Error::TooLarge {
                len: content.len(),
                capacity,
                max_capacity: capacity,
            }
            .into());
        }
        anyhow::bail!(
            "standard input holds more than the {capacity} bytes region {name:?} can take; nothing was written and the previous content is kept"
        );
    }
    let map = match existing {
        Some(map) => map,
        None => FileMap::builder(name)
            .capacity(args.capacity as usize)
            .max_capacity(capacity)
            .persistent(!args.transient)
            .open()?,
    };
    let published = match map.write(&content) {
        Ok(published) => published,
        Err(e) => {
            // Another process may have created the region between our look
            // and our open, with a smaller capacity: only a region this
            // command made, and nobody wrote yet, is taken back.
            if !map.existed_already() && map.generation() == 0 {
                let _ = filemap::admin::remove(name);
            }
            return Err(e.into());
        }
    };
    if published.owner_died {
        eprintln!(
            "filemap: note: the previous lock holder of {name:?} died while holding it; its unfinished write was discarded"
        );
    }
    Ok(())
}
