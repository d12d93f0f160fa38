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
