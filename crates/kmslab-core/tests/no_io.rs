//! Architecture invariant: the core crate has no I/O dependencies, even transitively.

use std::process::Command;

#[test]
fn core_depends_on_no_runtime_dns_database_or_web_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "kmslab-core", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("kmslab-core"), "unexpected cargo tree output: {tree}");
    let banned = ["tokio", "hickory", "rusqlite", "axum", "mio", "socket2", "hyper"];
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        for b in banned {
            assert!(!name.starts_with(b), "kmslab-core must not depend on {name} (banned: {b})");
        }
    }
}

#[test]
fn core_sources_read_no_clock_socket_file_or_environment() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let banned = ["SystemTime", "Instant::now", "std::net", "std::fs", "std::env", "std::thread", "std::process", "unsafe "];
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for b in banned {
                assert!(!text.contains(b), "{} uses {b}", path.display());
            }
        }
    }
}
