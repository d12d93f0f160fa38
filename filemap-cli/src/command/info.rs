//! `filemap info NAME`.

use crate::cli::InfoArgs;

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let info = filemap::admin::inspect(&args.region.name)?;
    if args.json {
        println!("{}", super::output::json(&super::output::info_json(&info)));
        return Ok(());
    }
    let attached: Vec<String> = info.attached.iter().map(u32::to_string).collect();
    let escape = |text: &str| super::output::escape(text.as_bytes(), &[]);
    println!("name:        {}", escape(&info.name));
    println!("path:        {}", escape(&info.path.to_string_lossy()));
    println!("capacity:    {} bytes", info.capacity);
    println!("max:         {} bytes", info.max_capacity);
    println!("used:        {} bytes", info.len);
    println!("generation:  {}", info.generation);
    println!("last writer: pid {}", info.last_writer.pid);
    println!(
        "persistent:  {}",
        if info.persistent { "yes" } else { "no" }
    );
    println!(
        "attached:    {}",
        if attached.is_empty() {
            "none".to_owned()
        } else {
            attached.join(", ")
        }
    );
    if info.stale {
        println!("stale:       yes (its users died; `filemap rm --stale` removes it)");
    }
    Ok(())
}
