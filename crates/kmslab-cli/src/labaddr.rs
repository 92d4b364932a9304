//! Where the running lab's control address is kept, so that `kmslab lab` and
//! `slmgr --machine` need no `--target`: `$XDG_RUNTIME_DIR/kmslab/lab.addr`, or
//! `<temp dir>/kmslab-<user>/lab.addr` without a runtime directory. `kmslab up` writes it
//! at start and removes it at exit.

use std::path::PathBuf;

/// The file's path for the given `XDG_RUNTIME_DIR` and `USER` values.
pub fn path_from(runtime_dir: Option<String>, user: Option<String>) -> PathBuf {
    match runtime_dir.filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("kmslab").join("lab.addr"),
        None => {
            let user = user.filter(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
            std::env::temp_dir().join(format!("kmslab-{}", user.as_deref().unwrap_or("user"))).join("lab.addr")
        }
    }
}

/// The file's path for this process's environment.
pub fn path() -> PathBuf {
    path_from(std::env::var("XDG_RUNTIME_DIR").ok(), std::env::var("USER").ok())
}

/// The address in the file at `path`, if there is a readable one: `HOST:PORT` as written.
pub fn read_at(path: &std::path::Path) -> Result<std::net::SocketAddr, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("no running lab found ({}: {e}); start one with `kmslab up` or give --target", path.display()))?;
    text.trim().parse().map_err(|e| format!("{} does not hold an address ({e}): {:?}", path.display(), text.trim()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_dir_wins_and_a_missing_file_says_how_to_start_a_lab() {
        let p = super::path_from(Some("/run/user/1000".into()), Some("ann".into()));
        assert_eq!(p, std::path::Path::new("/run/user/1000/kmslab/lab.addr"));
        let p = super::path_from(None, Some("../evil".into()));
        assert!(p.ends_with("kmslab-user/lab.addr"), "{}", p.display());
        let dir = std::env::temp_dir().join(format!("kmslab-labaddr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lab.addr");
        let err = super::read_at(&file).unwrap_err();
        assert!(err.contains("kmslab up"), "{err}");
        std::fs::write(&file, "127.0.0.1:4567\n").unwrap();
        assert_eq!(super::read_at(&file).unwrap().to_string(), "127.0.0.1:4567");
        std::fs::write(&file, "nonsense").unwrap();
        assert!(super::read_at(&file).unwrap_err().contains("does not hold an address"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
