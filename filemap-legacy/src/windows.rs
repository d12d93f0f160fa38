//! The gateway on Windows: the legacy map, its mutex, the hidden window
//! and the thread that pumps its messages and does every copy.
//!
//! One thread owns all the state: the window procedure only turns a
//! broadcast from another window into a posted `LEGACY_CHANGED`, so a
//! legacy program's `SendMessage` returns at once and no copy runs inside
//! it (the writer may still hold its mutex while it broadcasts). The region
//! watcher's thread posts `REGION_CHANGED`; `Stopper::stop` raises a flag
//! and posts `STOP`.
//!
//! At most one `LEGACY_CHANGED` and one `REGION_CHANGED` wait in the queue
//! at a time (each copy reads the latest text anyway): a burst of changes
//! while the legacy mutex is held costs one copy, not one wait per change,
//! and the queue never fills so that `STOP` could not be posted. The flag
//! is looked at after every message, so the gateway stops after the copy
//! in progress, not after everything queued.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;

use filemap::{FileMap, Watcher, WriterId};
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ALREADY_EXISTS, HANDLE, HWND, INVALID_HANDLE_VALUE, LPARAM,
    LRESULT, WAIT_ABANDONED, WAIT_OBJECT_0, WPARAM,
};
use windows_sys::Win32::Globalization::{
    GetCPInfoExW, MultiByteToWideChar, WideCharToMultiByte, CPINFOEXW, CP_UTF8,
};
use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, UnmapViewOfFile, VirtualQuery, FILE_MAP_ALL_ACCESS,
    MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS, MEM_COMMIT, PAGE_READWRITE,
};
use windows_sys::Win32::System::Threading::{CreateMutexW, ReleaseMutex};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DefWindowProcW, DestroyWindow, DispatchMessageW, GetMessageW, KillTimer,
    MsgWaitForMultipleObjectsEx, PeekMessageW, PostMessageW, RegisterClassExW,
    RegisterWindowMessageW, SetTimer, TranslateMessage, HWND_BROADCAST, MSG, PM_NOREMOVE,
    PM_QS_SENDMESSAGE, QS_SENDMESSAGE, WM_APP, WM_TIMER, WNDCLASSEXW, WS_OVERLAPPED,
};

use crate::{
    ansi_text, detect, legacy_to_region, region_to_legacy, utf16_bytes, utf16_to_string,
    utf16_units, Encoding, Error, Event, Options, Side, LEGACY_DEFAULT_SIZE, LEGACY_MIN_SIZE,
};

const LEGACY_CHANGED: u32 = WM_APP + 1;
const REGION_CHANGED: u32 = WM_APP + 2;
const STOP: u32 = WM_APP + 3;
const RETRY_TIMER: usize = 1;
/// How long a copy waits for the legacy mutex before it is retried.
const MUTEX_TIMEOUT_MS: u32 = 1000;
const RETRY_MS: u32 = 200;

