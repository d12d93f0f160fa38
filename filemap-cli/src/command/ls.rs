//! `filemap ls`.

use crate::cli::LsArgs;

pub fn run(args: LsArgs) -> anyhow::Result<()> {
    let regions = filemap::admin::list()?;
    if args.json {
        let values: Vec<serde_json::Value> = regions
            .iter()
            .map(|(name, info)| match info {
                Ok(info) => super::output::info_json(info),
                Err(e) => serde_json::json!({ "name": name, "error": e.to_string() }),
            })
            .collect();
        println!("{}", super::output::json(&serde_json::Value::Array(values)));
        return Ok(());
    }
    println!(
        "{:<24} {:>10} {:>10} {:>10}  {:<10} ATTACHED",
        "NAME", "CAPACITY", "USED", "GENERATION", "STATE"
    );
    for (name, info) in &regions {
        let name = super::output::escape(name.as_bytes(), &[]);
        match info {
            Ok(info) => {
                let state = match (info.stale, info.persistent) {
                    (true, _) => "stale",
                    (false, true) => "persistent",
                    (false, false) => "open",
                };
                let attached: Vec<String> = info.attached.iter().map(u32::to_string).collect();
                println!(
                    "{name:<24} {:>10} {:>10} {:>10}  {state:<10} {}",
                    info.capacity,
                    info.len,
                    info.generation,
                    attached.join(",")
                );
            }
            Err(e) => println!("{name:<24} error: {e}"),
        }
    }
    Ok(())
}
