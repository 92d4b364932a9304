//! Build script: records the git revision the binaries were built from, so `--version`
//! can say `0.1.0 (git abc123def456)`. Outside a git checkout (a source tarball, a docker
//! build context without `.git`) the revision is "unknown".

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(env_dir()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn env_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()))
}

/// Asks cargo to rerun this script when HEAD moves. Only paths that exist are named:
/// cargo treats a missing rerun-if-changed path as always stale, which would rebuild
/// every crate on every build.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=KMSLAB_GIT_REVISION");
    // A packager building without .git may pass the revision in.
    let revision = std::env::var("KMSLAB_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = PathBuf::from(git_dir);
        watch(&git_dir.join("HEAD"));
        // Branch refs live in the common directory (the same one except in a worktree); git
        // prints it relative to the working directory, the manifest directory here.
        let common_dir = git(&["rev-parse", "--git-common-dir"]).map(|d| env_dir().join(d)).unwrap_or_else(|| git_dir.clone());
        watch(&common_dir.join("packed-refs"));
        // HEAD usually names a branch (`ref: refs/heads/main`); a commit moves that file.
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(&common_dir.join(head_ref));
        }
    }
    println!("cargo:rustc-env=KMSLAB_GIT_REVISION={revision}");
}
