//! The committed `include/filemap.h` is what cbindgen makes of the code
//! today: the CI check that the header cannot drift.
//!
//! `FILEMAP_BLESS=1 cargo test -p filemap-ffi --test header` rewrites it.

use std::path::Path;

#[test]
fn header_matches_the_code() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("reading cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on filemap-ffi");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("cbindgen wrote UTF-8");
    let path = crate_dir.join("include/filemap.h");
    if std::env::var_os("FILEMAP_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing include/filemap.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/filemap.h is out of date with filemap-ffi/src; run \
         FILEMAP_BLESS=1 cargo test -p filemap-ffi --test header and commit it.\n\
         --- generated ---\n{generated}"
    );
}

#[test]
fn every_function_is_documented() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/filemap.h"))
            .expect("reading include/filemap.h");
    let lines: Vec<&str> = header.lines().collect();
    let mut functions = 0;
    for (i, line) in lines.iter().enumerate() {
        // Declarations start at column 0 with a return type, then `fm_x(`.
        let is_decl = line.starts_with(|c: char| c.is_ascii_alphabetic())
            && !line.starts_with("typedef")
            && line.contains(" fm_")
            && line.contains('(');
        if !is_decl {
            continue;
        }
        functions += 1;
        let doc_end = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
        assert!(
            doc_end.is_some_and(|l| l.trim() == "*/"),
            "{line} has no doc comment in include/filemap.h"
        );
    }
    assert!(
        functions >= 20,
        "found only {functions} functions in the header"
    );
    assert!(
        header.contains("#ifdef __cplusplus\nextern \"C\" {"),
        "the header lacks its extern \"C\" guard for C++"
    );
}
