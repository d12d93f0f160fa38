//! The running bridge: one Zenoh session, and per mapped region a watcher
//! thread (local → network), a subscriber (network → local) and a
//! queryable (late joiners).

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use filemap::admin::{Alarm, NameWatch};
use filemap::{Error as FmError, FileMap};
use serde_json::{json, Value};
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, Query};
use zenoh::sample::{Locality, Sample, SampleKind};
use zenoh::Wait as _;

use crate::wire::{Meta, Version, WireError, META_LEN};

/// Key prefix of the liveliness tokens bridges declare to notice each other.
pub const LIVELINESS_PREFIX: &str = "filemap-bridge-peers";
/// Key prefix of the refusal notices: a bridge that refuses a value too
/// large for it (its region's capacity, its `--max-size`) says so on
/// `filemap-bridge-refused/<key>`, and the value's sender logs it.
pub const REFUSAL_PREFIX: &str = "filemap-bridge-refused";
/// A remote write dated further than this in the future is refused: a rogue
/// or broken clock must not pin a key forever.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// One `--map REGION=KEY`.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Local region name.
    pub region: String,
    /// Zenoh key (no wildcards).
    pub key: String,
}

/// TLS files for the secure mode (mutual authentication).
#[derive(Debug, Clone)]
pub struct Tls {
    /// CA that signs every accepted peer certificate.
    pub ca: PathBuf,
    /// This bridge's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// Everything the command line sets.
#[derive(Debug, Clone)]
pub struct Options {
    /// Regions and keys.
    pub maps: Vec<Mapping>,
    /// Endpoints to listen on.
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    pub connect: Vec<String>,
    /// A Zenoh json5 configuration to start from.
    pub config: Option<PathBuf>,
    /// Multicast scouting on.
    pub scout: bool,
    /// Capacity of regions the bridge creates.
    pub capacity: u64,
    /// The most a region the bridge creates may grow to (`None`: its
    /// capacity, so it never grows). A remote value larger than the local
    /// region's capacity and at most this grows the region.
    pub max_capacity: Option<u64>,
    /// Largest content sent or applied.
    pub max_size: usize,
    /// JSON lines logs (every event).
    pub json: bool,
    /// Human logs of every content sent and applied too.
    pub verbose: bool,
    /// Secure mode.
    pub tls: Option<Tls>,
    /// How long to wait for peers' replies at start and after a reconnection.
    pub query_timeout: Duration,
    /// How long a connect may take before the bridge gives up.
    pub connect_timeout: Duration,
}

/// Event log: one line per event, human on standard error, or JSON on
/// standard output (the machine-readable stream; nothing else is printed
/// there). Every content sent or applied is logged in JSON mode and with
/// `verbose`; otherwise only what needs attention (ready, peers, refusals,
/// refusals by peers, reopened regions, conflicts, errors).
#[derive(Debug, Clone, Copy)]
pub struct Log {
    json: bool,
    verbose: bool,
}

impl Log {
    /// A log in the given format.
    pub fn new(json: bool, verbose: bool) -> Log {
        Log { json, verbose }
    }

    /// Whether `event` is logged at all: callers on the hot path (every
    /// content sent or applied) skip building the fields when not.
    pub fn wants(&self, event: &str) -> bool {
        self.json || self.verbose || !matches!(event, "sent" | "applied" | "synced" | "announced")
    }

