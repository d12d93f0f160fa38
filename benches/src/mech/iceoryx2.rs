//! `iceoryx2-spin` and `iceoryx2-event`: iceoryx2 publish-subscribe with
//! `[u8]` slices, one service per direction (history 0, buffer 1, as its
//! own ping-pong benchmark sets them up). The sender loans a sample, copies
//! the message in and sends; the receiver copies the payload out, as every
//! other mechanism does. `-spin` polls `receive()`; `-event` also has an
//! event service per direction: the sender notifies after sending and the
//! receiver sleeps in its listener until notified.
//!
//! iceoryx2 keeps its bookkeeping under its root path (default
//! `/tmp/iceoryx2`) and its shared memory as `/dev/shm/<prefix>*`
//! (default prefix `iox2_`). Both are pointed into the run's namespace
//! through `Config`, so the run's cleanup removes whatever is left.

#![forbid(unsafe_code)]

use std::fmt::Debug;

use anyhow::{anyhow, Result};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{
    ipc, set_log_level, Config, FileName, LogLevel, Node, NodeBuilder, Path as IoxPath,
    SemanticString, ServiceName, SignalHandlingMode,
};

use super::Ctx;
use crate::harness::{
    self, expect, seq_of, spin_until, ChildArgs, ChildStdinMode, Msg, Namespace, Step, TIMEOUT,
};

/// Environment variable overriding iceoryx2's
/// `subscriber_expired_connection_buffer` (default 128), for diagnosis only;
/// published numbers use iceoryx2's defaults.
pub const EXPIRED_BUFFER_VAR: &str = "FILEMAP_BENCH_IOX2_EXPIRED_BUFFER";

/// How the receiver learns that a sample arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Spin,
    Event,
}

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

/// An iceoryx2 error, with what we were doing.
fn ix<E: Debug>(what: &str) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("iceoryx2: {what}: {e:?}")
}

/// iceoryx2 configured to keep everything inside the run's namespace.
pub fn config(ns: &Namespace) -> Result<Config> {
    let mut config = Config::default();
    let prefix = format!("{}-iox2_", ns.prefix());
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(ix("prefix"))?;
    let root = ns.dir().join("iceoryx2");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 run directory"))?;
    config
        .global
        .set_root_path(&IoxPath::new(root.as_bytes()).map_err(ix("root path"))?);
    // Diagnosis knob (see docs/performance.md): every `receive()` scans a slot
    // map of `subscriber_expired_connection_buffer` (default 128) +
    // `max_publishers` entries, which dominates an empty poll.
    if let Some(n) = std::env::var_os(EXPIRED_BUFFER_VAR) {
        let n = n
            .to_string_lossy()
            .parse()
            .map_err(|e| anyhow!("{EXPIRED_BUFFER_VAR}: {e}"))?;
        config
            .defaults
            .publish_subscribe
            .subscriber_expired_connection_buffer = n;
    }
    Ok(config)
}

fn node(ns: &Namespace) -> Result<Node<ipc::Service>> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .config(&config(ns)?)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(ix("node"))
}

/// One direction: a publish-subscribe service, plus an event service when
/// the receiver sleeps.
struct Channel {
    name: String,
}

impl Channel {
    fn service_name(&self) -> Result<ServiceName> {
        ServiceName::new(&self.name).map_err(ix("service name"))
    }

    fn event_name(&self) -> Result<ServiceName> {
        ServiceName::new(&format!("{}-event", self.name)).map_err(ix("service name"))
    }

    fn sender(
        &self,
        node: &Node<ipc::Service>,
        payload: usize,
        how: Wait,
    ) -> Result<(Pub, Option<Notifier<ipc::Service>>)> {
        let service = node
            .service_builder(&self.service_name()?)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .enable_safe_overflow(true)
            .open_or_create()
            .map_err(ix("publish-subscribe service"))?;
        let publisher = service
            .publisher_builder()
            .initial_max_slice_len(payload)
            .create()
            .map_err(ix("publisher"))?;
        let notifier = match how {
            Wait::Spin => None,
            Wait::Event => Some(
                node.service_builder(&self.event_name()?)
                    .event()
                    .open_or_create()
                    .map_err(ix("event service"))?
                    .notifier_builder()
                    .create()
                    .map_err(ix("notifier"))?,
            ),
        };
        Ok((publisher, notifier))
    }

