//! `filemap read NAME`.

use std::io::{IsTerminal, Write};

use filemap::FileMap;

use crate::cli::ReadArgs;

pub fn run(args: ReadArgs) -> anyhow::Result<()> {
    let map = FileMap::builder(&args.region.name).open_only().open()?;
    let snap = map.read()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "name": map.name(),
            "generation": snap.generation,
            "writer_pid": snap.writer.pid,
            "content": String::from_utf8_lossy(&snap.content),
        });
        writeln!(out, "{value}")?;
    } else if out.is_terminal() {
        write!(out, "{}", super::escape(&snap.content, &['\n', '\t']))?;
        if !snap.content.ends_with(b"\n") && !snap.content.is_empty() {
            writeln!(out)?;
        }
    } else {
        out.write_all(&snap.content)?;
    }
    out.flush()?;
    Ok(())
}