    /// Log `event` with `fields` (a JSON object).
    pub fn event(&self, event: &str, fields: Value) {
        if !self.wants(event) {
            return;
        }
        let line = if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("event".into(), Value::from(event));
            if let Value::Object(f) = fields {
                obj.extend(f);
            }
            Value::Object(obj).to_string()
        } else {
            let mut s = event.to_string();
            if let Value::Object(f) = fields {
                for (k, v) in f {
                    match v {
                        Value::String(v) => {
                            s.push_str(&format!(" {k}="));
                            push_escaped(&mut s, &v);
                        }
                        v => s.push_str(&format!(" {k}={v}")),
                    }
                }
            }
            s
        };
        // A closed stream must not stop the bridge.
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

/// Append `text` to a human log line with every character that could end
/// the line, rewrite the terminal or reorder what it shows (control
/// characters, line and paragraph separators, bidirectional overrides)
/// written as a Rust escape (`\n`, `\u{1b}`): a string from the network
/// cannot forge a line. (JSON lines escape them already.)
fn push_escaped(line: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
}

/// The most characters of a string from the network a log shows (a
/// peer's id is 32 hex digits).
const MAX_PEER_TEXT: usize = 64;

/// A string a peer sent (its id in a liveliness token's key, a notice's
/// `peer`), cut to [`MAX_PEER_TEXT`] characters for the logs.
fn peer_text(text: &str) -> String {
    match text.char_indices().nth(MAX_PEER_TEXT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// What the region holds, as the bridge knows it.
struct State {
    /// The region. Replaced when its name no longer leads to it (removed,
    /// maybe made anew): see [`reopen_if_removed`].
    fm: Arc<FileMap>,
    /// The last attempt to open a removed region's name again failed (and
    /// was logged: the next failures are not, the next success is).
    reopen_failed: bool,
    /// The version of the content at `local_gen`; `None` until the bridge
    /// has published or applied anything (content it cannot date).
    version: Option<Version>,
    /// The region generation whose content carries `version` (or that the
    /// bridge has accounted for); `None` before the first look.
    local_gen: Option<u64>,
    /// That content and its metadata, for queries.
    current: Option<(Meta, ZBytes)>,
    /// Greatest remote time seen, so local writes are dated after it.
    max_seen: u64,
}

struct Map {
    region: String,
    key: String,
    state: Mutex<State>,
    lock: RegionLock,
    /// Rung when the region's name appears or goes away, and at shutdown:
    /// the watcher's wait ends and it looks again (or leaves).
    alarm: Arc<Alarm>,
}

struct Shared {
    session: zenoh::Session,
    host: [u8; 16],
    maps: Vec<Arc<Map>>,
    log: Log,
    /// Capacity of the regions the bridge creates, and their maximum.
    capacity: u64,
    max_capacity: Option<u64>,
    max_size: usize,
    /// Set at shutdown, before the alarms are stopped.
    stop: AtomicBool,
    query_timeout: Duration,
    /// The resync thread's channel, for the receive path's requests.
    resync: mpsc::Sender<Resync>,
    /// Lines about impersonating samples, at most
    /// [`IMPERSONATION_LINES_MAX`] per [`LINES_WINDOW`].
    impersonation_lines: Mutex<Lines>,
}

/// What the resync thread is told.
enum Resync {
    /// A peer (re)appeared.
    Peer(String),
    /// A sample named this bridge as its origin and was newer than its
    /// value, which is dated anew: put it again (at most once a second).
    Impersonated,
    /// The bridge is stopping.
    Stop,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread leaves consistent data here (plain assignments).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `/dev/shm/filemap-bridge.<region>.lock`, flock'ed for the bridge's
/// life: one bridge per region per host. Removed on a clean exit.
struct RegionLock {
    file: File,
}

impl RegionLock {
    fn take(region: &str) -> anyhow::Result<RegionLock> {
        use rustix::fs::{flock, fstat, stat, FlockOperation};
        let dir = filemap::admin::shm_path(region)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev/shm"));
        let path = dir.join(format!("filemap-bridge.{region}.lock"));
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .with_context(|| format!("cannot open the lock file {}", path.display()))?;
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                bail!(
                    "another filemap-bridge already serves region {region:?} on this host (it holds {})",
                    path.display()
                );
            }
            // The previous holder may have removed the file between our open
            // and our lock: only a lock on the file the path names counts.
            let ours = fstat(&file).context("fstat of the lock file")?;
            match stat(&path) {
                Ok(now) if now.st_ino == ours.st_ino && now.st_dev == ours.st_dev => {
                    return Ok(RegionLock { file });
                }
                _ => continue,
            }
        }
    }
}

impl RegionLock {
    /// Remember that region generation `local_gen` holds the value `meta`
    /// describes, so a restarted bridge can tell an unsent local write
    /// (the region moved past it) from content it already dated.
    fn record(&self, local_gen: u64, meta: &Meta) {
        use std::os::unix::fs::FileExt as _;
        let mut b = [0u8; 8 + crate::wire::META_LEN];
        b[..8].copy_from_slice(&local_gen.to_le_bytes());
        b[8..].copy_from_slice(&meta.encode());
        // Best effort: without the record a restart treats the content as undated.
        let _ = self.file.write_at(&b, 0);
    }

    /// Drop the record: the region it described is gone (removed, and the
    /// name now leads to another one whose generations are unrelated).
    fn forget(&self) {
        use std::os::unix::fs::FileExt as _;
        let _ = self.file.write_at(&[0u8; 8 + crate::wire::META_LEN], 0);
    }

    /// What [`RegionLock::record`] last wrote, if anything.
    fn recall(&self) -> Option<(u64, Meta)> {
        use std::os::unix::fs::FileExt as _;
        let mut b = [0u8; 8 + crate::wire::META_LEN];
        self.file.read_exact_at(&mut b, 0).ok()?;
        let mut g = [0u8; 8];
        g.copy_from_slice(&b[..8]);
        let meta = Meta::decode(Some(&b[8..]), 0).ok().or_else(|| {
            // decode checks the length against the payload: redo with the declared one.
            let len = u64::from_le_bytes(b[56..64].try_into().ok()?);
            Meta::decode(Some(&b[8..]), usize::try_from(len).ok()?).ok()
        })?;
        Some((u64::from_le_bytes(g), meta))
    }
}

/// A running bridge. Dropping it stops every thread and closes the session.
///
/// Its threads sleep until there is work: a local write (the region's
/// wait), the region's name appearing or going away (inotify on Linux;
/// elsewhere a look every 100 ms), a peer coming or a query to answer (a
/// channel each), or the shutdown, which ends all of them at once (a
/// [`filemap::CancelToken`] per region, a message on the peers' channel,
/// the queries' channel closed).
pub struct Bridge {
    shared: Arc<Shared>,
    watchers: Vec<JoinHandle<()>>,
    resync: Option<(JoinHandle<()>, mpsc::Sender<Resync>)>,
    replies: Arc<Replies>,
    repliers: Vec<JoinHandle<()>>,
    names: Option<NameWatch>,
    _subscribers: Vec<zenoh::pubsub::Subscriber<()>>,
    _queryables: Vec<zenoh::query::Queryable<()>>,
    _token: Option<zenoh::liveliness::LivelinessToken>,
    _peers: Option<zenoh::pubsub::Subscriber<()>>,
}

/// Set `key` of a Zenoh configuration to the json5 `value`.
fn set(config: &mut zenoh::Config, key: &str, value: String) -> anyhow::Result<()> {
    config
        .insert_json5(key, &value)
        .map_err(|e| anyhow::anyhow!("bad Zenoh setting {key}={value}: {e}"))
}

/// Set `key` to `value` unless the configuration holds another value than
/// Zenoh's default there (`zenoh_default`): a `--config` file's choice wins.
fn set_unless_chosen(
    config: &mut zenoh::Config,
    key: &str,
    zenoh_default: usize,
    value: usize,
) -> anyhow::Result<()> {
    let current = config
        .get_json(key)
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if current != Some(zenoh_default) {
        return Ok(());
    }
    set(config, key, value.to_string())
}

fn zenoh_config(opts: &Options) -> anyhow::Result<zenoh::Config> {
    let mut config = match &opts.config {
        Some(path) => zenoh::Config::from_file(path)
            .map_err(|e| anyhow::anyhow!("cannot read Zenoh config {}: {e}", path.display()))?,
        None => zenoh::Config::default(),
    };
    if opts.config.is_none() || !opts.listen.is_empty() || !opts.connect.is_empty() {
        set(&mut config, "mode", "\"peer\"".into())?;
    }
    set(
        &mut config,
        "scouting/multicast/enabled",
        opts.scout.to_string(),
    )?;
    if !opts.listen.is_empty() {
        set(
            &mut config,
            "listen/endpoints",
            serde_json::to_string(&opts.listen)?,
        )?;
        set(&mut config, "listen/exit_on_failure", "true".into())?;
    }
    if !opts.connect.is_empty() {
        set(
            &mut config,
            "connect/endpoints",
            serde_json::to_string(&opts.connect)?,
        )?;
        set(&mut config, "connect/exit_on_failure", "true".into())?;
        set(
            &mut config,
            "connect/timeout_ms",
            opts.connect_timeout.as_millis().to_string(),
        )?;
    }
    if let Some(tls) = &opts.tls {
        for (what, path) in [
            ("CA", &tls.ca),
            ("certificate", &tls.cert),
            ("key", &tls.key),
        ] {
            if !path.is_file() {
                bail!("TLS {what} file {} does not exist", path.display());
            }
        }
        // Mutual TLS: each side presents the same certificate when it
        // listens and when it connects.
        for (key, path) in [
            ("root_ca_certificate", &tls.ca),
            ("listen_certificate", &tls.cert),
            ("listen_private_key", &tls.key),
            ("connect_certificate", &tls.cert),
            ("connect_private_key", &tls.key),
        ] {
            let value = serde_json::to_string(&path.to_string_lossy()).unwrap_or_default();
            set(&mut config, &format!("transport/link/tls/{key}"), value)?;
        }
        set(&mut config, "transport/link/tls/enable_mtls", "true".into())?;
    }
    // The bridge stamps its own writes; no need for Zenoh to time every put.
    Ok(config)
}

/// Zenoh's default receive buffer per link (one batch).
const ZENOH_RX_BUFFER: usize = 65_535;
/// The most [`size_rx_buffers`] sets.
const RX_BUFFER_MAX: usize = 64 << 20;

/// Let a link receive contents of up to `largest` bytes from recycled
/// buffers. Zenoh receives into a pool of batch-sized buffers, `buffer_size`
/// bytes in all (one batch by default), and a sample larger than one batch
/// keeps its batches until it is dropped; the bridge holds the latest
/// sample (to answer queries) while the next arrives. Past the pool, each
/// batch is a new zeroed allocation: at 1 MiB, about 50 page faults and
/// 200 KiB of zeroing per sample on the receiving thread. So the pool
/// holds three contents (the one held, the one arriving, one queued),
/// within 64 MiB; untouched pool memory costs address space only. A
/// `--config` file that sets `transport/link/rx/buffer_size` to another
/// value than Zenoh's default keeps it.
fn size_rx_buffers(config: &mut zenoh::Config, largest: usize) -> anyhow::Result<()> {
    let size = largest
        .saturating_mul(3)
        .clamp(ZENOH_RX_BUFFER, RX_BUFFER_MAX);
    set_unless_chosen(
        config,
        "transport/link/rx/buffer_size",
        ZENOH_RX_BUFFER,
        size,
    )
}

/// Zenoh's default `transport/link/rx/max_message_size` (1 GiB).
const ZENOH_MAX_MESSAGE: usize = 1 << 30;
/// What a message carries beside its content: the 56-byte attachment, the
/// key, Zenoh's headers.
const MESSAGE_OVERHEAD: usize = 64 << 10;
/// How far past the largest content it accepts a bridge still receives a
/// value, to refuse it and tell its sender: as much again as that content,
/// and at least this.
const REFUSAL_HEADROOM: usize = 1 << 20;

/// The largest message a link receives, for a bridge that accepts contents
/// of up to `largest` bytes: that content, as much again (at least 1 MiB)
/// so that a value too large for this host but sent by a peer with larger
/// limits is still received, refused and reported to its sender, and
/// [`MESSAGE_OVERHEAD`].
fn message_limit(largest: usize) -> usize {
    largest
        .saturating_add(largest.max(REFUSAL_HEADROOM))
        .saturating_add(MESSAGE_OVERHEAD)
}

/// Receive no message larger than [`message_limit`]: Zenoh gathers a
/// message's fragments (all of them, up to its
/// `transport/link/rx/max_message_size`, 1 GiB by default) before the
/// bridge sees it and can refuse it, so a peer sending 256 MiB to a bridge
/// that takes 2 KiB would cost this host 256 MiB. Past the limit Zenoh drops
/// the fragments as they come, keeps the link, and tells nobody. A
/// `--config` file that sets another value than Zenoh's default keeps it.
fn limit_messages(config: &mut zenoh::Config, largest: usize) -> anyhow::Result<()> {
    set_unless_chosen(
        config,
        "transport/link/rx/max_message_size",
        ZENOH_MAX_MESSAGE,
        message_limit(largest),
    )
}

fn validate_key(key: &str) -> anyhow::Result<()> {
    if key.contains('*') || key.contains('$') {
        bail!("key {key:?} has a wildcard; a region maps to one exact key");
    }
    zenoh::key_expr::KeyExpr::try_from(key)
        .map_err(|e| anyhow::anyhow!("{key:?} is not a valid Zenoh key: {e}"))?;
    for reserved in [LIVELINESS_PREFIX, REFUSAL_PREFIX] {
        if key == reserved || key.starts_with(&format!("{reserved}/")) {
            bail!("key {key:?} is reserved for the bridges' own use");
        }
    }
    Ok(())
}

impl Bridge {
    /// Open the regions, join the network, converge with the peers, and
    /// start mirroring. Returns once the bridge is ready (and has logged
    /// `ready`).
    ///
    /// # Errors
    /// Bad options, a region already served by another bridge on this
    /// host, or a network that cannot be joined.
    pub fn start(opts: &Options) -> anyhow::Result<Bridge> {
        let log = Log::new(opts.json, opts.verbose);
        if opts.maps.is_empty() {
            bail!("nothing to bridge: give at least one --map REGION=KEY");
        }
        for (i, m) in opts.maps.iter().enumerate() {
            filemap::admin::validate_name(&m.region)
                .map_err(|e| anyhow::anyhow!("bad region name {:?}: {e}", m.region))?;
            validate_key(&m.key)?;
            for other in &opts.maps[..i] {
                if other.region == m.region {
                    bail!("region {:?} is mapped twice", m.region);
                }
                if other.key == m.key {
                    bail!("key {:?} is mapped twice", m.key);
                }
            }
        }
        let mut config = zenoh_config(opts)?;
        // Regions first: a second bridge for the same region stops here,
        // before it touches the network.
        let mut maps = Vec::new();
        for m in &opts.maps {
            let lock = RegionLock::take(&m.region)?;
            let fm = open_region(&m.region, opts.capacity, opts.max_capacity)
                .map_err(|e| anyhow::anyhow!("cannot open region {:?}: {e}", m.region))?;
            let state = recall_state(fm, &lock);
            maps.push(Arc::new(Map {
                region: m.region.clone(),
                key: m.key.clone(),
                state: Mutex::new(state),
                lock,
                alarm: Arc::default(),
            }));
        }
        let largest = maps
            .iter()
            .map(|m| lock(&m.state).fm.max_capacity())
            .max()
            .unwrap_or(0)
            .min(opts.max_size);
        size_rx_buffers(&mut config, largest)?;
        limit_messages(&mut config, largest)?;
        let session = zenoh::open(config).wait().map_err(|e| {
            anyhow::anyhow!(
                "cannot join the network ({}): {e}",
                if opts.connect.is_empty() {
                    "listen".to_string()
                } else {
                    format!("connect to {}", opts.connect.join(", "))
                }
            )
        })?;
        let host = session.new_timestamp().get_id().to_le_bytes();
        // Made before anything can receive: the receive path asks for
        // re-announcements through it.
        let (peer_tx, peer_rx) = mpsc::channel::<Resync>();
        let shared = Arc::new(Shared {
            session,
            host,
            maps,
            log,
            capacity: opts.capacity,
            max_capacity: opts.max_capacity,
            max_size: opts.max_size,
            stop: AtomicBool::new(false),
            query_timeout: opts.query_timeout,
            resync: peer_tx.clone(),
            impersonation_lines: Mutex::new(Lines::new(IMPERSONATION_LINES_MAX)),
        });
        let (jobs_tx, jobs) = mpsc::sync_channel(QUERIES_WAITING_MAX);
        let mut bridge = Bridge {
            shared: Arc::clone(&shared),
            watchers: Vec::new(),
            resync: None,
            replies: Arc::new(Replies {
                queue: Mutex::new(Some(jobs_tx)),
                answers: AtomicUsize::new(0),
                lines: Mutex::new(Lines::new(DROPPED_LINES_MAX)),
                log,
            }),
            repliers: Vec::new(),
            names: None,
            _subscribers: Vec::new(),
            _queryables: Vec::new(),
            _token: None,
            _peers: None,
        };
        // Queries are answered on threads of ours, never on Zenoh's.
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..REPLY_THREADS {
            let (r, j) = (Arc::clone(&bridge.replies), Arc::clone(&jobs));
            bridge.repliers.push(
                std::thread::Builder::new()
                    .name(format!("reply {i}"))
                    .spawn(move || reply_loop(&r, &j))
                    .context("cannot start a thread")?,
            );
        }
        for map in &shared.maps {
            let (s, m) = (Arc::clone(&shared), Arc::clone(map));
            let sub = shared
                .session
                .declare_subscriber(map.key.as_str())
                .callback(move |sample| on_sample(&s, &m, sample))
                .wait()
                .map_err(|e| anyhow::anyhow!("cannot subscribe to {:?}: {e}", map.key))?;
            bridge._subscribers.push(sub);
            let (r, m) = (Arc::clone(&bridge.replies), Arc::clone(map));
            let q = shared
                .session
                .declare_queryable(map.key.as_str())
                .callback(move |query| r.take(&m, query))
                .wait()
                .map_err(|e| anyhow::anyhow!("cannot serve {:?}: {e}", map.key))?;
            bridge._queryables.push(q);
            let (s, m) = (Arc::clone(&shared), Arc::clone(map));
            let refusals = shared
                .session
                .declare_subscriber(format!("{REFUSAL_PREFIX}/{}", map.key))
                .callback(move |sample| on_refusal(&s, &m, &sample))
                .wait()
                .map_err(|e| {
                    anyhow::anyhow!("cannot subscribe to refusals of {:?}: {e}", map.key)
                })?;
            bridge._subscribers.push(refusals);
        }
        // The names are watched before the watchers' first look: a removal
        // after it is never missed.
        bridge.names = Some(
            NameWatch::start_many(
                shared
                    .maps
                    .iter()
                    .map(|m| (m.region.as_str(), Arc::clone(&m.alarm))),
            )
            .context("cannot watch the regions' names")?,
        );
        // Late joiner: take the newest value any peer holds.
        sync_all(&shared, "start");
        // Local content nobody can date goes out now if no peer had one.
        for map in &shared.maps {
            on_local_change(&shared, map);
        }
        for map in &shared.maps {
            let (s, m) = (Arc::clone(&shared), Arc::clone(map));
            bridge.watchers.push(
                std::thread::Builder::new()
                    .name(format!("watch {}", map.region))
                    .spawn(move || watch_loop(&s, &m))
                    .context("cannot start a thread")?,
            );
        }
        // Peers coming (back): resynchronise with them.
        let s = Arc::clone(&shared);
        let resync = std::thread::Builder::new()
            .name("resync".into())
            .spawn(move || resync_loop(&s, &peer_rx))
            .context("cannot start a thread")?;
        bridge.resync = Some((resync, peer_tx.clone()));
        let own = format!("{LIVELINESS_PREFIX}/{}", shared.session.zid());
        let s = Arc::clone(&shared);
        let own2 = own.clone();
        let peer_lines = Mutex::new(Lines::new(PEER_LINES_MAX));
        let peers = shared
            .session
            .liveliness()
            .declare_subscriber(format!("{LIVELINESS_PREFIX}/*"))
            .callback(move |sample: Sample| {
                let key = sample.key_expr().as_str();
                if key == own2 {
                    return;
                }
                // Whatever a peer put in its token's key.
                let peer = peer_text(key.rsplit('/').next().unwrap_or(key));
                let event = match sample.kind() {
                    SampleKind::Put => "peer_up",
                    SampleKind::Delete => "peer_down",
                };
                if let Some(fields) =
                    lock(&peer_lines).admit(Instant::now(), json!({ "peer": peer }))
                {
                    s.log.event(event, fields);
                }
                if sample.kind() == SampleKind::Put {
                    let _ = peer_tx.send(Resync::Peer(peer));
                }
            })
            .wait()
            .map_err(|e| anyhow::anyhow!("cannot watch for peers: {e}"))?;
        bridge._peers = Some(peers);
        bridge._token = Some(
            shared
                .session
                .liveliness()
                .declare_token(own)
                .wait()
                .map_err(|e| anyhow::anyhow!("cannot announce this bridge: {e}"))?,
        );
        let maps: Vec<Value> = shared
            .maps
            .iter()
            .map(|m| json!({ "region": m.region, "key": m.key, "generation": lock(&m.state).fm.generation() }))
            .collect();
        log.event(
            "ready",
            // As `origin` and `peer` fields name it.
            json!({ "host": Version { time: 0, host: shared.host }.host_hex(),
                    "pid": std::process::id(), "maps": maps }),
        );
        Ok(bridge)
    }

    /// This bridge's Zenoh id (its host id in the order of writes).
    pub fn zid(&self) -> String {
        self.shared.session.zid().to_string()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Every thread is woken, none waits for a timeout: the watchers'
        // waits are cancelled (each sends a local write it finds on its
        // way out), the names thread is unblocked, the resync thread told.
        for map in &self.shared.maps {
            map.alarm.stop();
        }
        if let Some((_, tx)) = &self.resync {
            let _ = tx.send(Resync::Stop);
        }
        drop(self.names.take());
        for t in self.watchers.drain(..) {
            let _ = t.join();
        }
        // Closing the session ends a query the resync thread may be
        // waiting on (up to --query-timeout-ms otherwise).
        let _ = self.shared.session.close().wait();
        if let Some((t, _)) = self.resync.take() {
            let _ = t.join();
        }
        // No query comes any more: the reply threads go through what is
        // queued (a reply on a closed session fails at once) and leave
        // once the queue is closed. One still in a reply to a link that
        // does not drain is held until Zenoh gives up on it (5 s at most).
        drop(lock(&self.replies.queue).take());
        for t in self.repliers.drain(..) {
            let _ = t.join();
        }
    }
}

/// The state a previous bridge for this region left in its lock file: the
/// version of the content at the recorded generation. If the region has
/// moved since, that is a local write nobody sent; it gets published (as
/// the newest value) once the bridge runs.
fn recall_state(fm: FileMap, lock: &RegionLock) -> State {
    let mut state = State {
        fm: Arc::new(fm),
        reopen_failed: false,
        version: None,
        local_gen: None,
        current: None,
        max_seen: 0,
    };
    let Some((generation, meta)) = lock.recall() else {
        return state;
    };
    let Ok(snap) = state.fm.read() else {
        return state;
    };
    if snap.generation < generation {
        return state; // a new region under the same name: nothing to recall
    }
    state.version = Some(meta.version);
    state.max_seen = meta.version.time;
    state.local_gen = Some(generation);
    if snap.generation == generation && snap.content.len() as u64 == meta.len {
        state.current = Some((meta, ZBytes::from(snap.content)));
    }
    state
}

/// Open (or create) a mapped region. A region the bridge creates is
/// persistent, like one `filemap write` creates: it stays, with its
/// content, after the bridge stops, until `filemap rm`. A region that
/// exists keeps the lifetime its creator gave it, and its capacity and
/// maximum.
fn open_region(name: &str, capacity: u64, max_capacity: Option<u64>) -> Result<FileMap, FmError> {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let mut builder = FileMap::builder(name)
        .capacity(size(capacity))
        .persistent(true);
    if let Some(max) = max_capacity {
        builder = builder.max_capacity(size(max));
    }
    builder.open()
}

/// If the region's name no longer leads to the bridge's region (`filemap
/// rm`, and perhaps made anew since), open the name again and bring the new
/// region in line, logging `reopened`:
/// - a new empty region gets the newest value the bridge knows (so this
///   host converges with its peers again);
/// - a new region that a local process already wrote keeps its content,
///   which is a local write like any other: sent, dated as the newest.
///
/// Called with the state lock held; returns whether it reopened.
fn reopen_if_removed(shared: &Shared, map: &Map, st: &mut State) -> bool {
    if !st.fm.is_removed() {
        return false;
    }
    let fm = match open_region(&map.region, shared.capacity, shared.max_capacity) {
        Ok(fm) => Arc::new(fm),
        Err(e) => {
            if !st.reopen_failed {
                st.reopen_failed = true;
                shared.log.event(
                    "error",
                    json!({ "region": map.region, "key": map.key,
                            "reason": format!("the region was removed and cannot be made anew (retrying): {e}") }),
                );
            }
            return false;
        }
    };
    st.reopen_failed = false;
    // The record described the old region's generations.
    map.lock.forget();
    st.fm = Arc::clone(&fm);
    let generation = fm.generation();
    let content = if generation != 0 {
        // Not accounted for: on_local_change sends it, apply defers to it.
        st.local_gen = None;
        "kept: written here since, sent as the newest value".to_string()
    } else if let Some((meta, payload)) = st.current.clone() {
        let bytes = payload.to_bytes();
        match fm.write_if(0, &bytes) {
            Ok(p) => {
                map.lock.record(p.generation, &meta);
                st.local_gen = Some(p.generation);
                format!("filled with the newest value ({} bytes)", bytes.len())
            }
            Err(FmError::Conflict { .. }) => {
                st.local_gen = None;
                "kept: written here meanwhile, sent as the newest value".to_string()
            }
            Err(e) => {
                st.local_gen = Some(generation);
                format!("left empty: cannot write the newest value: {e}")
            }
        }
    } else {
        st.local_gen = Some(generation);
        "left empty: no value to fill it with yet".to_string()
    };
    shared.log.event(
        "reopened",
        json!({ "region": map.region, "key": map.key, "generation": fm.generation(),
                "capacity": fm.capacity(), "max_capacity": fm.max_capacity(),
                "existed": fm.existed_already(),
                "reason": "the region was removed", "content": content }),
    );
    true
}

fn now_ntp64() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

fn skew_ntp64() -> u64 {
    MAX_CLOCK_SKEW.as_secs() << 32
}

/// Check a remote sample; `None` (logged) when it must be dropped.
fn check_remote(
    shared: &Shared,
    map: &Map,
    attachment: Option<&ZBytes>,
    payload: &ZBytes,
    via: &str,
) -> Option<Meta> {
    let refuse = |reason: String| {
        shared.log.event(
            "refused",
            json!({ "region": map.region, "key": map.key, "via": via, "reason": reason }),
        );
        None
    };
    // Looked at before it is gathered: an attachment in fragments would be
    // copied whole.
    if let Some(len) = attachment.map(ZBytes::len).filter(|&n| n != META_LEN) {
        return refuse(format!("malformed sample: {}", WireError::Length(len)));
    }
    let att = attachment.map(|a| a.to_bytes());
    let meta = match Meta::decode(att.as_deref(), payload.len()) {
        Ok(m) => m,
        Err(e) => return refuse(format!("malformed sample: {e}")),
    };
    // A value larger than the capacity grows the region when it applies;
    // only one past the maximum (the capacity of a region that cannot
    // grow) is refused.
    let (capacity, max_capacity) = {
        let st = lock(&map.state);
        (st.fm.capacity(), st.fm.max_capacity())
    };
    let too_large = if meta.len > max_capacity as u64 {
        let len = usize::try_from(meta.len).unwrap_or(usize::MAX);
        Some(too_large_for_region(len, capacity, max_capacity))
    } else if meta.len > shared.max_size as u64 {
        Some((
            Limit::MaxSize,
            shared.max_size,
            format!(
                "content of {} bytes is over --max-size {}",
                meta.len, shared.max_size
            ),
        ))
    } else {
        None
    };
    if let Some((limit, max, reason)) = too_large {
        if meta.version.host != shared.host {
            tell_sender(shared, map, &meta, limit, max);
        }
        return refuse(reason);
    }
    if meta.version.time > now_ntp64().saturating_add(skew_ntp64()) {
        return refuse("timestamp more than 5 s in the future".into());
    }
    if meta.version.host == shared.host && !on_own_host(shared, map, &meta, via) {
        return None;
    }
    Some(meta)
}

/// A sample that names this bridge as its origin. Its own writes come back
/// through peers' replies and re-announcements: nothing to do. One newer
/// than anything this bridge holds is not its own: someone uses its host
/// id (dated within [`MAX_CLOCK_SKEW`], checked before). Peers may have
/// applied it, and would drop this bridge's next write if dated before
/// it, so the clock floor rises past it as for any remote value, and this
/// bridge's value is dated anew; the resync thread puts it again, at most
/// once a second however many such samples come (each costs a lock here,
/// not a send of the whole value on Zenoh's receive thread).
///
/// Whether to apply it after all: when this bridge holds no value yet, it
/// is one this bridge made before it restarted (a Zenoh id fixed by
/// `--config` keeps its host id), which the peers kept, and it is taken as
/// any remote value.
fn on_own_host(shared: &Shared, map: &Map, meta: &Meta, via: &str) -> bool {
    let mut st = lock(&map.state);
    let Some(ours) = st.version else {
        return true;
    };
    st.max_seen = st.max_seen.max(meta.version.time);
    if meta.version <= ours {
        return false;
    }
    let redated = match st.current.clone() {
        Some((held, payload)) => {
            let meta = Meta {
                version: next_version(shared, &st),
                ..held
            };
            if let Some(g) = st.local_gen {
                map.lock.record(g, &meta);
            }
            st.version = Some(meta.version);
            st.current = Some((meta, payload));
            true
        }
        None => false,
    };
    drop(st);
    if redated {
        let _ = shared.resync.send(Resync::Impersonated);
    }
    let fields = json!({ "region": map.region, "key": map.key, "via": via,
            "time": meta.version.time,
            "reason": format!(
                "a value naming this bridge as its origin, newer than any it made (impersonation): {}",
                if redated { "its own value is put again, dated anew" } else { "it holds no value to put again" }
            ) });
    if let Some(fields) = lock(&shared.impersonation_lines).admit(Instant::now(), fields) {
        shared.log.event("refused", fields);
    }
    false
}

/// The limit, the number and the reason of a refusal of a value of `len`
/// bytes larger than the local region can ever hold. A region that cannot
/// grow (any more) is over its capacity, as bridges have always said; one
/// that could still grow is over its maximum capacity.
fn too_large_for_region(
    len: usize,
    capacity: usize,
    max_capacity: usize,
) -> (Limit, usize, String) {
    if capacity == max_capacity {
        (
            Limit::Capacity,
            capacity,
            format!("content of {len} bytes does not fit the region's capacity {capacity}"),
        )
    } else {
        (
            Limit::MaxCapacity,
            max_capacity,
            format!(
                "content of {len} bytes does not fit the region's maximum capacity {max_capacity} (capacity {capacity})"
            ),
        )
    }
}

/// Which of this bridge's limits a refused value is over.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// The local region's capacity (it cannot grow).
    Capacity,
    /// The local region's maximum capacity (the most it may grow to).
    MaxCapacity,
    /// `--max-size`.
    MaxSize,
}

impl Limit {
    fn as_str(self) -> &'static str {
        match self {
            Limit::Capacity => "capacity",
            Limit::MaxCapacity => "max_capacity",
            Limit::MaxSize => "max_size",
        }
    }
}

/// A refusal notice, as [`tell_sender`] puts it on
/// `filemap-bridge-refused/<key>` (a JSON object).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Notice {
    /// The refused value's origin host ([`Version::host_hex`]).
    origin: String,
    /// Its time.
    time: u64,
    /// Its length.
    bytes: u64,
    /// Which limit it is over ([`Limit::as_str`]).
    limit: String,
    /// That limit.
    max: u64,
    /// The refusing bridge's Zenoh id.
    peer: String,
}

