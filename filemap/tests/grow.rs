//! Regions that grow: a publish of more than the capacity, within the
//! maximum capacity, grows the region first, and every process already
//! attached keeps working without reopening. Readers in other processes
//! check every content whole across each growth; a full store refuses a
//! growth with `OutOfSpace` and keeps the content; a writer killed in the
//! middle of a growth leaves a region the next writer uses; a header
//! scribbled with absurd sizes gives typed errors, never a signal.

mod common;

#[cfg(any(target_os = "linux", windows))]
use common::await_condition;
use common::{say, stdin_line, unique, Child, Cleanup};
use filemap::{Error, FileMap, Wait};

const MAX: usize = 64 << 20;
/// The sequence number of the last content a test publishes.
const LAST: u64 = u64::MAX;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    filemap_testkit::child::enter();
    let role = std::env::var("FILEMAP_CHILD_ROLE").unwrap();
    let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
    let open = || FileMap::builder(&name).open_only().open().unwrap();
    match role.as_str() {
        // Read and check every content whole until the last one; report
        // how many were checked, the largest, and the capacity seen.
        "check-reader" => {
            let map = open();
            say(format!("ready capacity={}", map.capacity()));
            let mut checked = 0u64;
            let mut largest = 0;
            let mut buf = Vec::new();
            loop {
                let stamp = map.read_into(&mut buf).unwrap();
                let seq = check(&buf).unwrap_or_else(|e| panic!("reader: {e}"));
                checked += 1;
                largest = largest.max(buf.len());
                if seq == LAST {
                    break;
                }
                map.wait_change(stamp.generation, Wait::sleep()).unwrap();
            }
            say(format!(
                "checked={checked} largest={largest} capacity={} max={}",
                map.capacity(),
                map.max_capacity()
            ));
            common::wait_for_stdin_eof();
        }
        // Watch and check every content delivered until the last one.
        "check-watcher" => {
            let map = open();
            let (tx, rx) = std::sync::mpsc::channel();
            let _watcher = map
                .watch(move |snapshot| {
                    let snapshot = snapshot.unwrap();
                    let seq = check(&snapshot.content).unwrap_or_else(|e| panic!("watcher: {e}"));
                    let _ = tx.send((seq, snapshot.content.len()));
                })
                .unwrap();
            say("ready");
            let mut checked = 0u64;
            let mut largest = 0;
            loop {
                let (seq, len) = rx.recv().unwrap();
                checked += 1;
                largest = largest.max(len);
                if seq == LAST {
                    break;
                }
            }
            say(format!("checked={checked} largest={largest}"));
            common::wait_for_stdin_eof();
        }
        // Publish the pattern of the length on each stdin line (growing
        // the region as it must); report each publish.
        "grow-writer" => {
            let map = open();
            say("ready");
            while let Some(line) = stdin_line() {
                let (seq, len) = line.split_once(' ').unwrap();
                let (seq, len) = (seq.parse().unwrap(), len.parse().unwrap());
                let published = map.write(&pattern(seq, len)).unwrap();
                say(format!("wrote gen={}", published.generation));
            }
        }
        // Windows: a view of the region's section of its own, mapped now;
        // for each stdin line (the maximum), report how much of the view
        // is committed and check the published content through it.
        #[cfg(windows)]
        "section-view" => {
            let view = section::View::open(&name);
            say(format!("ready committed={}", view.committed(0, view.len)));
            while let Some(line) = stdin_line() {
                let max: usize = line.parse().unwrap();
                let generation = view.peek(GENERATION_AT as usize);
                let len = view.peek(len_at(generation & 1) as usize) as usize;
                let content = view.read(section::buffer(max, generation & 1), len);
                say(format!(
                    "committed={} seq={:?}",
                    view.committed(0, view.len),
                    check(&content)
                ));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// Content `seq` of `len` (at least 16) bytes: `seq` and `len`, then a
/// pattern of both and of each byte's position, so that a content torn
/// between two publishes, shifted, or holding zero pages never checks.
fn pattern(seq: u64, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(len as u64).to_le_bytes());
    let mut word = 16u64;
    while bytes.len() < len {
        let value = mix(seq, len, word);
        let take = (len - bytes.len()).min(8);
        bytes.extend_from_slice(&value.to_le_bytes()[..take]);
        word += 8;
    }
    bytes
}

fn mix(seq: u64, len: usize, at: u64) -> u64 {
    (seq ^ (len as u64).rotate_left(32) ^ at).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Check a content made by [`pattern`], every byte; its sequence number.
fn check(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < 16 {
        return Err(format!("content of {} bytes", bytes.len()));
    }
    let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    if len != bytes.len() as u64 {
        return Err(format!("seq {seq}: length {len} but {} bytes", bytes.len()));
    }
    let len = bytes.len();
    for (i, chunk) in bytes[16..].chunks(8).enumerate() {
        let at = 16 + 8 * i as u64;
        let want = mix(seq, len, at).to_le_bytes();
        if chunk != &want[..chunk.len()] {
            return Err(format!("seq {seq} of {len} bytes: torn at byte {at}"));
        }
    }
    Ok(seq)
}

/// The sizes a growing writer publishes, 4 KiB to 64 MiB: each power of
/// two and one odd size past it.
fn growing_sizes() -> Vec<usize> {
    let mut sizes = Vec::new();
    for shift in 12..26 {
        sizes.push(1 << shift);
        sizes.push((1 << shift) + (1 << (shift - 1)) + 3);
    }
    sizes.push(MAX);
    sizes
}

/// A region named `name` that starts at 4 KiB and may grow to `max`.
fn growing(name: &str, max: usize) -> FileMap {
    FileMap::builder(name)
        .capacity(4096)
        .max_capacity(max)
        .open()
        .unwrap()
}

#[test]
fn a_region_grows_from_4k_to_64m_while_readers_and_a_watcher_attached_from_the_start_check_every_content(
) {
    let name = unique("grow");
    let _cleanup = Cleanup(name.clone());
    let map = growing(&name, MAX);
    assert_eq!((map.capacity(), map.max_capacity()), (4096, MAX));
    map.write(&pattern(0, 100)).unwrap();
    let mut readers: Vec<Child> = (0..3)
        .map(|_| Child::spawn("check-reader", &name))
        .collect();
    for reader in &readers {
        assert_eq!(reader.line(), "ready capacity=4096");
    }
    let mut watcher = Child::spawn("check-watcher", &name);
    assert_eq!(watcher.line(), "ready");
    // The writer is another process too: growth is made by whoever
    // publishes, and seen by everyone.
    let mut writer = Child::spawn("grow-writer", &name);
    assert_eq!(writer.line(), "ready");

    let sizes = growing_sizes();
    for (seq, &len) in sizes.iter().enumerate() {
        let seq = if seq + 1 == sizes.len() {
            LAST
        } else {
            seq as u64 + 1
        };
        writer.send(&format!("{seq} {len}"));
        writer.expect("wrote gen=");
        // This handle, opened before any growth, sees the capacity grow
        // and reads the content whole.
        assert!(map.capacity() >= len, "{} < {len}", map.capacity());
        assert_eq!(check(&map.read().unwrap().content), Ok(seq));
    }
    let info = map.info();
    assert_eq!(
        (info.capacity, info.max_capacity, info.len),
        (MAX, MAX, MAX)
    );
    for reader in &mut readers {
        let report = reader.expect("checked=");
        assert!(
            report.ends_with(&format!("largest={MAX} capacity={MAX} max={MAX}")),
            "{report}"
        );
        reader.close_stdin();
        assert!(reader.wait().success());
    }
    let report = watcher.expect("checked=");
    assert!(report.ends_with(&format!("largest={MAX}")), "{report}");
    watcher.close_stdin();
    assert!(watcher.wait().success());
    writer.close_stdin();
    assert!(writer.wait().success());
    // Past the maximum: refused with both numbers, the content kept.
    match map.write(&vec![0; MAX + 1]) {
        Err(Error::TooLarge {
            len,
            capacity,
            max_capacity,
        }) => assert_eq!((len, capacity, max_capacity), (MAX + 1, MAX, MAX)),
        other => panic!("{other:?}"),
    }
    assert_eq!(check(&map.read().unwrap().content), Ok(LAST));
}

#[test]
fn a_region_made_without_a_maximum_does_not_grow() {
    let name = unique("nogrow");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(4096).open().unwrap();
    assert_eq!((map.capacity(), map.max_capacity()), (4096, 4096));
    map.write(b"kept").unwrap();
    match map.write(&[0; 4097]) {
        Err(Error::TooLarge {
            len: 4097,
            capacity: 4096,
            max_capacity: 4096,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(map.read().unwrap().content, b"kept");
    // Its file is exactly what a region of that capacity always was.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(map.info().path).unwrap();
        assert_eq!(meta.len(), 4096 + 2 * 4096);
        assert_eq!(meta.blocks() * 512, 4096 + 2 * 4096, "all of it backed");
    }
}

#[test]
fn maximum_capacities_outside_the_range_are_refused() {
    let name = unique("badmax");
    let _cleanup = Cleanup(name.clone());
    for (capacity, max) in [(4096, 4095), (4096, 0), (64, filemap::MAX_CAPACITY + 1)] {
        match FileMap::builder(&name)
            .capacity(capacity)
            .max_capacity(max)
            .open()
        {
            Err(e @ Error::InvalidMaxCapacity { .. }) => {
                assert_eq!(e.kind(), filemap::ErrorKind::InvalidCapacity);
                let Error::InvalidMaxCapacity {
                    requested,
                    capacity: least,
                    max: most,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!(
                    (requested, least, most),
                    (max as u64, capacity, filemap::MAX_CAPACITY)
                );
            }
            other => panic!("{capacity}..{max}: {other:?}"),
        }
    }
    assert!(!common::region_file_exists(&name));
}

#[test]
fn an_attacher_keeps_the_regions_maximum_and_a_loan_grows_the_region() {
    use std::io::Write;
    let name = unique("loangrow");
    let _cleanup = Cleanup(name.clone());
    let first = FileMap::builder(&name)
        .capacity(64)
        .max_capacity(1 << 20)
        .open()
        .unwrap();
    // Asking for other sizes changes nothing: the region's own hold.
    let second = FileMap::builder(&name)
        .capacity(4096)
        .max_capacity(4096)
        .open()
        .unwrap();
    assert_eq!((second.capacity(), second.max_capacity()), (64, 1 << 20));
    let content = pattern(7, 300_000);
    let mut loan = second.loan().unwrap();
    for piece in content.chunks(1000) {
        loan.write_all(piece).unwrap();
    }
    assert!(loan.capacity() >= 300_000);
    loan.commit().unwrap();
    assert_eq!(check(&first.read().unwrap().content), Ok(7));
    assert!(first.capacity() >= 300_000 && first.capacity() <= 1 << 20);
    // A loan past the maximum publishes nothing.
    let mut loan = first.loan().unwrap();
    let refused = loan.write_all(&vec![0; (1 << 20) + 1]);
    assert!(refused.is_err());
    assert!(matches!(loan.commit(), Err(Error::TooLarge { .. })));
    assert_eq!(check(&second.read().unwrap().content), Ok(7));
}

#[test]
fn a_waiter_attached_before_a_growth_wakes_and_reads_the_grown_content() {
    let name = unique("waitgrow");
    let _cleanup = Cleanup(name.clone());
    let map = growing(&name, 8 << 20);
    let seen = map.generation();
    let waiter = std::thread::spawn({
        let name = name.clone();
        move || {
            let map = FileMap::builder(&name).open_only().open().unwrap();
            let generation = map.wait_change(seen, Wait::sleep()).unwrap();
            (generation, check(&map.read().unwrap().content))
        }
    });
    let mut writer = Child::spawn("grow-writer", &name);
    assert_eq!(writer.line(), "ready");
    writer.send(&format!("5 {}", 5 << 20));
    writer.expect("wrote gen=");
    assert_eq!(waiter.join().unwrap(), (seen + 1, Ok(5)));
    writer.close_stdin();
    assert!(writer.wait().success());
}

/// The bytes of region `name`'s store that have storage: the blocks of
/// its file (Linux: `st_blocks`).
#[cfg(target_os = "linux")]
fn backed_bytes(name: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(filemap::admin::shm_path(name))
        .unwrap()
        .blocks()
        * 512
}

/// The bytes of region `name`'s store that have storage: the committed
/// pages of its section (Windows).
#[cfg(windows)]
fn backed_bytes(name: &str) -> u64 {
    let view = section::View::open(name);
    view.committed(0, view.len) as u64
}

#[cfg(any(target_os = "linux", windows))]
#[test]
fn a_region_that_grew_costs_what_it_uses_not_its_maximum() {
    let name = unique("cost");
    let _cleanup = Cleanup(name.clone());
    let map = growing(&name, 256 << 20);
    #[cfg(target_os = "linux")]
    assert_eq!(
        std::fs::metadata(map.info().path).unwrap().len(),
        4096 + 2 * (256 << 20),
        "sized for the maximum"
    );
    #[cfg(windows)]
    assert_eq!(
        section::View::open(&name).len,
        4096 + 2 * (256 << 20),
        "sized for the maximum"
    );
    assert_eq!(
        backed_bytes(&name),
        4096 + 2 * 4096,
        "backed for the capacity"
    );
    map.write(&pattern(1, 1 << 20)).unwrap();
    assert_eq!(map.capacity(), 1 << 20);
    assert_eq!(backed_bytes(&name), 4096 + 2 * (1 << 20));
}

/// A writer killed between backing the new bytes and raising the
/// capacity (a test hook stalls it exactly there) leaves the region with
/// its last content and its old capacity; the next writer takes the lock
/// over and grows it again.
#[cfg(any(target_os = "linux", windows))]
#[test]
fn a_writer_killed_mid_growth_leaves_the_content_and_the_next_writer_grows_the_region() {
    let name = unique("growkill");
    let _cleanup = Cleanup(name.clone());
    let map = growing(&name, 16 << 20);
    map.write(&pattern(1, 1000)).unwrap();
    let before = backed_bytes(&name);
    let mut writer = Child::spawn_with(
        "grow-writer",
        &name,
        &[("FILEMAP_TEST_STALL", "growth".to_owned())],
    );
    assert_eq!(writer.line(), "ready");
    writer.send(&format!("2 {}", 8 << 20));
    await_condition("the writer to back the growth", || {
        backed_bytes(&name) >= before + 2 * ((8 << 20) - 4096)
    });
    writer.kill9();
    assert_eq!(check(&map.read().unwrap().content), Ok(1));
    assert_eq!(map.capacity(), 4096, "not raised by the dead writer");
    let published = map.write(&pattern(3, 8 << 20)).unwrap();
    assert!(published.owner_died, "the dead grower held the lock");
    assert_eq!(check(&map.read().unwrap().content), Ok(3));
    assert_eq!(map.capacity(), 8 << 20);
    let again = FileMap::builder(&name).open_only().open().unwrap();
    assert_eq!(check(&again.read().unwrap().content), Ok(3));
}

/// Patch the header of region file `path` at `offset`.
#[cfg(unix)]
fn poke(path: &std::path::Path, offset: u64, value: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&value.to_le_bytes(), offset).unwrap();
}

/// Header offsets (see `layout.rs`).
const CAPACITY_AT: u64 = 16;
#[cfg(unix)]
const MAX_CAPACITY_AT: u64 = 40;
const GENERATION_AT: u64 = 128;
/// `len` of buffer `i`'s line.
const fn len_at(i: u64) -> u64 {
    256 + 128 * i + 8
}

#[cfg(unix)]
#[test]
fn a_header_naming_absurd_sizes_gives_typed_errors_and_never_reaches_past_the_mapping() {
    let name = unique("absurd");
    let _cleanup = Cleanup(name.clone());
    let max = 1 << 20;
    let map = growing(&name, max);
    map.write(&pattern(1, 3000)).unwrap();
    let path = map.info().path;
    let reopen = || FileMap::builder(&name).open_only().open();
    let active = len_at({
        let mut word = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(&path).unwrap(),
            &mut word,
            GENERATION_AT,
        )
        .unwrap();
        u64::from_le_bytes(word) & 1
    });

    // An absurd maximum: refused to openers; a handle already open keeps
    // the one it validated and maps no more.
    for value in [u64::MAX, (filemap::MAX_CAPACITY as u64) + 1, 0, 4095] {
        poke(&path, MAX_CAPACITY_AT, value);
        match reopen() {
            Err(Error::Corrupted {
                field: "max_capacity" | "capacity",
                ..
            }) => {}
            other => panic!("max {value}: {other:?}"),
        }
        assert_eq!(map.max_capacity(), max);
        assert_eq!(check(&map.read().unwrap().content), Ok(1));
    }
    // A maximum larger than the file: the file is too short for it.
    poke(&path, MAX_CAPACITY_AT, 1 << 29);
    assert!(
        matches!(reopen(), Err(Error::Truncated { .. })),
        "{:?}",
        reopen()
    );
    poke(&path, MAX_CAPACITY_AT, max as u64);

    // An absurd capacity: refused to openers, bounded by the maximum for
    // the handle already open.
    for value in [u64::MAX, max as u64 + 1, 0] {
        poke(&path, CAPACITY_AT, value);
        assert!(
            matches!(
                reopen(),
                Err(Error::Corrupted {
                    field: "capacity",
                    ..
                })
            ),
            "capacity {value}"
        );
        assert!(map.capacity() <= max);
        assert_eq!(map.info().capacity, map.capacity());
        assert_eq!(check(&map.read().unwrap().content), Ok(1));
    }
    poke(&path, CAPACITY_AT, 4096);

    // An absurd length: a typed error, never a read past the maximum.
    poke(&path, active, u64::MAX);
    assert!(matches!(
        map.read(),
        Err(Error::Corrupted { field: "len", .. })
    ));
    poke(&path, active, max as u64 + 1);
    assert!(matches!(
        map.read(),
        Err(Error::Corrupted { field: "len", .. })
    ));
    assert!(map.info().len <= max);
    // A length within the maximum but past what was backed reads the
    // (unbacked, zero) bytes: no signal, and a content that does not
    // check.
    poke(&path, active, max as u64);
    let read = map.read().unwrap();
    assert_eq!(read.content.len(), max);
    assert!(check(&read.content).is_err());
    // A writer after all that still publishes, growing as it must.
    poke(&path, active, 3000);
    map.write(&pattern(2, 500_000)).unwrap();
    assert_eq!(check(&reopen().unwrap().read().unwrap().content), Ok(2));
}

/// Mount a tmpfs of `size` at a new directory; unmounted and removed by
/// the returned guard.
#[cfg(target_os = "linux")]
struct SmallFs(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        assert!(
            rustix_is_root(),
            "this test needs root to mount a small tmpfs"
        );
        let dir = std::env::temp_dir().join(unique("growfs"));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "mount -t tmpfs on {} failed", dir.display());
        SmallFs(dir)
    }

    /// Where the tests put their region on this filesystem.
    fn region_path(&self) -> std::path::PathBuf {
        self.0.join("region")
    }

    /// Region `name` at [`SmallFs::region_path`]: 4 KiB, growing to 4 MiB.
    fn region(&self, name: &str) -> filemap::Builder {
        FileMap::builder(name)
            .path(self.region_path())
            .capacity(4096)
            .max_capacity(4 << 20)
    }

    /// Fill the filesystem to its last block, with a file of zeros.
    fn fill(&self) {
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(target_os = "linux")]
impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[cfg(target_os = "linux")]
fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn a_growth_on_a_full_filesystem_is_out_of_space_and_keeps_the_content() {
    let fs = SmallFs::mount("2m");
    let path = fs.region_path();
    let map = fs.region("growfull").open().unwrap();
    map.write(&pattern(1, 4000)).unwrap();
    let reader = FileMap::builder("growfull").path(&path).open().unwrap();
    let want = 1536 << 10;
    match map.write(&pattern(2, want)) {
        Err(Error::OutOfSpace { needed, .. }) => {
            assert_eq!(needed, 4096 + 2 * want as u64)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(map.capacity(), 4096, "nothing raised");
    assert_eq!(check(&reader.read().unwrap().content), Ok(1));
    assert_eq!(check(&map.read().unwrap().content), Ok(1));
    // A loan that outgrows the space is refused the same way.
    {
        use std::io::Write;
        let mut loan = map.loan().unwrap();
        assert!(loan.write_all(&pattern(3, want)).is_err());
        assert!(matches!(loan.commit(), Err(Error::OutOfSpace { .. })));
    }
    assert_eq!(check(&reader.read().unwrap().content), Ok(1));
    // A growth that fits still succeeds.
    map.write(&pattern(4, 512 << 10)).unwrap();
    assert_eq!(check(&reader.read().unwrap().content), Ok(4));
    assert_eq!(reader.capacity(), 512 << 10);
    drop((map, reader));
}

/// A header scribbled to name a length within the maximum but past what
/// was backed, on a full filesystem: the reader's page fault cannot be
/// served (`SIGBUS`), and the handle reports a typed error instead of
/// dying.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn a_scribbled_length_over_unbacked_pages_of_a_full_filesystem_is_an_error_not_a_signal() {
    let fs = SmallFs::mount("1m");
    let path = fs.region_path();
    let map = fs.region("growhole").open().unwrap();
    map.write(&pattern(1, 4000)).unwrap();
    fs.fill();
    let generation = map.generation();
    poke(&path, len_at(generation & 1), 4 << 20);
    match map.read() {
        Err(Error::Truncated { .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(map);
}

/// A peer scribbles the capacity below what was published (here 32, when
/// both buffers hold 4000 bytes), and the store is full: the growth that
/// fails for space must give back only bytes it backed past every
/// content, never punch a hole in a published one. Readers keep reading
/// the content whole.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn a_growth_refused_for_space_under_a_scribbled_capacity_keeps_the_published_content() {
    let fs = SmallFs::mount("1m");
    let path = fs.region_path();
    let map = fs.region("growpunch").open().unwrap();
    map.write(&pattern(1, 4000)).unwrap();
    map.write(&pattern(2, 4000)).unwrap();
    fs.fill();
    // 0 puts the header in the growth's first range: it must survive as
    // well (a fresh handle opens the region).
    for scribbled in [32, 0] {
        poke(&path, CAPACITY_AT, scribbled);
        match map.write(&pattern(3, 1 << 20)) {
            Err(Error::OutOfSpace { .. }) => {}
            other => panic!("capacity {scribbled}: {other:?}"),
        }
        assert_eq!(check(&map.read().unwrap().content), Ok(2), "{scribbled}");
    }
    poke(&path, CAPACITY_AT, 4096);
    let again = FileMap::builder("growpunch").path(&path).open().unwrap();
    assert_eq!(check(&again.read().unwrap().content), Ok(2));
    drop(again);
    // The previous content, in the other buffer, is whole too: publish
    // nothing, but look at it through the file.
    let mut previous = vec![0u8; 4000];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&path).unwrap(),
        &mut previous,
        4096 + ((map.generation() & 1) ^ 1) * (4 << 20),
    )
    .unwrap();
    assert_eq!(check(&previous), Ok(1));
    drop(map);
}

/// A view of a region's paging-file section of the test's own (Windows),
/// to see which of its pages are committed (`VirtualQuery`) and to
/// scribble its header as a hostile process would.
#[cfg(windows)]
mod section {
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::System::Memory::{
        MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery, FILE_MAP_READ,
        FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS, MEM_COMMIT, MEM_FREE,
    };

    pub const HEADER: usize = 4096;

    /// Offset of buffer `index` in a region of maximum `max`.
    pub fn buffer(max: usize, index: u64) -> usize {
        HEADER + index as usize * ((max + 63) & !63)
    }

    pub struct View {
        section: HANDLE,
        base: *mut u8,
        pub len: usize,
    }

    impl View {
        /// Map region `name`'s section (`Local\filemap.<name>`) whole.
        pub fn open(name: &str) -> View {
            let wide: Vec<u16> = format!("Local\\filemap.{name}")
                .encode_utf16()
                .chain(Some(0))
                .collect();
            let access = FILE_MAP_READ | FILE_MAP_WRITE;
            // SAFETY: `wide` is NUL-terminated UTF-16 and outlives the call.
            let section = unsafe { OpenFileMappingW(access, 0, wide.as_ptr()) };
            assert!(!section.is_null(), "{}", std::io::Error::last_os_error());
            // SAFETY: an open section handle; length 0 maps all of it, where
            // the system chooses.
            let base = unsafe { MapViewOfFile(section, access, 0, 0, 0) }
                .Value
                .cast::<u8>();
            assert!(!base.is_null(), "{}", std::io::Error::last_os_error());
            let mut view = View {
                section,
                base,
                len: 0,
            };
            view.len = view.runs().iter().map(|run| run.1).sum();
            view
        }

        /// The view's runs of pages: offset, length, whether committed.
        pub fn runs(&self) -> Vec<(usize, usize, bool)> {
            let mut runs = Vec::new();
            let mut at = 0;
            loop {
                // SAFETY: all zeros is a valid MEMORY_BASIC_INFORMATION.
                let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
                // SAFETY: `info` is writable and of the size passed;
                // VirtualQuery reads nothing at the address.
                let got = unsafe {
                    VirtualQuery(
                        self.base.wrapping_add(at).cast(),
                        &mut info,
                        std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
                    )
                };
                if got == 0
                    || info.AllocationBase != self.base.cast()
                    || info.State == MEM_FREE
                    || info.RegionSize == 0
                {
                    return runs;
                }
                runs.push((at, info.RegionSize, info.State == MEM_COMMIT));
                at += info.RegionSize;
            }
        }

        /// How many of the bytes `offset .. offset + len` lie on committed
        /// pages.
        pub fn committed(&self, offset: usize, len: usize) -> usize {
            self.runs()
                .into_iter()
                .filter(|run| run.2)
                .map(|(at, n, _)| (at + n).min(offset + len).saturating_sub(at.max(offset)))
                .sum()
        }

        /// The header's word at `offset`.
        pub fn peek(&self, offset: usize) -> u64 {
            assert!(offset % 8 == 0 && offset + 8 <= HEADER);
            // SAFETY: inside the header, whose page the region's creator
            // committed; aligned; a volatile read of a word others write.
            unsafe { std::ptr::read_volatile(self.base.add(offset).cast::<u64>()) }
        }

        /// Scribble the header's word at `offset`.
        pub fn poke(&self, offset: usize, value: u64) {
            assert!(offset % 8 == 0 && offset + 8 <= HEADER);
            // SAFETY: as for `peek`; the view is writable.
            unsafe { std::ptr::write_volatile(self.base.add(offset).cast::<u64>(), value) }
        }

        /// The bytes `offset .. offset + len`, which must lie on pages
        /// committed in this view (on Windows, touching a reserved page
        /// is an access violation).
        pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
            assert!(offset + len <= self.len);
            assert_eq!(
                self.committed(offset, len),
                len,
                "reserved pages at {offset}+{len}"
            );
            let mut bytes = vec![0; len];
            // SAFETY: the range is inside the view and committed (checked);
            // the test's writer is idle while it is read.
            unsafe {
                std::ptr::copy_nonoverlapping(self.base.add(offset), bytes.as_mut_ptr(), len)
            };
            bytes
        }
    }

    impl Drop for View {
        fn drop(&mut self) {
            // SAFETY: the base `MapViewOfFile` returned and the handle
            // `OpenFileMappingW` returned, each released once, here.
            unsafe {
                UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                    Value: self.base.cast(),
                });
                CloseHandle(self.section);
            }
        }
    }
}

/// Windows: the section of a region made with a larger maximum is laid
/// out for the maximum but commits (is charged for) only the header and
/// the capacity of each buffer; each growth commits its new range, and
/// the commit is the section's: a view mapped before the growth, in
/// another process, has the grown pages and reads the grown content
/// whole through them. A region that never grows is committed whole, as
/// it always was.
#[cfg(windows)]
#[test]
fn a_growing_regions_section_commits_its_capacity_not_its_maximum() {
    const PAGE: usize = 4096;
    let name = unique("commit");
    let _cleanup = Cleanup(name.clone());
    let map = growing(&name, MAX);
    let view = section::View::open(&name);
    assert_eq!(view.len, section::HEADER + 2 * MAX);
    assert_eq!(view.committed(0, view.len), section::HEADER + 2 * 4096);
    for index in 0..2 {
        let buffer = section::buffer(MAX, index);
        assert_eq!(view.committed(buffer, PAGE), PAGE);
        assert_eq!(view.committed(buffer + PAGE, MAX - PAGE), 0, "reserved");
    }
    map.write(&pattern(1, 3000)).unwrap();
    let mut other = Child::spawn("section-view", &name);
    assert_eq!(
        other.line(),
        format!("ready committed={}", section::HEADER + 2 * 4096)
    );

    let grown = 1 << 20;
    map.write(&pattern(2, grown)).unwrap();
    assert_eq!(map.capacity(), grown);
    let charged = section::HEADER + 2 * grown;
    assert_eq!(view.committed(0, view.len), charged);
    other.send(&MAX.to_string());
    assert_eq!(other.line(), format!("committed={charged} seq=Ok(2)"));
    // A reader attached after the growth reads it whole too.
    let later = FileMap::builder(&name).open_only().open().unwrap();
    assert_eq!(check(&later.read().unwrap().content), Ok(2));
    other.close_stdin();
    assert!(other.wait().success());

    // Never growing: one committed run, header and capacity, as before.
    let fixed = unique("commitfixed");
    let _cleanup_fixed = Cleanup(fixed.clone());
    let _map = FileMap::builder(&fixed).capacity(4096).open().unwrap();
    let runs = section::View::open(&fixed).runs();
    assert_eq!(runs, [(0, section::HEADER + 2 * 4096, true)]);
}

/// Windows: a header scribbled to name a length, or a capacity, past the
/// pages the region committed. Touching a reserved page is an access
/// violation on Windows (Wine lets it through, so these tests look at the
/// pages instead): a reader commits a length's pages before it loads
/// them, and reads zeros past what was written; a writer commits up to a
/// scribbled capacity before it stores into it.
#[cfg(windows)]
#[test]
fn a_header_scribbled_past_the_committed_pages_commits_them_before_any_touch() {
    let name = unique("reserved");
    let _cleanup = Cleanup(name.clone());
    let max = 1 << 20;
    let map = growing(&name, max);
    map.write(&pattern(1, 3000)).unwrap();
    let view = section::View::open(&name);
    let active = len_at(view.peek(GENERATION_AT as usize) & 1) as usize;
    let committed = |len| [0, 1].map(|index| view.committed(section::buffer(max, index), len));
    assert_eq!(committed(max), [4096, 4096]);

    // A length within the maximum, past the committed pages.
    let len = 600_000;
    view.poke(active, len as u64);
    let read = map.read().unwrap();
    assert_eq!(read.content.len(), len);
    assert_eq!(read.content[..3000], pattern(1, 3000)[..]);
    assert!(read.content[4096..].iter().all(|&b| b == 0));
    assert_eq!(committed(len), [len, len], "committed before the read");
    let again = FileMap::builder(&name).open_only().open().unwrap();
    assert_eq!(again.read().unwrap().content.len(), len);
    view.poke(active, 3000);

    // A capacity past the committed pages: a writer commits up to it
    // before it stores there. (Short of the maximum: Wine 8 does not
    // record a commit that reaches a section's last page in the section,
    // so other views, this one included, would not see it.)
    let capacity = 900_000;
    view.poke(CAPACITY_AT as usize, capacity as u64);
    assert_eq!(map.capacity(), capacity);
    assert_eq!(
        committed(capacity),
        [capacity, capacity],
        "committed before any store"
    );
    map.write(&pattern(2, 800_000)).unwrap();
    assert_eq!(check(&again.read().unwrap().content), Ok(2));
}

/// A file cut short (within its header's page, or just past the header)
/// under a growable region: the next publish that grows the region must
/// not extend the file again behind everyone's back and report success.
/// Backing the new bytes never changes the file's size; the publish is
/// `Truncated`, as any other access past the cut, and the file keeps the
/// size it was cut to.
#[cfg(target_os = "linux")]
#[test]
fn a_growth_after_the_file_was_cut_short_is_truncated_and_never_extends_the_file() {
    for cut in [100, 4096, 8192] {
        let name = unique("growcut");
        let _cleanup = Cleanup(name.clone());
        let max = 1 << 20;
        let map = growing(&name, max);
        map.write(&pattern(1, 3000)).unwrap();
        let path = map.info().path;
        let full = std::fs::metadata(&path).unwrap().len();
        common::cut_file(&path, cut);
        match map.write(&pattern(2, 500_000)) {
            Err(Error::Truncated { size, needed, .. }) => {
                assert_eq!((size, needed), (cut, full), "cut to {cut}")
            }
            other => panic!("a growth after a cut to {cut}: {other:?}"),
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            cut,
            "the growth extended the file cut to {cut}"
        );
        assert!(matches!(map.read(), Err(Error::Truncated { .. })));
        drop(map);
        filemap::admin::remove(&name).unwrap();
    }
}

/// A capacity scribbled past what was backed, on a full store: the
/// writer, trusting it, stores into pages the store cannot give, faults,
/// and its handle reports the loss (`Truncated`, as documented for a full
/// store). It held the region lock when it faulted: the lock must be
/// released in the region, not left naming a live thread for every other
/// writer to time out on while the region itself is intact.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn a_writer_that_faults_under_the_lock_releases_it_for_the_others() {
    use std::time::Duration;
    let fs = SmallFs::mount("1m");
    let path = fs.region_path();
    let open = || {
        fs.region("growstuck")
            .lock_timeout(Duration::from_secs(2))
            .open()
            .unwrap()
    };
    let map = open();
    let other = open();
    map.write(&pattern(1, 4000)).unwrap();
    fs.fill();
    poke(&path, CAPACITY_AT, 4 << 20);
    assert!(matches!(
        map.write(&pattern(2, 1 << 20)),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(map.read(), Err(Error::Truncated { .. })));
    // The content and the region are intact: another thread publishes (a
    // content small enough to need no new page) and reads.
    std::thread::scope(|s| {
        s.spawn(|| {
            let published = other.write(b"after the fault").unwrap();
            assert!(!published.owner_died);
            assert_eq!(other.read().unwrap().content, b"after the fault");
        });
    });
    // And this thread too, through a handle of its own.
    assert_eq!(open().read().unwrap().content, b"after the fault");
    open().write(b"again").unwrap();
    drop((map, other));
}
