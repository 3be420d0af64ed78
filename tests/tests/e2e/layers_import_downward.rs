//! The structure rules of the style guide, checked on the sources: no
//! module imports one that imports it back, no file's code runs past
//! ~400 lines, and no function needs clippy's permission for a long
//! argument list.

use std::path::{Path, PathBuf};

use hlsmux_tests::layers::{code_lines, import_cycles, module_graph};

/// Past this many lines before its unit tests, a file is doing several jobs.
const MAX_CODE_LINES: usize = 400;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_owned()
}

/// Every crate's `src`, the tests crate's library included.
fn crate_sources() -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(workspace())
        .expect("workspace")
        .flatten()
        .map(|entry| entry.path().join("src"))
        .filter(|src| src.join("lib.rs").is_file() || src.join("main.rs").is_file())
        .collect();
    sources.sort();
    assert!(sources.len() >= 7, "found the crates: {sources:?}");
    sources
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut found = Vec::new();
    for src in crate_sources() {
        for cycle in import_cycles(&module_graph(&src)) {
            found.push(format!("{}: {}", src.display(), cycle.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("lib.rs"), "pub mod a;\npub mod b;\n").expect("write");
    std::fs::write(dir.path().join("a.rs"), "use crate::b::B;\npub struct A;\n").expect("write");
    std::fs::write(
        dir.path().join("b.rs"),
        "use crate::{a::A};\npub struct B;\n#[cfg(test)]\nmod tests { use crate::c::*; }\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("c.rs"), "use super::b::B;\n").expect("write");
    let cycles = import_cycles(&module_graph(dir.path()));
    assert_eq!(cycles, vec![vec!["a".to_owned(), "b".to_owned()]]);
    std::fs::write(dir.path().join("c.rs"), "use super::a::A;\n").expect("write");
    std::fs::write(dir.path().join("a.rs"), "pub struct A;\n").expect("write");
    assert!(import_cycles(&module_graph(dir.path())).is_empty());
}

#[test]
fn no_file_runs_past_four_hundred_lines_of_code() {
    let mut long = Vec::new();
    // The tests crate's helpers are tests themselves.
    for src in crate_sources()
        .into_iter()
        .filter(|src| !src.starts_with(workspace().join("tests")))
    {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            let lines = code_lines(&text);
            if lines > MAX_CODE_LINES {
                long.push(format!("{} has {lines} lines of code", file.display()));
            }
        }
    }
    long.sort();
    assert!(
        long.is_empty(),
        "split these by what they do:\n{}",
        long.join("\n")
    );
}

#[test]
fn no_function_is_allowed_too_many_arguments() {
    let mut allowed = Vec::new();
    for src in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            if text.contains(concat!("clippy::", "too_many_arguments")) {
                allowed.push(file.display().to_string());
            }
        }
    }
    assert!(allowed.is_empty(), "pass a struct instead: {allowed:?}");
}