/// The longest refusal notice read. A real one is under 200 bytes (two
/// 32-digit ids, four numbers); a longer one is dropped before it is
/// parsed, which for megabytes of JSON would cost many times their size.
const MAX_NOTICE: usize = 1024;

/// Tell the bridges on `map`'s key that this one refused a value too large
/// for it: its origin logs `refused_by_peer` (best effort; the refusal is
/// logged here in any case).
fn tell_sender(shared: &Shared, map: &Map, meta: &Meta, limit: Limit, max: usize) {
    let notice = Notice {
        origin: meta.version.host_hex(),
        time: meta.version.time,
        bytes: meta.len,
        limit: limit.as_str().into(),
        max: max as u64,
        peer: shared.session.zid().to_string(),
    };
    let Ok(notice) = serde_json::to_string(&notice) else {
        return;
    };
    let _ = shared
        .session
        .put(format!("{REFUSAL_PREFIX}/{}", map.key), notice)
        .allowed_destination(Locality::Remote)
        .wait();
}

/// A peer refused a value: log it if the value was this bridge's.
fn on_refusal(shared: &Shared, map: &Map, sample: &Sample) {
    let len = sample.payload().len();
    if len > MAX_NOTICE {
        shared.log.event(
            "refused",
            json!({ "region": map.region, "key": map.key, "via": "notice",
                    "reason": format!("refusal notice of {len} bytes from a peer, over {MAX_NOTICE}: dropped unread") }),
        );
        return;
    }
    let Ok(notice) = serde_json::from_slice::<Notice>(&sample.payload().to_bytes()) else {
        shared.log.event(
            "refused",
            json!({ "region": map.region, "key": map.key, "via": "notice",
                    "reason": "malformed refusal notice from a peer" }),
        );
        return;
    };
    let own = Version {
        time: 0,
        host: shared.host,
    }
    .host_hex();
    if notice.origin != own {
        return; // another host's value
    }
    let Notice {
        peer,
        bytes,
        limit,
        max,
        time,
        ..
    } = notice;
    let peer = peer_text(&peer);
    let (field, what) = match limit.as_str() {
        "capacity" => ("peer_capacity", "its region's capacity is"),
        "max_capacity" => ("peer_max_capacity", "its region's maximum capacity is"),
        "max_size" => ("peer_max_size", "its --max-size is"),
        _ => ("peer_limit", "its limit is"),
    };
    let mut event = serde_json::Map::new();
    event.insert("region".into(), map.region.clone().into());
    event.insert("key".into(), map.key.clone().into());
    event.insert("peer".into(), peer.clone().into());
    event.insert("bytes".into(), bytes.into());
    event.insert(field.into(), max.into());
    event.insert("time".into(), time.into());
    event.insert(
        "reason".into(),
        format!("too large for peer {peer}: content of {bytes} bytes, {what} {max}").into(),
    );
    shared.log.event("refused_by_peer", Value::Object(event));
}

