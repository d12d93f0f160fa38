//! Surviving a backing file that shrinks under its mappings.
//!
//! Any process that may write a region's file may also truncate it
//! (`ftruncate(2)`, `truncate -s 0`). The kernel then answers every access
//! to the mapped pages past the new end with `SIGBUS`, whose default
//! action kills the process: a reader, a waiter, a lock holder, whatever it
//! was doing. This module owns the one process-wide `SIGBUS` handler that
//! turns that into a typed error instead:
//!
//! 1. Every [`Mapping`](super::Mapping) registers its address range here
//!    ([`watch`]) and unregisters it when unmapped ([`Watched::release`]).
//! 2. On `SIGBUS` the handler looks the faulting address up. Inside a
//!    filemap mapping, it marks the mapping lost, then maps private zero
//!    pages over the whole of it at the same address (`mmap(2)` with
//!    `MAP_FIXED`), so the faulting access completes when the handler
//!    returns, and stores [`GONE`] as the generation there, so every wait
//!    on the handle ends at once. The handle's next call sees the mark and
//!    returns `Error::Truncated` (the gateway in `region.rs`).
//! 3. Any other `SIGBUS` goes to the handler that was installed before
//!    ours (Rust's own stack-overflow handler, or a program's), or, if
//!    there was none, is re-raised with the default action.
//!
//! What the handler does is async-signal-safe: atomic loads and stores on
//! nodes that are never freed, and the `mmap(2)` system call. (POSIX does
//! not list `mmap` among the async-signal-safe functions; on Linux, macOS
//! and FreeBSD it is a plain system call that takes no user-space lock,
//! which is what the rule is about, and language runtimes rely on the same.)
//!
//! A thread that is asleep in the kernel on the mapping (a futex wait) does
//! not fault; it wakes within `notify::SLICE`, touches the mapping and ends
//! its wait as above. Memory ordering: the mark is stored (`SeqCst`) before
//! the zero pages are mapped, and a thread can only read those zero pages
//! after the `mmap` call replaced the old ones (the kernel's TLB shoot-down
//! is a full barrier on every CPU running this process), so a thread that
//! read zeros and then loads the mark after an acquire fence sees it.
//!
//! Only `SIGBUS` is handled: truncation raises it on Linux, macOS and
//! FreeBSD. A program that installs its own `SIGBUS` handler after opening
//! a region replaces this one (and then owns those faults).

use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};
use std::sync::OnceLock;

use crate::layout::{Header, GONE};

/// One registered mapping. Nodes live for the whole process (leaked and
/// reused), so the handler may walk them at any moment.
pub struct Watched {
    /// Start of the mapping; 0 while the node is free or being (re)filled.
    base: AtomicUsize,
    len: AtomicUsize,
    /// Set by the handler: the file shrank and the mapping now holds zero
    /// pages of our own.
    lost: AtomicBool,
    /// Taken by a registration, until released.
    used: AtomicBool,
    /// The node pushed before this one (fixed once pushed).
    next: *const Watched,
}

// SAFETY: every field but `next` is atomic, and `next` is written once,
// before the node is published by the release store of `HEAD`, and never
// after; nodes are never freed.
unsafe impl Sync for Watched {}

/// The newest node; the list is only ever pushed to.
static HEAD: AtomicPtr<Watched> = AtomicPtr::new(ptr::null_mut());

/// The `SIGBUS` disposition in force before ours, called for faults that
/// are not ours.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(ptr::null_mut());

impl Watched {
    /// Whether the file shrank under the mapping (it now holds zero pages).
    #[inline]
    pub fn is_lost(&self) -> bool {
        self.lost.load(Relaxed)
    }

    /// The mapping is being unmapped: stop watching it, free the node.
    pub fn release(&self) {
        self.base.store(0, Release);
        self.len.store(0, Relaxed);
        self.used.store(false, Release);
    }
}

/// Watch the mapping `base .. base + len` (installing the handler on first
/// use). The caller calls [`Watched::release`] before or just after
/// unmapping it.
pub fn watch(base: *mut u8, len: usize) -> &'static Watched {
    install();
    let node = take_node();
    node.len.store(len, Relaxed);
    node.lost.store(false, Relaxed);
    node.base.store(base as usize, Release);
    node
}

/// A free node, or a new one pushed on the list.
fn take_node() -> &'static Watched {
    let mut at = HEAD.load(Acquire);
    while !at.is_null() {
        // SAFETY: nodes are leaked boxes, never freed, published by the
        // release store that pushed them.
        let node: &'static Watched = unsafe { &*at };
        if node
            .used
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_ok()
        {
            return node;
        }
        at = node.next.cast_mut();
    }
    let node = Box::leak(Box::new(Watched {
        base: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        lost: AtomicBool::new(false),
        used: AtomicBool::new(true),
        next: ptr::null(),
    }));
    let mut head = HEAD.load(Relaxed);
    loop {
        node.next = head;
        match HEAD.compare_exchange_weak(head, node, Release, Relaxed) {
            Ok(_) => return node,
            Err(now) => head = now,
        }
    }
}