thread_local! {
    /// The registered message and this thread's window, for the window
    /// procedure (one gateway window per thread).
    static SYNCH: Cell<(u32, usize)> = const { Cell::new((0, 0)) };
    /// A `LEGACY_CHANGED` is in the queue: the window procedure posts no
    /// second one (the copy reads the latest text).
    static LEGACY_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// What other threads tell the gateway's thread besides its messages.
#[derive(Default)]
struct Flags {
    /// A `REGION_CHANGED` is in the queue: the watcher posts no second one.
    region_pending: AtomicBool,
    /// Stop after the copy in progress.
    stop: AtomicBool,
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn os_error(what: impl Into<String>) -> Error {
    // SAFETY: reads the calling thread's last-error value; no arguments.
    let code = unsafe { GetLastError() };
    Error::Os {
        what: what.into(),
        code,
    }
}

/// A window handle that may cross threads (it is only posted to).
#[derive(Clone, Copy)]
struct Window(usize);

impl Window {
    fn post(self, msg: u32) -> bool {
        // SAFETY: PostMessageW takes any window handle value; a destroyed
        // window makes it fail, which is reported, not undefined.
        unsafe { PostMessageW(self.0 as HWND, msg, 0, 0) != 0 }
    }
}

#[derive(Clone)]
pub(crate) struct Stopper {
    window: Window,
    flags: Arc<Flags>,
}

impl Stopper {
    pub(crate) fn stop(&self) {
        self.flags.stop.store(true, SeqCst);
        // Wakes the thread if it waits for a message; a thread at work
        // sees the flag after its copy.
        self.window.post(STOP);
    }
}

pub(crate) struct Running {
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub(crate) fn start(
        options: Options,
        log: Box<dyn FnMut(Event) + Send>,
    ) -> Result<Running, Error> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flags = Arc::new(Flags::default());
        let thread_flags = Arc::clone(&flags);
        let thread = std::thread::Builder::new()
            .name(format!("filemap-legacy {}", options.region))
            .spawn(move || match State::open(options, log, thread_flags) {
                Ok(mut state) => {
                    let _ = ready_tx.send(Ok(Window(state.hwnd as usize)));
                    state.run();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::Os {
                what: format!("spawning the gateway thread ({e})"),
                code: e.raw_os_error().unwrap_or(0) as u32,
            })?;
        match ready_rx.recv() {
            Ok(Ok(window)) => Ok(Running {
                stopper: Stopper { window, flags },
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Os {
                    what: "the gateway thread ended while starting".into(),
                    code: 0,
                })
            }
        }
    }

    pub(crate) fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    pub(crate) fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopper.stop();
            let _ = thread.join();
        }
    }
}

/// The legacy map: section, view, mutex.
struct LegacyMap {
    section: HANDLE,
    view: *mut u8,
    mutex: HANDLE,
    /// Bytes of the view the gateway reads and writes.
    size: usize,
    created: bool,
}

impl LegacyMap {
    fn open(name: &str, size: Option<usize>) -> Result<LegacyMap, Error> {
        let create = size.unwrap_or(LEGACY_DEFAULT_SIZE);
        let wname = wide(name);
        // SAFETY: a pagefile-backed section (INVALID_HANDLE_VALUE), default
        // security, a NUL-terminated name that outlives the call.
        let section = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                ptr::null(),
                PAGE_READWRITE,
                0,
                create as u32,
                wname.as_ptr(),
            )
        };
        if section.is_null() {
            return Err(os_error(format!("CreateFileMapping({name:?})")));
        }
        // SAFETY: reads the thread's last error right after the call above.
        let created = unsafe { GetLastError() } != ERROR_ALREADY_EXISTS;
        // SAFETY: maps the whole section we hold a handle to.
        let view: MEMORY_MAPPED_VIEW_ADDRESS =
            unsafe { MapViewOfFile(section, FILE_MAP_ALL_ACCESS, 0, 0, 0) };
        if view.Value.is_null() {
            let e = os_error(format!("MapViewOfFile({name:?})"));
            // SAFETY: the handle is ours and closed once.
            unsafe { CloseHandle(section) };
            return Err(e);
        }
        let view = view.Value as *mut u8;
        // The view's size: the section's size rounded up to whole pages.
        // SAFETY: a zeroed MEMORY_BASIC_INFORMATION is a valid out-buffer.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: queries our own mapped view into `info`, of the size given.
        let got = unsafe {
            VirtualQuery(
                view as *const c_void,
                &mut info,
                std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        // A section TFileMap made is committed whole. One made with
        // SEC_RESERVE by someone else has pages that fault when touched:
        // only the committed pages at its start are used, and none is
        // refused.
        let found = if got == 0 || info.State != MEM_COMMIT {
            0
        } else {
            info.RegionSize
        };
        let size = if created {
            create.min(found)
        } else {
            size.map_or(found, |s| s.min(found))
        };
        if size < LEGACY_MIN_SIZE {
            // SAFETY: the view and the handle are ours, not used after.
            unsafe { release(view, section) };
            return Err(Error::NotALegacyMap {
                map: name.to_owned(),
                committed: size,
            });
        }
        let mutex_name = wide(&format!("{name}.Mtx"));
        // SAFETY: opens or creates the named mutex, not owned initially.
        let mutex = unsafe { CreateMutexW(ptr::null(), 0, mutex_name.as_ptr()) };
        if mutex.is_null() {
            let e = os_error(format!("CreateMutex({name:?}.Mtx)"));
            // SAFETY: the view and the handle are ours, not used after.
            unsafe { release(view, section) };
            return Err(e);
        }
        Ok(LegacyMap {
            section,
            view,
            mutex,
            size,
            created,
        })
    }

    /// Take the mutex; false after the timeout. An abandoned mutex (its
    /// owner died) is ours now, and the text it left is read as any.
    ///
    /// Messages other threads *send* to the gateway's window are handled
    /// while it waits: a legacy writer that broadcasts with `SendMessage`
    /// while it still holds the mutex waits for every window, this one
    /// included, and would otherwise stay blocked until the wait timed out.
    /// (The window procedure only posts a note, so no copy runs inside.)
    fn lock(&self) -> bool {
        let start = std::time::Instant::now();
        let limit = std::time::Duration::from_millis(MUTEX_TIMEOUT_MS.into());
        loop {
            let left = limit.saturating_sub(start.elapsed());
            let left = u32::try_from(left.as_millis()).unwrap_or(MUTEX_TIMEOUT_MS);
            // SAFETY: waits on our own mutex handle (one handle, from a
            // live local) or for a message sent to this thread.
            let r = unsafe { MsgWaitForMultipleObjectsEx(1, &self.mutex, left, QS_SENDMESSAGE, 0) };
            match r {
                WAIT_OBJECT_0 | WAIT_ABANDONED => return true,
                r if r == WAIT_OBJECT_0 + 1 => {
                    // SAFETY: a zeroed MSG is a valid out-buffer.
                    let mut msg: MSG = unsafe { std::mem::zeroed() };
                    // SAFETY: dispatches the messages sent to this thread's
                    // windows into their procedures; removes nothing posted.
                    unsafe {
                        PeekMessageW(
                            &mut msg,
                            ptr::null_mut(),
                            0,
                            0,
                            PM_NOREMOVE | PM_QS_SENDMESSAGE,
                        )
                    };
                }
                // WAIT_TIMEOUT, or WAIT_FAILED (a handle gone bad).
                _ => return false,
            }
        }
    }

    fn unlock(&self) {
        // SAFETY: releases the mutex this thread took in `lock`.
        unsafe { ReleaseMutex(self.mutex) };
    }

    /// Copy the map's `size` bytes out, under the mutex; `None` after the
    /// mutex timeout.
    fn read(&self) -> Option<Vec<u8>> {
        if !self.lock() {
            return None;
        }
        let mut out = vec![0u8; self.size];
        // SAFETY: the view is at least `size` bytes (the section's pages);
        // a raw byte copy out of shared memory, whatever it holds.
        unsafe { ptr::copy_nonoverlapping(self.view, out.as_mut_ptr(), self.size) };
        self.unlock();
        Some(out)
    }

    /// Write `bytes` (terminator included, at most `size`) under the mutex.
    fn write(&self, bytes: &[u8]) -> bool {
        debug_assert!(bytes.len() <= self.size);
        if !self.lock() {
            return false;
        }
        // SAFETY: `bytes.len() <= size`, inside the view; a raw copy into
        // shared memory.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.view, bytes.len()) };
        self.unlock();
        true
    }
}

/// Unmap `view` and close `section`.
///
/// # Safety
/// `view` was mapped by this process from `section`, a handle it holds;
/// neither is used afterwards.
unsafe fn release(view: *mut u8, section: HANDLE) {
    // SAFETY: as this function's contract.
    unsafe {
        UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
            Value: view as *mut c_void,
        });
        CloseHandle(section);
    }
}