fn on_sample(shared: &Shared, map: &Map, sample: Sample) {
    if sample.kind() != SampleKind::Put {
        shared.log.event(
            "refused",
            json!({ "region": map.region, "key": map.key, "via": "sample", "reason": "delete samples are not part of the protocol" }),
        );
        return;
    }
    let Some(meta) = check_remote(shared, map, sample.attachment(), sample.payload(), "sample")
    else {
        return;
    };
    // Applied right here, on Zenoh's receiving thread: one thread wake-up
    // less per hop than handing it to a thread of ours (the write is one
    // memcpy under the region lock).
    apply(shared, map, meta, sample.payload(), "sample");
}

/// How many threads answer queries. Zenoh calls a queryable on its
/// receive threads (two by default), which also deliver every sample; in
/// Zenoh 1.10 a reply is sent with the querier's congestion control
/// (blocking by default; the replier's own is ignored), which waits up to
/// 5 s for a link that does not drain. Replying there let two queriers
/// that stop reading hold up every sample for seconds. So queries are
/// handed to threads of the bridge's own. Three: a stalled querier with a
/// query in flight (a peer stopped during its start-up query) holds one
/// until Zenoh gives up on its link (5 s, after which replies to it fail
/// at once), and two such leave one for the others. Zenoh 1.10 does not
/// tell a queryable who asks, so there is no cap per querier: a stalled
/// querier's flood can hold every thread, and then replies (never
/// samples) wait those 5 s, or are dropped (see [`REPLIES_WAITING_MAX`]).
const REPLY_THREADS: usize = 3;
/// The most queries waiting to be answered (besides those being
/// answered). A query past it is dropped unanswered: its querier hears
/// nothing from this bridge, as when a reply is lost; a bridge that joins
/// gets this bridge's value when it re-announces it to the new peer. A
/// flood thus costs at most this many replies of the value at a time.
const REPLIES_WAITING_MAX: usize = 64;
/// The most queries waiting for a reply thread in all, those to answer
/// and those dropped unanswered. Dropping a query sends its querier a
/// final message, with its congestion control too, so it is done on the
/// reply threads as well, never on Zenoh's receive threads, as long as
/// fewer than this many wait (a few hundred bytes each). A query past it
/// is dropped on arrival, on the receive thread.
const QUERIES_WAITING_MAX: usize = 4096;
/// Lines about dropped queries per [`LINES_WINDOW`].
const DROPPED_LINES_MAX: u32 = 3;

