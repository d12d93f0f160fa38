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

/// The status constants `#define`d in the header, `(name, value)`.
fn header_statuses() -> Vec<(String, i32)> {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/filemap.h"))
            .expect("reading include/filemap.h");
    header
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("#define ")?.split_whitespace();
            let name = words.next()?;
            if name != "FM_OK" && !name.starts_with("FM_E_") {
                return None;
            }
            let value = words.next()?.parse().expect("a status is a number");
            Some((name.to_owned(), value))
        })
        .collect()
}

/// What `fm_status_name` calls a status.
fn status_name(status: i32) -> String {
    // SAFETY: fm_status_name returns a static C string, never NULL.
    unsafe { std::ffi::CStr::from_ptr(filemap_ffi::fm_status_name(status)) }
        .to_str()
        .expect("status names are ASCII")
        .to_owned()
}

#[test]
fn the_headers_statuses_are_the_librarys() {
    let statuses = header_statuses();
    assert!(statuses.len() >= 30, "found only {statuses:?}");
    for (name, value) in &statuses {
        assert_eq!(
            &status_name(*value),
            name,
            "{name} is {value} in the header"
        );
    }
    // Every status the library names is in the header (the codes are
    // small negative numbers).
    for value in -1000..=0 {
        let name = status_name(value);
        if name != "FM_E_?" {
            assert!(
                statuses.contains(&(name.clone(), value)),
                "{name} ({value}) is missing from the header"
            );
        }
    }
}

#[test]
fn the_pascal_units_constants_are_the_headers() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/pascal/filemap.pas"),
    )
    .expect("reading bindings/pascal/filemap.pas");
    // `  FM_E_NULL = -1;`, and the other integer constants of the C ABI.
    let pascal: Vec<(String, i64)> = unit
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().strip_suffix(';')?.split_once(" = ")?;
            if !name.starts_with("FM_") {
                return None;
            }
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect();
    let mut header: Vec<(String, i64)> = header_statuses()
        .into_iter()
        .map(|(n, v)| (n, i64::from(v)))
        .collect();
    header.extend([
        (
            "FM_CREATE_ONLY".to_owned(),
            i64::from(filemap_ffi::FM_CREATE_ONLY),
        ),
        (
            "FM_OPEN_ONLY".to_owned(),
            i64::from(filemap_ffi::FM_OPEN_ONLY),
        ),
        (
            "FM_PERSISTENT".to_owned(),
            i64::from(filemap_ffi::FM_PERSISTENT),
        ),
        (
            "FM_OPEN_OPTIONS_SIZE".to_owned(),
            i64::from(filemap_ffi::FM_OPEN_OPTIONS_SIZE),
        ),
        (
            "FM_WAIT_SLEEP".to_owned(),
            i64::from(filemap_ffi::FM_WAIT_SLEEP),
        ),
        (
            "FM_WAIT_SPIN".to_owned(),
            i64::from(filemap_ffi::FM_WAIT_SPIN),
        ),
        (
            "FM_WAIT_ADAPTIVE".to_owned(),
            i64::from(filemap_ffi::FM_WAIT_ADAPTIVE),
        ),
    ]);
    // Pascal is case-blind: the version is FileMapAbiVersion, beside the
    // function fm_abi_version.
    assert!(
        unit.contains(&format!(
            "FileMapAbiVersion = {};",
            filemap_ffi::FM_ABI_VERSION
        )),
        "filemap.pas's FileMapAbiVersion is not FM_ABI_VERSION ({})",
        filemap_ffi::FM_ABI_VERSION
    );
    for constant in &pascal {
        assert!(
            header.contains(constant),
            "filemap.pas has {} = {}, which the C ABI does not",
            constant.0,
            constant.1
        );
    }
    for constant in &header {
        assert!(
            pascal.contains(constant),
            "filemap.pas lacks {} = {}",
            constant.0,
            constant.1
        );
    }
}
