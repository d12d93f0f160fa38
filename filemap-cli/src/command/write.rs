//! `filemap write NAME [TEXT]`.

use std::io::Read;

use anyhow::Context;
use filemap::FileMap;

use crate::cli::WriteArgs;

pub fn run(args: WriteArgs) -> anyhow::Result<()> {
    let content = match args.text.as_deref() {
        None | Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            bytes
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    let map = FileMap::builder(&args.region.name)
        .capacity(args.capacity)
        .persistent(!args.transient)
        .open()?;
    let published = map.write(&content)?;
    if published.owner_died {
        eprintln!(
            "filemap: note: the previous lock holder of {:?} died while holding it; its unfinished write was discarded",
            args.region.name
        );
    }
    Ok(())
}
