//! One change's latency through the gateway, both ways, median of N:
//! `cargo run -p filemap-legacy --example latency --target x86_64-pc-windows-gnu -- [N]`
//! (under Wine: set CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=ci/wine/runner.sh).
//! The gateway runs on its own thread; the legacy side is this thread,
//! speaking the protocol with a hidden window of its own.

#[cfg(not(windows))]
fn main() {
    eprintln!("the legacy gateway runs on Windows only");
    std::process::exit(1);
}

#[cfg(windows)]
fn main() {
    use std::ptr;
    use std::time::{Duration, Instant};
    use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
    use windows_sys::Win32::System::Memory::*;
    use windows_sys::Win32::System::Threading::*;
    use windows_sys::Win32::UI::WindowsAndMessaging::*;

    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let name = format!("latency-{}", std::process::id());
    let wide = |s: &str| -> Vec<u16> { s.encode_utf16().chain(Some(0)).collect() };
    let gateway = filemap_legacy::Gateway::start(filemap_legacy::Options::new(&name), |_| {})
        .expect("gateway");
    let region = filemap::FileMap::builder(&name)
        .open_only()
        .open()
        .expect("region");
    let wname = wide(&name);
    // SAFETY: opens the gateway's pagefile section and maps it; the mutex
    // and message are the protocol's; a hidden top-level window for replies.
    let (view, mutex, msg, hwnd) = unsafe {
        let section = CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            ptr::null(),
            PAGE_READWRITE,
            0,
            4096,
            wname.as_ptr(),
        );
        let view = MapViewOfFile(section, FILE_MAP_ALL_ACCESS, 0, 0, 0).Value as *mut u8;
        let mutex = CreateMutexW(ptr::null(), 0, wide(&format!("{name}.Mtx")).as_ptr());
        let msg = RegisterWindowMessageW(wide(&format!("{name}Synch-Now")).as_ptr());
        let class = wide("STATIC");
        let hwnd = CreateWindowExW(
            0,
            class.as_ptr(),
            class.as_ptr(),
            WS_OVERLAPPED,
            0,
            0,
            0,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null(),
        );
        assert!(!view.is_null() && !hwnd.is_null(), "legacy side");
        (view, mutex, msg, hwnd)
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut to_region = Vec::new();
    for i in 0..n {
        let text = format!("legacy {i}\r\n\0");
        let seen = region.generation();
        let t0 = Instant::now();
        // SAFETY: the text fits the 4096-byte view; the protocol's write.
        unsafe {
            WaitForSingleObject(mutex, INFINITE);
            ptr::copy_nonoverlapping(text.as_ptr(), view, text.len());
            ReleaseMutex(mutex);
            SendMessageW(HWND_BROADCAST, msg, hwnd as usize, 0);
        }
        region
            .wait_change(seen, filemap::Wait::adaptive())
            .expect("change");
        to_region.push(t0.elapsed());
    }
    let mut to_legacy = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        region
            .write(format!("filemap {i}").as_bytes())
            .expect("write");
        // SAFETY: pumps this thread's messages until the gateway's broadcast.
        unsafe {
            let mut m: MSG = std::mem::zeroed();
            while GetMessageW(&mut m, ptr::null_mut(), 0, 0) > 0 {
                if m.message == msg && m.wParam != hwnd as usize {
                    break;
                }
                DispatchMessageW(&m);
            }
        }
        to_legacy.push(t0.elapsed());
    }
    println!("legacy -> filemap: median {:?} of {n}", median(to_region));
    println!("filemap -> legacy: median {:?} of {n}", median(to_legacy));
    gateway.stop();
}