/// A query for a reply thread.
struct Job {
    map: Arc<Map>,
    query: Query,
    /// Answer it, or only drop it (its final message goes out).
    answer: bool,
}

/// The queue of queries to the reply threads.
struct Replies {
    /// `None` once the bridge stops: the reply threads leave.
    queue: Mutex<Option<mpsc::SyncSender<Job>>>,
    /// Queries queued to be answered.
    answers: AtomicUsize,
    /// Dropped queries are logged at most [`DROPPED_LINES_MAX`] times per
    /// [`LINES_WINDOW`].
    lines: Mutex<Lines>,
    log: Log,
}

impl Replies {
    /// Queue `query` on `map`'s key for the reply threads (called on
    /// Zenoh's receive threads: never blocks).
    fn take(&self, map: &Arc<Map>, query: Query) {
        let answer = self.answers.fetch_add(1, Ordering::SeqCst) < REPLIES_WAITING_MAX;
        if !answer {
            self.answers.fetch_sub(1, Ordering::SeqCst);
        }
        let Some(queue) = lock(&self.queue).clone() else {
            return; // stopping
        };
        let job = Job {
            map: Arc::clone(map),
            query,
            answer,
        };
        let reason = match queue.try_send(job) {
            Ok(()) if answer => return,
            Ok(()) => format!(
                "{REPLIES_WAITING_MAX} queries already wait for a reply: dropped unanswered"
            ),
            Err(mpsc::TrySendError::Full(job)) => {
                if job.answer {
                    self.answers.fetch_sub(1, Ordering::SeqCst);
                }
                drop(job);
                format!("{QUERIES_WAITING_MAX} queries already wait: dropped unanswered on arrival")
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return,
        };
        let fields =
            json!({ "region": map.region, "key": map.key, "via": "query", "reason": reason });
        if let Some(fields) = lock(&self.lines).admit(Instant::now(), fields) {
            self.log.event("refused", fields);
        }
    }
}

/// A reply thread: answers queries with the value the region holds, until
/// the queue closes.
fn reply_loop(replies: &Replies, jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The receiver is shared: one thread waits on it, the others on its
        // lock, which is released before the reply (a statement of its own).
        let job = lock(jobs).recv();
        let Ok(job) = job else { return };
        if job.answer {
            replies.answers.fetch_sub(1, Ordering::SeqCst);
            let current = lock(&job.map.state).current.clone();
            if let Some((meta, payload)) = current {
                let _ = job
                    .query
                    .reply(job.map.key.as_str(), payload)
                    .attachment(meta.encode().to_vec())
                    .wait();
            }
        }
        // The query's final message goes out as its last copy drops: here
        // (Zenoh's receive thread drops its own copy as the callback
        // returns, before a reply thread is even woken, bar preemption).
    }
}

