//! `filemap-bridge`: one filemap region, several hosts, over Zenoh.
//!
//! A bridge mirrors local regions to Zenoh keys (`--map REGION=KEY`). On
//! every host a bridge serves the same key; together they keep the regions
//! equal.
//!
//! # Semantics
//!
//! - **Local to network.** A publish by any process on the host is put on
//!   the key, whole, with its metadata ([`wire::Meta`]): an HLC timestamp,
//!   the origin host id (the bridge's Zenoh id), the generation and the
//!   writer.
//! - **Network to local.** A remote value is written into the local region
//!   only if it is newer than what the region holds, ordered by
//!   (timestamp, host id) ([`wire::Version`]). Every host converges to the
//!   same content whatever the order of arrival. A local write is dated
//!   after every remote value the bridge has seen, so a write made after
//!   seeing a remote value always wins.
//! - **No echo.** A bridge publishes only what local processes wrote, never
//!   what it applied, and drops its own writes coming back: three or more
//!   hosts never loop.
//! - **Conflicts.** Remote values are written with
//!   [`filemap::FileMap::write_if`] against the generation the bridge last
//!   accounted for: a local write that lands while a remote value is being
//!   applied is never overwritten; it is published (dated later) and wins
//!   everywhere.
//! - **Late joiners.** Each bridge serves a queryable per key with the value
//!   its region holds. A bridge that starts, or sees a peer (re)appear
//!   (liveliness tokens under `filemap-bridge-peers/`), queries its peers and
//!   applies the newest value; at start it does so before it logs `ready`.
//!   Peers that come are served at most once a second, together, and
//!   `peer_up`/`peer_down` are logged at most 20 times per 10 s (the next
//!   line logged counts the others in `suppressed`): tokens that come and
//!   go fast cannot flood the log or the network. Queries are answered on
//!   three threads of the bridge's own, never on Zenoh's receive threads:
//!   a querier that stops reading (Zenoh 1.10 replies with the querier's
//!   blocking congestion control) delays replies, not samples. At most 64
//!   queries wait to be answered; the rest are dropped unanswered and
//!   logged (`refused`, `via` `query`) at most 3 times per 10 s.
//! - **One bridge per region per host**, enforced by an exclusive `flock` on
//!   `/dev/shm/filemap-bridge.<region>.lock`.
//! - **Lifetime.** A region the bridge creates is persistent, like one
//!   `filemap write` creates: it stays, with its content, after the bridge
//!   stops, until `filemap rm`. A region that exists keeps the lifetime its
//!   creator gave it.
//! - **Removed regions.** When the region's name appears or goes away
//!   (told by inotify on the shared-memory directory on Linux; elsewhere
//!   looked at every 100 ms; see [`filemap::admin::NameWatch`]), at every change, and before applying a
//!   remote value, the bridge checks that the region's name still leads to
//!   its region ([`filemap::FileMap::is_removed`]). If not (`filemap rm`, perhaps
//!   followed by a new region of that name), it opens the name again,
//!   creating the region if nobody did, and logs `reopened`: a new empty
//!   region gets the newest value the bridge knows; a new region a local
//!   process already wrote keeps its content, which is sent as the newest
//!   value (a remote value arriving first loses to it, as to any local
//!   write the bridge has not sent yet). Either way the hosts converge.
//! - **Regions that grow.** A value larger than a receiving bridge's
//!   region capacity but within its maximum capacity grows that region
//!   (see `docs/growth.md`; `--max-capacity` sets the maximum of the
//!   regions the bridge creates) and is applied whole, like any other.
//! - **Limits that differ.** A value larger than a receiving bridge's
//!   region maximum capacity (its capacity, for a region that cannot grow)
//!   or `--max-size` is refused there (`refused`), its region keeping its
//!   content, and the
//!   receiver publishes a notice on `filemap-bridge-refused/<key>`
//!   ([`bridge::REFUSAL_PREFIX`]); the sender logs `refused_by_peer` with
//!   the length and the peer's limit (`peer_capacity`, or
//!   `peer_max_capacity` for a region that could still grow, or
//!   `peer_max_size`). The hosts then hold different
//!   contents until a value that fits is written. A value more than twice
//!   the receiver's limit, and more than 1 MiB over it, is dropped by Zenoh
//!   as it arrives (the bridge sets `transport/link/rx/max_message_size`),
//!   unlogged on both sides: a peer cannot make a bridge hold a sample far
//!   larger than it takes. A notice longer than 1 KiB (a real one is under
//!   200 bytes) is logged as `refused` and dropped unread.
//! - **Idle means asleep.** Every thread of the bridge sleeps until there
//!   is work (a local write, a name change, a peer, a shutdown); none wakes
//!   on a timer. SIGINT, SIGTERM or dropping the [`bridge::Bridge`] ends
//!   all of them at once; a local write made before it is still sent.
//! - **Logs** go to standard error, one line per event; with `--json`,
//!   JSON lines go to standard output instead (nothing else is printed
//!   there). A human line writes control characters, Unicode line
//!   separators and direction overrides as escapes (`\n`, `\u{1b}`), and
//!   what a peer names itself is cut to 64 characters: a peer cannot forge
//!   a line.
//! - **Large contents** cross whole (a Zenoh message is delivered entire or
//!   not at all; the region publish is atomic): never torn. Intermediate
//!   values may be skipped; the latest always arrives (reliable, blocking
//!   congestion control, and a resynchronisation when a peer reconnects).
//!
//! # Security
//!
//! With `--tls-ca/--tls-cert/--tls-key` and `tls/` endpoints, peers
//! authenticate each other (mutual TLS): a peer without a certificate signed
//! by the CA is refused. Samples that do not parse (missing or bad
//! attachment, wrong format version, length mismatch), are larger than
//! `--max-size` or the local region's maximum capacity, or are dated more than
//! [`bridge::MAX_CLOCK_SKEW`] in the future are logged (`refused`) and
//! dropped; the region is untouched. A sample that names a bridge's own
//! host id and is newer than its value is refused by that bridge
//! (impersonation), which dates its next writes after it and puts its own
//! value again, dated anew (at most once a second), so the peers converge
//! back; a bridge that holds no value yet takes such a sample as any
//! other (its own, from before a restart with a fixed Zenoh id). An authenticated
//! peer is trusted: it can write any content to the keys it knows.

#![warn(missing_docs)]

pub mod bridge;
pub mod wire;
