//! The line-based text view over a region (what `filemap memo` edits).

mod common;

use common::{unique, Cleanup};
use filemap::TextExt;
use filemap::{FileMap, TextView};

/// With auto-sync on, an edit whose write failed stays in the view when a
/// remote change arrives, until the view is read again.
#[test]
fn an_unwritten_local_edit_survives_a_remote_change() {
    let name = unique("textdirty");
    let _cleanup = Cleanup(name.clone());
    let mut view = TextView::new(FileMap::builder(&name).capacity(32).open().unwrap()).unwrap();
    let long = vec!["x".repeat(40)];
    assert!(matches!(
        view.set_lines(long.clone()),
        Err(filemap::Error::TooLarge { .. })
    ));
    assert!(view.is_dirty());
    let other = FileMap::open(&name).unwrap();
    other.write_str("remote").unwrap();
    assert_eq!(
        view.sync_remote().unwrap(),
        filemap::RemoteChange::Pending(other.writer_id())
    );
    assert_eq!(view.lines(), long, "the local edit is kept");
    view.read().unwrap();
    assert_eq!(view.lines(), ["remote"]);
}

/// Text that is not UTF-8 shows lossily, and the view says so until it
/// writes (which replaces the bad bytes) or reads UTF-8 again.
#[test]
fn a_text_that_is_not_utf8_is_shown_lossily_and_said_to_be() {
    let name = unique("textlossy");
    let _cleanup = Cleanup(name.clone());
    let other = FileMap::open(&name).unwrap();
    let bad: &[u8] = b"kept \xff bytes\nsecond";
    other.write(bad).unwrap();
    let mut view = TextView::new(FileMap::open(&name).unwrap()).unwrap();
    assert!(view.is_lossy());
    assert_eq!(view.lines(), ["kept \u{fffd} bytes", "second"]);
    // U+FFFD written as such is text, not a loss.
    other.write_str("a real \u{fffd}").unwrap();
    view.sync_remote().unwrap();
    assert!(!view.is_lossy());
    other.write(bad).unwrap();
    view.sync_remote().unwrap();
    assert!(view.is_lossy());
    view.set_auto_sync(false).unwrap();
    view.set_lines(vec!["edited".into()]).unwrap();
    assert!(view.is_lossy(), "the region still holds the bad bytes");
    assert_eq!(&other.read().unwrap().content[..], bad);
    view.write().unwrap();
    assert!(!view.is_lossy());
}