/// Write a remote value into the region if it is newer than what the
/// region holds, never over a local write the bridge has not seen yet.
fn apply(shared: &Shared, map: &Map, meta: Meta, payload: &ZBytes, via: &str) {
    let mut st = lock(&map.state);
    // Never into a region nobody can open any more.
    reopen_if_removed(shared, map, &mut st);
    let fm = Arc::clone(&st.fm);
    st.max_seen = st.max_seen.max(meta.version.time);
    if st.version.is_some_and(|v| meta.version <= v) {
        return;
    }
    let expected = match st.local_gen {
        Some(g) if st.version.is_some() => g,
        None if st.version.is_some() => {
            drop(st);
            // A region made anew under the name, written by a local process
            // the watcher has not sent yet: the local write wins.
            shared.log.event(
                "conflict",
                json!({
                    "region": map.region, "key": map.key, "via": via,
                    "origin": meta.version.host_hex(), "time": meta.version.time,
                    "resolution": "the local write wins (a region made anew)",
                }),
            );
            return;
        }
        // Nothing dated yet: whatever the region holds loses to a dated value.
        _ => fm.generation(),
    };
    let written = write_pieces_if(&fm, expected, payload);
    let len = payload.len();
    match written {
        Ok(p) => {
            map.lock.record(p.generation, &meta);
            st.version = Some(meta.version);
            st.local_gen = Some(p.generation);
            st.current = Some((meta, payload.clone()));
            drop(st);
            if !shared.log.wants("applied") {
                return;
            }
            shared.log.event(
                "applied",
                json!({
                    "region": map.region, "key": map.key, "via": via,
                    "bytes": len, "generation": p.generation,
                    "origin": meta.version.host_hex(), "time": meta.version.time,
                    "origin_generation": meta.generation,
                    "writer": format!("{}/{}", meta.writer.pid, meta.writer.handle),
                }),
            );
        }
        Err(FmError::Conflict { found, .. }) => {
            drop(st);
            // A local write the watcher has not published yet: it is newer
            // than this remote value (it will be dated after it) and wins.
            shared.log.event(
                "conflict",
                json!({
                    "region": map.region, "key": map.key, "via": via,
                    "expected": expected, "found": found,
                    "origin": meta.version.host_hex(), "time": meta.version.time,
                    "resolution": "the local write wins",
                }),
            );
        }
        Err(FmError::TooLarge {
            len,
            capacity,
            max_capacity,
        }) => {
            drop(st);
            // The region was made anew meanwhile (see reopen_if_removed)
            // by someone else, smaller than the one check_remote saw:
            // refused as that check would have.
            let (limit, max, reason) = too_large_for_region(len, capacity, max_capacity);
            tell_sender(shared, map, &meta, limit, max);
            shared.log.event(
                "refused",
                json!({ "region": map.region, "key": map.key, "via": via, "reason": reason }),
            );
        }
        Err(e) => {
            drop(st);
            // OutOfSpace (a growth found no room) among others: nothing
            // was written, the region keeps its content.
            shared.log.event(
                "error",
                json!({ "region": map.region, "key": map.key, "reason": format!("cannot write the region: {e}") }),
            );
        }
    }
}

/// Publish `payload` into `fm` if the region is still at generation
/// `expected`, as [`FileMap::write_if`] does, copying each of its slices
/// straight into the region: a large sample arrives in fragments (Zenoh
/// hands 1 MiB over as about sixteen slices), which are so never gathered
/// into a contiguous buffer first.
fn write_pieces_if(
    fm: &FileMap,
    expected: u64,
    payload: &ZBytes,
) -> Result<filemap::Published, FmError> {
    let mut slices = payload.slices();
    let first = slices.next().unwrap_or(&[]);
    if first.len() == payload.len() {
        return fm.write_if(expected, first);
    }
    // The loan holds the region lock: no write lands between this look at
    // the generation and the commit. Dropped uncommitted, it publishes
    // nothing.
    let mut loan = fm.loan()?;
    let found = fm.generation();
    if found != expected {
        return Err(FmError::Conflict {
            name: fm.name().to_owned(),
            expected,
            found,
        });
    }
    // Refused whole, with the whole length (an append past the maximum
    // would name the length reached so far).
    if payload.len() > loan.max_capacity() {
        return Err(FmError::TooLarge {
            len: payload.len(),
            capacity: loan.capacity(),
            max_capacity: loan.max_capacity(),
        });
    }
    // A content larger than the capacity grows the region as the pieces
    // arrive, by doublings up to the maximum (a few growths, each under
    // this loan's lock, not one per piece); nothing is visible before the
    // commit, and a growth that finds no space (`OutOfSpace`) leaves the
    // content as it was.
    for piece in payload.slices() {
        loan.append(piece)?;
    }
    loan.commit()
}

/// How often a watcher tries again to make a removed region anew after
/// that failed (the only timed wake-up of an idle watcher).
const REOPEN_RETRY: Duration = Duration::from_secs(1);

fn watch_loop(shared: &Shared, map: &Map) {
    // Look before every wait: a write made between `start` and this
    // thread's first wait is not missed.
    let mut seen = None;
    let mut watched: Option<Arc<FileMap>> = None;
    let mut failed = false;
    // Armed before each look at the name: a removal after the look rings
    // the token the wait is given. `None`: the bridge is stopping.
    while let Some((token, rings)) = map.alarm.arm() {
        // At every wake-up (a change, the name changed): is it still ours?
        let (fm, retry) = {
            let mut st = lock(&map.state);
            reopen_if_removed(shared, map, &mut st);
            (Arc::clone(&st.fm), st.reopen_failed)
        };
        if !watched.as_ref().is_some_and(|w| Arc::ptr_eq(w, &fm)) {
            // Reopened (here or by apply): a new region, new generations.
            watched = Some(Arc::clone(&fm));
            seen = None;
            failed = false;
        }
        // Publish until no change is left, so the name is looked at once
        // per wake-up (a `stat` and an `fstat`), not once per content
        // sent. A name change or the shutdown cancels the token armed
        // above and ends this at once, even under a writer that never
        // pauses: the wait below then returns at once, and the loop looks
        // at the name again (or leaves).
        let mut g = fm.generation();
        while seen != Some(g) && !token.is_cancelled() {
            seen = Some(g);
            on_local_change(shared, map);
            g = fm.generation();
        }
        let mut wait = filemap::Wait::sleep().cancel(&token);
        if retry {
            wait = wait.timeout(REOPEN_RETRY);
        }
        match fm.wait_change(g, wait) {
            Ok(_) | Err(FmError::Cancelled { .. } | FmError::Timeout { .. }) => {}
            Err(e) => {
                // The handle cannot be used any more (its file shrank): no
                // change will come through it. Wait for a new region under
                // the name (or the shutdown).
                if !std::mem::replace(&mut failed, true) {
                    shared.log.event(
                        "error",
                        json!({ "region": map.region, "key": map.key,
                                "reason": format!("cannot wait for changes (waiting for the region to be made anew): {e}") }),
                    );
                }
                if !map.alarm.wait(rings) {
                    break;
                }
            }
        }
    }
    // Stopping: a local write made before the shutdown goes out first.
    if let Some(fm) = watched {
        if seen != Some(fm.generation()) {
            on_local_change(shared, map);
        }
    }
}

