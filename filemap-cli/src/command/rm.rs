//! `filemap rm NAME... | --stale`.

use filemap::FileMap;

use crate::cli::RmArgs;

pub fn run(args: RmArgs) -> anyhow::Result<()> {
    if args.stale {
        for name in FileMap::clean_stale()? {
            println!("removed stale region {name}");
        }
    }
    for name in &args.names {
        FileMap::remove(name)?;
    }
    Ok(())
}