impl Drop for LegacyMap {
    fn drop(&mut self) {
        // SAFETY: the view and both handles are ours, released once here.
        unsafe {
            release(self.view, self.section);
            CloseHandle(self.mutex);
        }
    }
}

struct State {
    options: Options,
    log: Box<dyn FnMut(Event) + Send>,
    hwnd: HWND,
    message: u32,
    map: LegacyMap,
    region: FileMap,
    me: WriterId,
    _watcher: Option<Watcher>,
    /// The legacy bytes last read or written (up to the terminator).
    legacy_last: Vec<u8>,
    /// The region text last read or published.
    region_last: Vec<u8>,
    /// The encoding `auto` writes in: the one last read.
    auto_write: Encoding,
    /// A copy that met a busy mutex (or a region lock held past its
    /// timeout), retried on the timer.
    retry_legacy: bool,
    retry_region: bool,
    timer: bool,
    /// A publish to the region failed and is being retried: its failure
    /// was logged once, and is not again until a publish succeeds.
    publish_failing: bool,
    /// A read of the legacy map has succeeded: until then the region's
    /// text is not written to the map, which may hold text that wins.
    settled: bool,
    /// The code page of ANSI text, resolved (`CP_ACP` and friends become
    /// the number they stand for).
    codepage: u32,
    flags: Arc<Flags>,
}