/// Install the handler once per process: `sigaction(2)`.
fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // SAFETY: an all-zero `sigaction` is a valid value (no handler, no
        // flags, empty mask), filled in below before use.
        let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
        ours.sa_sigaction = on_sigbus as *const () as usize;
        // SA_ONSTACK: a thread with an alternate signal stack (Rust gives
        // its threads one) runs the handler there, as the stack-overflow
        // handler we may chain to expects.
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        let previous = Box::leak(Box::new(ours));
        // SAFETY: `sa_mask` is a valid `sigset_t` to empty; `sigaction`
        // reads `ours` and writes the old disposition into `previous`,
        // which is leaked, so the handler may read it for ever. The
        // disposition is published to the handler (through `PREVIOUS`)
        // before the handler can run for a filemap mapping: no mapping is
        // registered before `install` returns.
        unsafe {
            libc::sigemptyset(&mut ours.sa_mask);
            if libc::sigaction(libc::SIGBUS, &ours, previous) == 0 {
                PREVIOUS.store(previous, Release);
            }
        }
    });
}

/// The faulting address of a `SIGBUS`.
///
/// # Safety
/// `info` is the `siginfo_t` the kernel passed to a `SA_SIGINFO` handler.
unsafe fn fault_address(info: *const libc::siginfo_t) -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: the caller's contract; for SIGBUS the union holds the
    // fault's fields, of which `si_addr` is one.
    let addr = unsafe { (*info).si_addr() };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: the caller's contract.
    let addr = unsafe { (*info).si_addr };
    addr as usize
}

extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if !info.is_null() {
        // SAFETY: the kernel passes a valid `siginfo_t` to SA_SIGINFO
        // handlers.
        let addr = unsafe { fault_address(info) };
        if recover(addr) {
            return;
        }
    }
    chain(signal, info, context);
}

/// If `addr` lies in a watched mapping, replace it with zero pages and
/// mark it lost; `true` when the faulting access can now complete.
fn recover(addr: usize) -> bool {
    let mut at = HEAD.load(Acquire);
    while !at.is_null() {
        // SAFETY: nodes are never freed (see `take_node`).
        let node = unsafe { &*at };
        let base = node.base.load(Acquire);
        let len = node.len.load(Relaxed);
        if base != 0 && addr >= base && addr - base < len && node.base.load(Relaxed) == base {
            // SAFETY: `base .. base + len` is the range of a live filemap
            // mapping (registered while mapped, released before it is
            // unmapped), which `node` watches.
            return unsafe { abandon(node, base, len) };
        }
        at = node.next.cast_mut();
    }
    false
}

/// Mark the mapping `node` watches lost and put private zero pages over
/// it, with [`GONE`] as their generation; `false` if `mmap(2)` failed.
/// Async-signal-safe.
///
/// # Safety
/// `base .. base + len` must be exactly the range of a live mapping that
/// `node` watches, so that `MAP_FIXED` replaces only our own pages.
pub unsafe fn abandon(node: &Watched, base: usize, len: usize) -> bool {
    // Marked first: a thread that reads the zero pages must find the mark
    // after them (see the module notes).
    node.lost.store(true, SeqCst);
    // SAFETY:
    // - the caller's contract: the range is our own live mapping;
    // - the replacement is private anonymous memory of the same size and
    //   protection, so every pointer into the mapping stays valid:
    //   accesses now read and write zeros of our own;
    // - `mmap(2)` is a system call that takes no user-space lock.
    let zeros = unsafe {
        libc::mmap(
            base as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if zeros == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: the mapping holds at least a header (`Mapping::new` refuses
    // less) at its page-aligned, non-null start, now private memory of
    // this process.
    unsafe { Header::at(std::ptr::NonNull::new_unchecked(base as *mut u8)) }
        .line
        .generation
        .store(GONE, SeqCst);
    true
}

/// Hand a fault that is not ours to the disposition that was there before.
fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS.load(Acquire);
    // SAFETY: `PREVIOUS` is null or a leaked `sigaction` written once by
    // `install`.
    let handler = match unsafe { previous.as_ref() } {
        Some(p) => p.sa_sigaction,
        None => libc::SIG_DFL,
    };
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Back to the default action; returning re-runs the faulting
        // access, which raises SIGBUS again and ends the process as it
        // would have without us (a fault's SIGBUS cannot be ignored).
        // SAFETY: an all-zero `sigaction` is SIG_DFL with no flags and an
        // empty mask.
        unsafe {
            let default: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, &default, ptr::null_mut());
        }
        return;
    }
    // SAFETY: `previous` is non-null here (a handler was read from it).
    let flags = unsafe { (*previous).sa_flags };
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so
        // it has this signature, and gets the kernel's own arguments.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO the handler takes the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}
