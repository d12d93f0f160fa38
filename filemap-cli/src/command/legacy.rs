//! `filemap legacy NAME`: the gateway between a region and a map of the
//! legacy TFileMap component (crate filemap-legacy), until Ctrl-C or
//! termination. One line on standard error per event: `ready: ...` once
//! both sides are open, then each copy and each refusal.

use anyhow::Context;
use filemap_legacy::{Encoding, Gateway, Namespace, Options};

use crate::cli::{LegacyArgs, LegacyEncoding, LegacyNamespace};

pub fn run(args: LegacyArgs) -> anyhow::Result<()> {
    let mut options = Options::new(&args.region.name);
    if let Some(map_name) = args.map_name {
        options.map_name = map_name;
    }
    options.encoding = match args.encoding {
        LegacyEncoding::Ansi => Encoding::Ansi,
        LegacyEncoding::Utf16 => Encoding::Utf16,
        LegacyEncoding::Auto => Encoding::Auto,
    };
    options.codepage = args.codepage;
    options.suffix = args.suffix;
    options.size = match args.size {
        Some(size) => Some(usize::try_from(size).context("--size is too large")?),
        None => None,
    };
    options.namespace = match args.namespace {
        None => Namespace::Plain,
        Some(LegacyNamespace::Global) => Namespace::Global,
        Some(LegacyNamespace::Local) => Namespace::Local,
    };
    let gateway = Gateway::start(options, |event| eprintln!("filemap legacy: {event}"))?;
    // Ctrl-C and termination end the gateway's loop; it closes both sides.
    let stopper = gateway.stopper();
    ctrlc::set_handler(move || stopper.stop()).context("cannot install the Ctrl-C handler")?;
    gateway.wait();
    Ok(())
}