unsafe extern "system" fn window_proc(
    hwnd: HWND,
    msg: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> LRESULT {
    let (synch, own) = SYNCH.with(Cell::get);
    if msg == synch && synch != 0 {
        if wparam != own && !LEGACY_PENDING.with(Cell::get) {
            // Another window wrote: copy after this SendMessage returns.
            // SAFETY: posting to our own live window.
            let posted = unsafe { PostMessageW(hwnd, LEGACY_CHANGED, 0, 0) } != 0;
            LEGACY_PENDING.with(|p| p.set(posted));
        }
        return 0;
    }
    // SAFETY: the default processing for every other message.
    unsafe { DefWindowProcW(hwnd, msg, wparam, lparam) }
}

impl State {
    fn open(
        options: Options,
        log: Box<dyn FnMut(Event) + Send>,
        flags: Arc<Flags>,
    ) -> Result<State, Error> {
        let codepage = resolve_codepage(options.codepage)?;
        let map_name = options.namespace.apply(&options.map_name);
        let map = LegacyMap::open(&map_name, options.size)?;
        // Room for the map's text in UTF-8, if the gateway creates the
        // region: up to 3 bytes per 2-byte UTF-16 unit, and up to 3 per
        // ANSI byte (cp1252's euro sign, Thai; Cyrillic takes 2).
        let utf8_max = match options.encoding {
            Encoding::Utf16 => map.size / 2 * 3,
            _ => map.size.saturating_mul(3),
        };
        let capacity = utf8_max
            .saturating_add(64)
            .clamp(filemap::DEFAULT_CAPACITY, filemap::MAX_CAPACITY);
        // A region lock held by another process is waited for as the legacy
        // mutex is, 1 s at a time: the retry timer does the rest, so the
        // gateway's thread keeps answering its window between the waits.
        let region = FileMap::builder(&options.region)
            .capacity(capacity)
            .lock_timeout(std::time::Duration::from_millis(MUTEX_TIMEOUT_MS.into()))
            .open()?;
        let message_name = wide(&format!("{}{}", options.map_name, options.suffix));
        // SAFETY: a NUL-terminated name that outlives the call.
        let message = unsafe { RegisterWindowMessageW(message_name.as_ptr()) };
        if message == 0 {
            return Err(os_error("RegisterWindowMessage"));
        }
        // SAFETY: the module handle of this executable.
        let instance = unsafe { GetModuleHandleW(ptr::null()) };
        let class = wide("filemap-legacy-gateway");
        let wc = WNDCLASSEXW {
            cbSize: std::mem::size_of::<WNDCLASSEXW>() as u32,
            lpfnWndProc: Some(window_proc),
            hInstance: instance,
            lpszClassName: class.as_ptr(),
            // SAFETY: the rest of WNDCLASSEXW is valid zeroed (no icon,
            // cursor, brush, menu or extra bytes).
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: a filled class description; registering it twice (a
        // second gateway in this process) fails harmlessly, and the
        // window creation below says whether the class exists.
        unsafe { RegisterClassExW(&wc) };
        let title = wide(&format!("filemap legacy {}", options.map_name));
        // SAFETY: a top-level (no parent), never-shown window of the class
        // above: message-only windows get no broadcasts.
        let hwnd = unsafe {
            CreateWindowExW(
                0,
                class.as_ptr(),
                title.as_ptr(),
                WS_OVERLAPPED,
                0,
                0,
                0,
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                instance,
                ptr::null(),
            )
        };
        if hwnd.is_null() {
            return Err(os_error(
                "CreateWindowEx (headless Wine needs HKCU\\Software\\Wine\\Drivers Graphics=null)",
            ));
        }
        SYNCH.with(|s| s.set((message, hwnd as usize)));
        let me = region.writer_id();
        let window = Window(hwnd as usize);
        // Changes by other handles: the watcher's thread only posts, one
        // message at a time (the copy reads the latest content).
        let pending = Arc::clone(&flags);
        let watcher = region.watch(move |_| {
            if !pending.region_pending.swap(true, SeqCst) && !window.post(REGION_CHANGED) {
                pending.region_pending.store(false, SeqCst);
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                // SAFETY: our own window, destroyed once on this thread.
                unsafe { DestroyWindow(hwnd) };
                return Err(e.into());
            }
        };
        let mut state = State {
            auto_write: match options.encoding {
                Encoding::Ansi => Encoding::Ansi,
                _ => Encoding::Utf16,
            },
            options,
            log,
            hwnd,
            message,
            map,
            region,
            me,
            _watcher: watcher,
            legacy_last: Vec::new(),
            region_last: Vec::new(),
            retry_legacy: false,
            retry_region: false,
            timer: false,
            publish_failing: false,
            settled: false,
            codepage,
            flags,
        };
        let created_map = state.map.created;
        (state.log)(Event::Ready {
            map: map_name,
            created_map,
            size: state.map.size,
            capacity: state.region.capacity(),
        });
        // The first copy: a legacy map with text wins, else the region's
        // text goes to the map (`legacy_changed` does both, once the map
        // could be read).
        state.legacy_changed();
        Ok(state)
    }

    fn run(&mut self) {
        // SAFETY: a zeroed MSG is a valid out-buffer.
        let mut msg: MSG = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: pumps this thread's messages into `msg`.
            let r = unsafe { GetMessageW(&mut msg, ptr::null_mut(), 0, 0) };
            if r <= 0 {
                break;
            }
            if self.flags.stop.load(SeqCst) {
                break;
            }
            if msg.hwnd == self.hwnd {
                match msg.message {
                    STOP => break,
                    LEGACY_CHANGED => {
                        // Cleared first: a change from now on posts again.
                        LEGACY_PENDING.with(|p| p.set(false));
                        self.legacy_changed();
                        continue;
                    }
                    REGION_CHANGED => {
                        self.flags.region_pending.store(false, SeqCst);
                        self.region_changed();
                        continue;
                    }
                    WM_TIMER if msg.wParam == RETRY_TIMER => {
                        self.retry();
                        continue;
                    }
                    _ => {}
                }
            }
            // SAFETY: standard dispatch of the message just received.
            unsafe {
                TranslateMessage(&msg);
                DispatchMessageW(&msg);
            }
        }
        LEGACY_PENDING.with(|p| p.set(false));
        SYNCH.with(|s| s.set((0, 0)));
        // SAFETY: our own window, destroyed once on the thread that made it.
        unsafe { DestroyWindow(self.hwnd) };
    }

    fn busy(&mut self, legacy: bool) {
        (self.log)(Event::MutexBusy {
            waited_ms: MUTEX_TIMEOUT_MS,
        });
        self.retry_later(legacy);
    }

    /// Copy from the legacy map (`legacy`) or from the region again when
    /// the retry timer fires.
    fn retry_later(&mut self, legacy: bool) {
        if legacy {
            self.retry_legacy = true;
        } else {
            self.retry_region = true;
        }
        if !self.timer {
            // SAFETY: a timer on our own window; WM_TIMER comes to `run`.
            unsafe { SetTimer(self.hwnd, RETRY_TIMER, RETRY_MS, None) };
            self.timer = true;
        }
    }

    fn retry(&mut self) {
        // SAFETY: ends the timer set in `busy`.
        unsafe { KillTimer(self.hwnd, RETRY_TIMER) };
        self.timer = false;
        if std::mem::take(&mut self.retry_legacy) {
            self.legacy_changed();
        }
        if std::mem::take(&mut self.retry_region) {
            self.region_changed();
        }
    }

    /// The legacy map changed (or may have): copy it to the region. The
    /// first read that succeeds settles the start: a map without text then
    /// gets the region's.
    fn legacy_changed(&mut self) {
        let Some(bytes) = self.map.read() else {
            self.busy(true);
            return;
        };
        let first = !std::mem::replace(&mut self.settled, true);
        let held_text = self.copy_legacy(&bytes);
        if first && !held_text {
            self.region_changed();
        }
    }

    /// Copy the legacy map's `bytes` to the region; whether the map held
    /// any text.
    fn copy_legacy(&mut self, bytes: &[u8]) -> bool {
        let encoding = match self.options.encoding {
            Encoding::Auto => detect(bytes),
            e => e,
        };
        let (raw, text) = match encoding {
            Encoding::Utf16 => {
                let units = utf16_units(bytes);
                let raw = bytes[..units.len() * 2].to_vec();
                (raw, utf16_to_string(&units))
            }
            _ => {
                let raw = ansi_text(bytes).to_vec();
                let text = match self.decode_ansi(&raw) {
                    Ok(t) => t,
                    Err(e) => {
                        (self.log)(Event::Failed(e));
                        return !raw.is_empty();
                    }
                };
                (raw, text)
            }
        };
        let held_text = !raw.is_empty();
        if held_text && self.options.encoding == Encoding::Auto {
            self.auto_write = encoding;
        }
        if raw == self.legacy_last {
            return held_text;
        }
        let text = legacy_to_region(&text);
        if text.as_bytes() == self.region_last.as_slice() {
            self.legacy_last = raw;
            return held_text;
        }
        // A region that may grow takes text up to its maximum.
        let available = self.region.max_capacity();
        if text.len() > available {
            (self.log)(Event::Refused {
                to: Side::Region,
                needed: text.len(),
                available,
            });
            self.legacy_last = raw;
            return held_text;
        }
        match self.region.write(text.as_bytes()) {
            Ok(_) => {
                self.publish_failing = false;
                (self.log)(Event::Copied {
                    to: Side::Region,
                    bytes: text.len(),
                });
                self.region_last = text.into_bytes();
                self.legacy_last = raw;
            }
            Err(e) if transient(&e) => {
                // Not taken as copied: the timer tries the same text again
                // (said once, not at every try).
                if !std::mem::replace(&mut self.publish_failing, true) {
                    (self.log)(Event::Failed(format!(
                        "publishing to the region: {e}; retrying"
                    )));
                }
                self.retry_later(true);
            }
            Err(e) => {
                self.publish_failing = false;
                (self.log)(Event::Failed(format!("publishing to the region: {e}")));
                self.legacy_last = raw;
            }
        }
        held_text
    }

    /// The region changed (or may have): copy it to the legacy map.
    fn region_changed(&mut self) {
        if !self.settled {
            // The map may hold text that wins: the first read of it that
            // succeeds copies the region's text if it does not.
            return;
        }
        let mut content = Vec::new();
        let stamp = match self.region.read_into(&mut content) {
            Ok(s) => s,
            Err(e) => {
                (self.log)(Event::Failed(format!("reading the region: {e}")));
                return;
            }
        };
        if stamp.writer == self.me || content == self.region_last {
            return;
        }
        let Ok(text) = std::str::from_utf8(&content) else {
            (self.log)(Event::NotText {
                bytes: content.len(),
            });
            return;
        };
        if let Some(at) = text.find('\0') {
            // The map's text ends at its first NUL: legacy programs would
            // read it cut short there.
            (self.log)(Event::HasNul { at });
            self.region_last = content;
            return;
        }
        let legacy = region_to_legacy(text);
        let mut bytes = match self.auto_write {
            Encoding::Utf16 => utf16_bytes(&legacy),
            _ => match self.encode_ansi(&legacy) {
                Ok(mut b) => {
                    b.push(0);
                    b
                }
                Err(e) => {
                    (self.log)(Event::Failed(e));
                    return;
                }
            },
        };
        if bytes.len() > self.map.size {
            (self.log)(Event::Refused {
                to: Side::Legacy,
                needed: bytes.len(),
                available: self.map.size,
            });
            self.region_last = content;
            return;
        }
        if !self.map.write(&bytes) {
            self.busy(false);
            return;
        }
        self.region_last = content;
        let written = bytes.len();
        let terminator = if self.auto_write == Encoding::Utf16 {
            2
        } else {
            1
        };
        bytes.truncate(written - terminator);
        self.legacy_last = bytes;
        // Posted: a hung window never blocks the gateway. Our own window
        // gets it too and skips it by wParam.
        // SAFETY: broadcasting a registered message with our window handle.
        let posted = unsafe { PostMessageW(HWND_BROADCAST, self.message, self.hwnd as WPARAM, 0) };
        if posted == 0 {
            let e = os_error("PostMessage(HWND_BROADCAST)");
            (self.log)(Event::Failed(e.to_string()));
        }
        (self.log)(Event::Copied {
            to: Side::Legacy,
            bytes: written,
        });
    }

    fn decode_ansi(&self, raw: &[u8]) -> Result<String, String> {
        if raw.is_empty() {
            return Ok(String::new());
        }
        let cp = self.codepage;
        let len = i32::try_from(raw.len()).map_err(|_| "legacy text over 2 GiB".to_owned())?;
        // SAFETY: measures the conversion of `raw` (len bytes); no output.
        let n = unsafe { MultiByteToWideChar(cp, 0, raw.as_ptr(), len, ptr::null_mut(), 0) };
        if n <= 0 {
            return Err(os_error(format!("MultiByteToWideChar(code page {cp})")).to_string());
        }
        let mut wide = vec![0u16; n as usize];
        // SAFETY: converts into `wide`, which holds the n units measured.
        let n = unsafe { MultiByteToWideChar(cp, 0, raw.as_ptr(), len, wide.as_mut_ptr(), n) };
        if n <= 0 {
            // Never taken for an empty text, which would erase the region's.
            return Err(os_error(format!("MultiByteToWideChar(code page {cp})")).to_string());
        }
        wide.truncate(n as usize);
        Ok(utf16_to_string(&wide))
    }

    fn encode_ansi(&mut self, text: &str) -> Result<Vec<u8>, String> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let cp = self.codepage;
        let wide: Vec<u16> = text.encode_utf16().collect();
        let len = i32::try_from(wide.len()).map_err(|_| "text over 2 GiB".to_owned())?;
        // UTF-8 and UTF-7 take no default-character arguments.
        let utf = cp == CP_UTF8 || cp == 65000;
        let mut used_default = 0;
        let used_ptr = if utf {
            ptr::null_mut()
        } else {
            &mut used_default as *mut _
        };
        // SAFETY: measures the conversion of `wide`; no output.
        let n = unsafe {
            WideCharToMultiByte(
                cp,
                0,
                wide.as_ptr(),
                len,
                ptr::null_mut(),
                0,
                ptr::null(),
                used_ptr,
            )
        };
        if n <= 0 {
            return Err(os_error(format!("WideCharToMultiByte(code page {cp})")).to_string());
        }
        let mut out = vec![0u8; n as usize];
        // SAFETY: converts into `out`, which holds the n bytes measured.
        let n = unsafe {
            WideCharToMultiByte(
                cp,
                0,
                wide.as_ptr(),
                len,
                out.as_mut_ptr(),
                n,
                ptr::null(),
                used_ptr,
            )
        };
        if n <= 0 {
            // Never taken for an empty text, which would erase the map's.
            return Err(os_error(format!("WideCharToMultiByte(code page {cp})")).to_string());
        }
        out.truncate(n as usize);
        if used_default != 0 {
            (self.log)(Event::Lossy { codepage: cp });
        }
        Ok(out)
    }
}

/// Whether a failed publish may succeed if tried again (a region lock held
/// past its timeout, a wait interrupted), rather than fail the same way.
fn transient(e: &filemap::Error) -> bool {
    matches!(
        e.kind(),
        filemap::ErrorKind::Timeout | filemap::ErrorKind::Interrupted
    )
}

/// The code page `cp` stands for: `CP_ACP` (0), `CP_OEMCP` (1),
/// `CP_MACCP` (2) and `CP_THREAD_ACP` (3) become the number of the code
/// page they name, so that UTF-8 set as the system's ANSI code page is
/// treated as UTF-8. A code page Windows does not have is refused.
fn resolve_codepage(cp: u32) -> Result<u32, Error> {
    // SAFETY: a zeroed CPINFOEXW is a valid out-buffer.
    let mut info: CPINFOEXW = unsafe { std::mem::zeroed() };
    // SAFETY: fills `info`, ours, for code page `cp`; no other pointers.
    if unsafe { GetCPInfoExW(cp, 0, &mut info) } == 0 {
        return Err(Error::InvalidOption(format!(
            "code page {cp} is not installed on this system"
        )));
    }
    Ok(info.CodePage)
}