    fn receiver(
        &self,
        node: &Node<ipc::Service>,
        how: Wait,
    ) -> Result<(Sub, Option<Listener<ipc::Service>>)> {
        let service = node
            .service_builder(&self.service_name()?)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .enable_safe_overflow(true)
            .open_or_create()
            .map_err(ix("publish-subscribe service"))?;
        let subscriber = service
            .subscriber_builder()
            .create()
            .map_err(ix("subscriber"))?;
        let listener = match how {
            Wait::Spin => None,
            Wait::Event => Some(
                node.service_builder(&self.event_name()?)
                    .event()
                    .open_or_create()
                    .map_err(ix("event service"))?
                    .listener_builder()
                    .create()
                    .map_err(ix("listener"))?,
            ),
        };
        Ok((subscriber, listener))
    }
}

/// Loan, copy in, send, and notify when there is a notifier.
#[inline]
fn send(publisher: &Pub, notifier: Option<&Notifier<ipc::Service>>, msg: &[u8]) -> Result<()> {
    let sample = publisher.loan_slice_uninit(msg.len()).map_err(ix("loan"))?;
    sample.write_from_slice(msg).send().map_err(ix("send"))?;
    if let Some(n) = notifier {
        n.notify().map_err(ix("notify"))?;
    }
    Ok(())
}

/// Try to take one sample, copying its payload into `buf`.
#[inline]
fn try_take(subscriber: &Sub, buf: &mut Vec<u8>) -> Result<bool> {
    match subscriber.receive().map_err(ix("receive"))? {
        Some(sample) => {
            buf.clear();
            buf.extend_from_slice(sample.payload());
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Wait for the next sample: busy-poll, or sleep on the listener between
/// polls.
#[inline]
fn take(
    subscriber: &Sub,
    listener: Option<&Listener<ipc::Service>>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    match listener {
        None => spin_until("an iceoryx2 sample", || try_take(subscriber, buf)),
        Some(listener) => {
            let deadline = std::time::Instant::now() + TIMEOUT;
            while !try_take(subscriber, buf)? {
                if std::time::Instant::now() >= deadline {
                    anyhow::bail!("no iceoryx2 sample within {TIMEOUT:?}");
                }
                listener
                    .timed_wait(|_| {}, TIMEOUT)
                    .map_err(ix("listener wait"))?;
            }
            Ok(())
        }
    }
}

pub fn parent(ctx: &Ctx, how: Wait) -> Result<Vec<u64>> {
    let payload = ctx.plan.payload;
    let node = node(ctx.ns)?;
    let (ping, pong) = (
        Channel {
            name: ctx.ns.name("ping"),
        },
        Channel {
            name: ctx.ns.name("pong"),
        },
    );
    let (publisher, notifier) = ping.sender(&node, payload, how)?;
    let (subscriber, listener) = pong.receiver(&node, how)?;
    let mut child = ctx.spawn(
        &[format!("ping={}", ping.name), format!("pong={}", pong.name)],
        ChildStdinMode::Null,
    )?;
    child.wait_ready()?;
    let mut msg = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    let samples = ctx.drive(|step| {
        match step {
            Step::RoundTrip(seq) => {
                send(&publisher, notifier.as_ref(), msg.set_seq(seq))?;
                take(&subscriber, listener.as_ref(), &mut buf)?;
                expect(&buf, payload, seq)?;
            }
            Step::Stop => send(&publisher, notifier.as_ref(), msg.set_seq(harness::STOP))?,
        }
        Ok(())
    })?;
    child.finish()?;
    Ok(samples)
}

pub fn child(args: &ChildArgs, how: Wait) -> Result<()> {
    let payload = args.usize("payload")?;
    let ns = args.namespace()?;
    let node = node(&ns)?;
    let ping = Channel {
        name: args.get("ping")?.to_owned(),
    };
    let pong = Channel {
        name: args.get("pong")?.to_owned(),
    };
    let (subscriber, listener) = ping.receiver(&node, how)?;
    let (publisher, notifier) = pong.sender(&node, payload, how)?;
    let mut reply = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    harness::child_ready()?;
    loop {
        take(&subscriber, listener.as_ref(), &mut buf)?;
        let seq = seq_of(&buf);
        if seq == harness::STOP {
            return Ok(());
        }
        expect(&buf, payload, seq)?;
        send(&publisher, notifier.as_ref(), reply.set_seq(seq))?;
    }
}
