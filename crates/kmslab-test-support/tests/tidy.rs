//! Tidiness of the repository itself: every Rust source under `crates/` opens with a `//!`
//! module doc comment, and nothing refers to the steering folder outside the repository
//! (the relative `shared` sibling or its absolute path).

use std::path::{Path, PathBuf};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// Every file below `dir`, skipping build output and git's own directory.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "corpus" | "artifacts") {
                files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_in_crates_starts_with_a_module_doc_comment() {
    let mut all = Vec::new();
    files(&repository_root().join("crates"), &mut all);
    let sources: Vec<_> = all.into_iter().filter(|p| p.extension().is_some_and(|e| e == "rs")).collect();
    assert!(sources.len() > 50, "found only {} sources: is the walk right?", sources.len());
    let missing: Vec<_> =
        sources.iter().filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//!")).map(|p| p.display().to_string()).collect();
    assert!(missing.is_empty(), "these files do not start with a `//!` doc comment: {missing:#?}");
}

#[test]
fn nothing_refers_to_the_shared_folder_outside_the_repository() {
    // Spelled in pieces so that this file does not hold the strings it looks for.
    let needles = [["..", "/shared"].concat(), ["/work", "/shared"].concat()];
    let mut all = Vec::new();
    files(&repository_root(), &mut all);
    let mut hits = Vec::new();
    for path in &all {
        let Ok(text) = std::fs::read_to_string(path) else { continue }; // binary files
        for needle in &needles {
            if text.contains(needle.as_str()) {
                hits.push(format!("{} mentions {needle}", path.display()));
            }
        }
    }
    assert!(all.len() > 100, "found only {} files: is the walk right?", all.len());
    assert!(hits.is_empty(), "{hits:#?}");
}