/// The version of a write this bridge dates now: its HLC time, but after
/// every time it has seen (remote values, its own) so that the write is
/// the newest everywhere.
fn next_version(shared: &Shared, st: &State) -> Version {
    let ts = shared.session.new_timestamp();
    let mut time = ts.get_time().as_u64();
    let floor = st.max_seen.max(st.version.map_or(0, |v| v.time));
    if time <= floor {
        time = floor + 1;
    }
    Version {
        time,
        host: shared.host,
    }
}

/// Publish the region's content if a local process wrote it (anything the
/// bridge did not write itself).
fn on_local_change(shared: &Shared, map: &Map) {
    // Read under the state lock: every write of the bridge's own (apply)
    // happens under it too and records its generation before releasing it,
    // so a generation found here that is not `local_gen` is a local write.
    // (A snapshot taken before the lock could be older than an apply that
    // finished meanwhile, and be sent as new.)
    let mut st = lock(&map.state);
    // Woken by the bridge's own apply (every publish wakes every waiter of
    // the region, this one included), or by a content already sent: known
    // without reading, which at 1 MiB would be a copy of 1 MiB per hop. A
    // write landing after this look moves the generation past the
    // watcher's `seen`, which brings it back here.
    if st.local_gen.is_some_and(|g| g == st.fm.generation()) {
        return;
    }
    let mut buf = Vec::new();
    let stamp = match st.fm.read_into(&mut buf) {
        Ok(s) => s,
        Err(e) => {
            drop(st);
            shared.log.event(
                "error",
                json!({ "region": map.region, "key": map.key, "reason": format!("cannot read the region: {e}") }),
            );
            return;
        }
    };
    if st.local_gen == Some(stamp.generation) {
        return; // our own apply, or already sent
    }
    st.local_gen = Some(stamp.generation);
    if stamp.generation == 0 && st.version.is_none() {
        return; // a new empty region: nothing to tell
    }
    if buf.len() > shared.max_size {
        drop(st);
        shared.log.event(
            "refused",
            json!({ "region": map.region, "key": map.key, "via": "local",
                    "reason": format!("local content of {} bytes is over --max-size {}", buf.len(), shared.max_size) }),
        );
        return;
    }
    let version = next_version(shared, &st);
    let time = version.time;
    let meta = Meta {
        version,
        generation: stamp.generation,
        writer: stamp.writer,
        len: buf.len() as u64,
    };
    let len = buf.len();
    map.lock.record(stamp.generation, &meta);
    let payload = ZBytes::from(buf);
    st.version = Some(version);
    st.current = Some((meta, payload.clone()));
    drop(st);
    match put(shared, map, &meta, payload) {
        Ok(()) if !shared.log.wants("sent") => {}
        Ok(()) => shared.log.event(
            "sent",
            json!({ "region": map.region, "key": map.key, "bytes": len,
                    "generation": stamp.generation, "time": time,
                    "writer": format!("{}/{}", stamp.writer.pid, stamp.writer.handle) }),
        ),
        Err(e) => shared.log.event(
            "error",
            json!({ "region": map.region, "key": map.key, "reason": format!("cannot send: {e}") }),
        ),
    }
}

/// Put `map`'s value to the peers, dated by `meta`. Reliable (the
/// default) with blocking congestion control: the latest value is never
/// dropped; a stalled peer delays us (and is disconnected by Zenoh after a
/// while).
fn put(shared: &Shared, map: &Map, meta: &Meta, payload: ZBytes) -> zenoh::Result<()> {
    shared
        .session
        .put(map.key.as_str(), payload)
        .attachment(meta.encode().to_vec())
        .congestion_control(CongestionControl::Block)
        .allowed_destination(Locality::Remote)
        .wait()
}

/// Ask every peer for each key's value and apply the newest.
fn sync_all(shared: &Shared, why: &str) {
    for map in &shared.maps {
        let started = Instant::now();
        let replies = match shared
            .session
            .get(map.key.as_str())
            .consolidation(ConsolidationMode::None)
            .allowed_destination(Locality::Remote)
            .timeout(shared.query_timeout)
            .wait()
        {
            Ok(r) => r,
            Err(e) => {
                shared.log.event(
                    "error",
                    json!({ "region": map.region, "key": map.key, "reason": format!("cannot query peers: {e}") }),
                );
                continue;
            }
        };
        let mut best: Option<(Meta, ZBytes)> = None;
        let mut count = 0usize;
        while let Ok(reply) = replies.recv() {
            let Ok(sample) = reply.result() else { continue };
            count += 1;
            if let Some(meta) =
                check_remote(shared, map, sample.attachment(), sample.payload(), "reply")
            {
                if best.as_ref().is_none_or(|(m, _)| m.version < meta.version) {
                    best = Some((meta, sample.payload().clone()));
                }
            }
        }
        if let Some((meta, payload)) = best {
            apply(shared, map, meta, &payload, "reply");
        }
        shared.log.event(
            "synced",
            json!({ "region": map.region, "key": map.key, "why": why, "replies": count,
                    "ms": started.elapsed().as_millis() as u64 }),
        );
    }
}

