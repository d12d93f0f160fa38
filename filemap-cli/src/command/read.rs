//! `filemap read NAME`.

use std::io::{IsTerminal, Write};

use filemap::FileMap;

use crate::cli::ReadArgs;

pub fn run(args: ReadArgs) -> anyhow::Result<()> {
    let map = FileMap::builder(&args.region.name).open_only().open()?;
    let snap = map.read()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::json!({
            "name": map.name(),
            "generation": snap.generation,
            "writer_pid": snap.writer.pid,
            "content": String::from_utf8_lossy(&snap.content),
        });
        // A typed value (FileMap::write_value) is shown decoded.
        if let Some(parts) = filemap::value_parts(&snap.content) {
            if let Ok(decoded) = parts.to_json() {
                value["type"] = parts.tag.into();
                value["value"] = decoded;
            }
        }
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
