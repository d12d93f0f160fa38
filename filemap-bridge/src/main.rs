//! The `filemap-bridge` command. See the crate documentation for semantics.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use filemap::admin::parse_size;
use filemap_bridge::bridge::{Bridge, Mapping, Options, Tls};

/// Mirror filemap regions to other hosts over Zenoh.
#[derive(Parser, Debug)]
#[command(
    name = "filemap-bridge",
    version,
    after_help = "Logs go to standard error (one line per event); with --json they go to standard \
output instead, as JSON lines, and nothing else is printed there. Run in the background of a \
terminal program (e.g. `filemap memo`), send them to a file: `2>bridge.log`.

A region the bridge creates is persistent, like one `filemap write` creates: it stays, with its \
content, after the bridge stops, until `filemap rm`. An existing region keeps the lifetime its \
creator gave it. A region removed while the bridge runs (`filemap rm`) is opened again by name \
(made anew if nobody did): an empty one gets the newest value, one written meanwhile is sent as \
the newest value (event `reopened`).

A value larger than a peer's region capacity grows that region if its maximum allows \
(--max-capacity when the bridge creates it). A value too large for a peer (its region's maximum \
capacity, which is its capacity unless it may grow, or --max-size) is refused there (`refused`), \
the peer's region keeping its content, and the peer tells the sender, which logs \
`refused_by_peer` with the length and the peer's limit."
)]
struct Cli {
    /// Mirror local region REGION to Zenoh key KEY (repeatable).
    #[arg(long = "map", value_name = "REGION=KEY", required = true, value_parser = parse_map)]
    maps: Vec<Mapping>,
    /// Listen for peers on ENDPOINT, e.g. tcp/0.0.0.0:7447 (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Connect to a peer at ENDPOINT, e.g. tcp/192.168.1.2:7447 (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// A Zenoh json5 configuration for anything else (flags override it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Find peers by UDP multicast scouting (off by default).
    #[arg(long)]
    scout: bool,
    /// Capacity of the regions the bridge has to create, in bytes or with
    /// a suffix K, M or G (any case) for KiB, MiB, GiB, e.g. 1MiB or 1m
    /// (they persist after the bridge, until `filemap rm`).
    #[arg(long, value_name = "N", value_parser = parse_size, default_value = "4096")]
    capacity: u64,
    /// The most a region the bridge creates may grow to (default: the
    /// capacity, so it never grows), in bytes or with a suffix K, M or G.
    /// A peer's content larger than the capacity and at most this grows
    /// the region; past it, it is refused. An existing region keeps the
    /// maximum its creator gave it.
    #[arg(long, value_name = "N", value_parser = parse_size)]
    max_capacity: Option<u64>,
    /// Refuse (do not send, do not apply) contents larger than N bytes
    /// (suffix K, M or G for KiB, MiB, GiB).
    #[arg(long, value_name = "N", value_parser = parse_size, default_value = "64MiB")]
    max_size: u64,
    /// Machine-readable logs: one JSON object per line on standard output
    /// (instead of human lines on standard error) for every content sent,
    /// applied or refused (here or by a peer), and every peer, reopened
    /// region, conflict and error.
    #[arg(long)]
    json: bool,
    /// Human logs of every content sent and applied too (by default only
    /// ready, peers, refusals, conflicts and errors).
    #[arg(long, short)]
    verbose: bool,
    /// Secure mode: CA certificate (PEM) that signs every accepted peer.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// Secure mode: this bridge's certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// Secure mode: this bridge's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// How long to wait for the peers' values at start and on reconnection, in ms.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    query_timeout_ms: u64,
    /// How long connecting to the --connect endpoints may take, in ms.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    connect_timeout_ms: u64,
}

fn parse_map(s: &str) -> Result<Mapping, String> {
    let (region, key) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not REGION=KEY"))?;
    if region.is_empty() || key.is_empty() {
        return Err(format!("{s:?} is not REGION=KEY"));
    }
    Ok(Mapping {
        region: region.to_string(),
        key: key.to_string(),
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let tls = match (cli.tls_ca, cli.tls_cert, cli.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(Tls { ca, cert, key }),
        _ => None,
    };
    let opts = Options {
        maps: cli.maps,
        listen: cli.listen,
        connect: cli.connect,
        config: cli.config,
        scout: cli.scout,
        capacity: cli.capacity,
        max_capacity: cli.max_capacity,
        max_size: usize::try_from(cli.max_size).unwrap_or(usize::MAX),
        json: cli.json,
        verbose: cli.verbose,
        tls,
        query_timeout: Duration::from_millis(cli.query_timeout_ms),
        connect_timeout: Duration::from_millis(cli.connect_timeout_ms),
    };
    let (stop_tx, stop_rx) = mpsc::channel();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    }) {
        eprintln!("filemap-bridge: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    let bridge = match Bridge::start(&opts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("filemap-bridge: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let _ = stop_rx.recv();
    drop(bridge);
    ExitCode::SUCCESS
}
