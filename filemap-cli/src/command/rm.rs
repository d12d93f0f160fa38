//! `filemap rm NAME... | --stale`.

use crate::cli::RmArgs;

pub fn run(args: RmArgs) -> anyhow::Result<()> {
    if args.stale {
        for name in filemap::admin::clean_stale()? {
            let name = super::output::escape(name.as_bytes(), &[]);
            println!("removed stale region {name}");
        }
    }
    for name in &args.names {
        filemap::admin::remove(name)?;
    }
    Ok(())
}