/// How long after a peer appears the resync waits: its declarations
/// (queryables, subscribers) arrive with its token, and a burst of
/// arrivals is coalesced.
const PEER_SETTLE: Duration = Duration::from_millis(200);
/// The least time between the starts of two resyncs: peers that come
/// meanwhile are served together by the next one. A peer whose token
/// comes and goes many times a second (or many peers' tokens) costs one
/// query round and one re-announcement per second, not one each.
const RESYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Lines that a peer can cause at will (`peer_up` and `peer_down`,
/// queries dropped unanswered) are logged at most a few times per window
/// of this length; the rest are counted, and the count is logged with the
/// next line logged (field `suppressed`).
const LINES_WINDOW: Duration = Duration::from_secs(10);
/// The most `peer_up` and `peer_down` lines per [`LINES_WINDOW`].
const PEER_LINES_MAX: u32 = 20;
/// Lines about impersonating samples per [`LINES_WINDOW`].
const IMPERSONATION_LINES_MAX: u32 = 3;

/// A window of lines of one kind: tokens that come and go fast (one
/// flapping link, or a peer declaring token after token under fresh ids),
/// or a flood of queries, must not flood the log.
struct Lines {
    max: u32,
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Lines {
    /// At most `max` lines per [`LINES_WINDOW`].
    fn new(max: u32) -> Lines {
        Lines {
            max,
            start: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// `fields` (a JSON object) to log at `now`, with the count of lines
    /// left out before it if any, or `None` when the window's lines are
    /// spent (counted).
    fn admit(&mut self, now: Instant, mut fields: Value) -> Option<Value> {
        if self
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= LINES_WINDOW)
        {
            self.start = Some(now);
            self.logged = 0;
        }
        if self.logged >= self.max {
            self.suppressed += 1;
            return None;
        }
        self.logged += 1;
        if let (n @ 1.., Value::Object(f)) = (std::mem::take(&mut self.suppressed), &mut fields) {
            f.insert("suppressed".into(), n.into());
        }
        Some(fields)
    }
}

fn resync_loop(shared: &Shared, peers: &mpsc::Receiver<Resync>) {
    let mut last: Option<Instant> = None;
    // Blocks until a peer comes, a sample impersonates this bridge, or the
    // bridge stops.
    loop {
        // `None`: only impersonation, whose value was dated anew already.
        let mut peer = match peers.recv() {
            Ok(Resync::Peer(peer)) => Some(peer),
            Ok(Resync::Impersonated) => None,
            Ok(Resync::Stop) | Err(_) => return,
        };
        let mut settled = Instant::now() + PEER_SETTLE;
        if let Some(last) = last {
            settled = settled.max(last + RESYNC_INTERVAL);
        }
        let mut more = 0usize;
        loop {
            match peers.recv_timeout(settled.saturating_duration_since(Instant::now())) {
                Ok(Resync::Peer(p)) if peer.is_none() => peer = Some(p),
                Ok(Resync::Peer(_)) => more += 1,
                Ok(Resync::Impersonated) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Ok(Resync::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        last = Some(Instant::now());
        let why = match (&peer, more) {
            (Some(peer), 0) => format!("peer {peer} up"),
            (Some(peer), n) => format!("peer {peer} up (and {n} more)"),
            (None, _) => "impersonation".to_string(),
        };
        if peer.is_some() {
            sync_all(shared, &why);
        }
        // Re-announce what we hold: a peer that was cut off applies it if
        // it is newer than its own (it may have missed our last put).
        for map in &shared.maps {
            let current = lock(&map.state).current.clone();
            if let Some((meta, payload)) = current {
                let bytes = payload.len();
                if put(shared, map, &meta, payload).is_ok() {
                    shared.log.event(
                        "announced",
                        json!({ "region": map.region, "key": map.key, "why": why,
                                "bytes": bytes, "time": meta.version.time }),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filemap_testkit::{unique, Cleanup};

    /// `len` bytes of a pattern that shifts with each byte's position, so a
    /// piece written at the wrong offset or a page left unwritten shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// `bytes` as a sample arrives from the network: in slices (of odd
    /// lengths, as Zenoh's fragments may be), never contiguous.
    fn in_slices(bytes: &[u8], slice: usize) -> ZBytes {
        let mut writer = ZBytes::writer();
        for piece in bytes.chunks(slice) {
            writer.append(ZBytes::from(piece.to_vec()));
        }
        let payload = writer.finish();
        assert!(payload.slices().count() > 1, "the payload is in slices");
        payload
    }

    /// A new region of 4096 bytes that may grow to 1 MiB, removed when the
    /// `Cleanup` drops (bind it first: it drops after the handle).
    fn growable(tag: &str) -> (Cleanup, FileMap) {
        let name = unique(tag);
        let cleanup = Cleanup(name.clone());
        let fm = FileMap::builder(&name)
            .capacity(4096)
            .max_capacity(1 << 20)
            .open()
            .unwrap();
        (cleanup, fm)
    }

    #[test]
    fn pieces_larger_than_the_capacity_grow_the_region_within_its_maximum() {
        let (_c, fm) = growable("pieces-grow");
        fm.write(b"before").unwrap();
        // 200 KiB in 3000-byte pieces (under the loan's direct-copy size)
        // and in 70000-byte ones (over it).
        for (len, slice) in [(200 << 10, 3000), ((200 << 10) + 13, 70_000)] {
            let content = pattern(len);
            let expected = fm.generation();
            let published = write_pieces_if(&fm, expected, &in_slices(&content, slice)).unwrap();
            assert_eq!(published.generation, expected + 1);
            assert_eq!(fm.read().unwrap().content, content);
            assert!(
                (len..=1 << 20).contains(&fm.capacity()),
                "capacity {} for {len} bytes",
                fm.capacity()
            );
        }
        // Up to the maximum exactly.
        let content = pattern(1 << 20);
        let expected = fm.generation();
        write_pieces_if(&fm, expected, &in_slices(&content, 65_536)).unwrap();
        assert_eq!(fm.read().unwrap().content, content);
        assert_eq!(fm.capacity(), 1 << 20);
    }

    #[test]
    fn pieces_past_the_maximum_are_too_large_whole_and_the_content_is_kept() {
        let (_c, fm) = growable("pieces-past");
        fm.write(b"kept").unwrap();
        let before = fm.read().unwrap();
        let past = pattern(2 << 20);
        match write_pieces_if(&fm, before.generation, &in_slices(&past, 65_536)) {
            Err(FmError::TooLarge {
                len,
                capacity,
                max_capacity,
            }) => assert_eq!((len, capacity, max_capacity), (2 << 20, 4096, 1 << 20)),
            other => panic!("{other:?}"),
        }
        let after = fm.read().unwrap();
        assert_eq!(after.content, b"kept");
        assert_eq!(after.generation, before.generation);
        assert_eq!(fm.capacity(), 4096, "nothing grew for a refused content");
        // The region still takes a content within its maximum.
        let content = pattern(300 << 10);
        write_pieces_if(&fm, after.generation, &in_slices(&content, 65_536)).unwrap();
        assert_eq!(fm.read().unwrap().content, content);
    }

    /// The number a Zenoh setting holds.
    fn setting(config: &zenoh::Config, key: &str) -> usize {
        config.get_json(key).unwrap().parse().unwrap()
    }

    fn rx_buffer(config: &zenoh::Config) -> usize {
        setting(config, "transport/link/rx/buffer_size")
    }

    #[test]
    fn receive_buffers_hold_three_of_the_largest_contents_within_bounds() {
        let sized = |largest: usize| {
            let mut config = zenoh::Config::default();
            assert_eq!(rx_buffer(&config), ZENOH_RX_BUFFER, "Zenoh's default moved");
            size_rx_buffers(&mut config, largest).unwrap();
            rx_buffer(&config)
        };
        assert_eq!(sized(1 << 20), 3 << 20);
        assert_eq!(sized(4096), ZENOH_RX_BUFFER, "never below one batch");
        assert_eq!(sized(0), ZENOH_RX_BUFFER);
        assert_eq!(sized(1 << 30), RX_BUFFER_MAX);
        assert_eq!(sized(usize::MAX), RX_BUFFER_MAX, "no overflow");
    }

    fn max_message(config: &zenoh::Config) -> usize {
        setting(config, "transport/link/rx/max_message_size")
    }

    #[test]
    fn messages_are_limited_to_twice_the_largest_content_or_1_mib_more() {
        let limited = |largest: usize| {
            let mut config = zenoh::Config::default();
            assert_eq!(
                max_message(&config),
                ZENOH_MAX_MESSAGE,
                "Zenoh's default moved"
            );
            limit_messages(&mut config, largest).unwrap();
            max_message(&config)
        };
        assert_eq!(limited(2048), 2048 + (1 << 20) + MESSAGE_OVERHEAD);
        assert_eq!(limited(1 << 20), (2 << 20) + MESSAGE_OVERHEAD);
        assert_eq!(limited(64 << 20), (128 << 20) + MESSAGE_OVERHEAD);
        assert_eq!(limited(usize::MAX), usize::MAX, "no overflow");
        let mut config = zenoh::Config::default();
        config
            .insert_json5("transport/link/rx/max_message_size", "5000000")
            .unwrap();
        limit_messages(&mut config, 2048).unwrap();
        assert_eq!(max_message(&config), 5_000_000, "the user's value is kept");
    }

    #[test]
    fn human_lines_escape_what_could_forge_a_line_and_peer_text_is_cut() {
        let mut line = String::from("peer_up peer=");
        push_escaped(&mut line, "x\nready forged=1\r\u{1b}[2J\u{2028}\u{202e}é");
        assert_eq!(
            line,
            r"peer_up peer=x\nready forged=1\r\u{1b}[2J\u{2028}\u{202e}é"
        );
        assert_eq!(peer_text("0123456789abcdef"), "0123456789abcdef");
        let long = "é".repeat(100);
        assert_eq!(
            peer_text(&long),
            format!("{}...", "é".repeat(MAX_PEER_TEXT))
        );
    }

    #[test]
    fn peer_lines_are_limited_per_window_and_the_rest_counted() {
        let mut lines = Lines::new(PEER_LINES_MAX);
        let peer = |p: &str| json!({ "peer": p });
        let t0 = Instant::now();
        for i in 0..PEER_LINES_MAX {
            let p = format!("p{i}");
            assert_eq!(lines.admit(t0, peer(&p)), Some(peer(&p)));
        }
        assert_eq!(lines.admit(t0, peer("x")), None);
        assert_eq!(lines.admit(t0 + Duration::from_secs(9), peer("y")), None);
        let next = t0 + LINES_WINDOW;
        assert_eq!(
            lines.admit(next, peer("z")),
            Some(json!({ "peer": "z", "suppressed": 2 }))
        );
        assert_eq!(lines.admit(next, peer("w")), Some(peer("w")));
    }

    #[test]
    fn a_receive_buffer_set_in_the_users_config_is_kept() {
        let mut config = zenoh::Config::default();
        config
            .insert_json5("transport/link/rx/buffer_size", "1000000")
            .unwrap();
        size_rx_buffers(&mut config, 1 << 20).unwrap();
        assert_eq!(rx_buffer(&config), 1_000_000);
    }
}
