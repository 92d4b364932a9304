//! The well-known file holding the address of the running lab's control API, so that
//! `kmslab lab` and `slmgr --machine` need no `--target`: `$XDG_RUNTIME_DIR/kmslab/lab.addr`,
//! or `<temp dir>/kmslab-<user>/lab.addr` without a runtime directory. `kmslab up` writes it
//! at start and removes it at exit (when it still names its own address).

use std::net::SocketAddr;
use std::path::PathBuf;

pub use kmslab_cli::labaddr::path;

/// The address in the file, if there is a readable one.
pub fn read() -> Result<SocketAddr, String> {
    kmslab_cli::labaddr::read_at(&path())
}

/// The file while a lab runs: written by [`AddrFile::write`], removed on drop.
#[derive(Debug)]
pub struct AddrFile {
    path: PathBuf,
    addr: String,
}

impl AddrFile {
    /// Writes `addr` (the directory is created, readable by its owner only).
    pub fn write(addr: SocketAddr) -> std::io::Result<AddrFile> {
        let path = path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        let tmp = path.with_extension("addr.tmp");
        std::fs::write(&tmp, format!("{addr}\n"))?;
        std::fs::rename(&tmp, &path)?;
        Ok(AddrFile { path, addr: addr.to_string() })
    }

    /// The file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for AddrFile {
    fn drop(&mut self) {
        // Another lab started since may have replaced it: leave its address alone.
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == self.addr) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
