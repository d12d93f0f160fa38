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
        // A typed value (FileMap::write_value) is shown decoded, one level
        // down in this object: what is printed nests at most
        // MAX_JSON_DEPTH levels, so serde_json's reader (and Python's)
        // takes it. A value that does not decode, or nests deeper, is an
        // error rather than silently left out.
        if let Some(parts) = filemap::value_parts(&snap.content) {
            let decoded = parts
                .to_json_within(filemap::MAX_JSON_DEPTH - 1)
                .map_err(|reason| {
                    anyhow::anyhow!(
                        "`filemap read --json` cannot show the typed value (type {:?}) in region {:?}: {reason}",
                        parts.tag,
                        map.name()
                    )
                })?;
            value["type"] = parts.tag.into();
            value["value"] = decoded;
        }
        writeln!(out, "{}", super::output::json(&value))?;
    } else if out.is_terminal() {
        write!(
            out,
            "{}",
            super::output::escape(&snap.content, &['\n', '\t'])
        )?;
        if !snap.content.ends_with(b"\n") && !snap.content.is_empty() {
            writeln!(out)?;
        }
    } else {
        out.write_all(&snap.content)?;
    }
    out.flush()?;
    Ok(())
}
