//! Reading a `--psk` file for authenticated framing (the key itself is the core's
//! [`FrameKey`]; this is the file-system edge the core must not touch).

use std::path::Path;

use kmslab_core::wire::FrameKey;

/// Reads the pre-shared key in `path`: the file's bytes without leading and trailing
/// whitespace, 16..=1024 bytes (`openssl rand -hex 32 > lab.psk` makes a good one). Warns
/// when the file can be read by other users. The error is one line for the caller to
/// prefix with the flag's name.
pub fn load(path: &Path) -> Result<FrameKey, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the pre-shared key file can be read by other users; chmod 600 it");
        }
    }
    FrameKey::from_file_contents(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_read_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("kmslab-psk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.psk");
        std::fs::write(&good, "00112233445566778899aabbccddeeff\n").unwrap();
        let key = load(&good).unwrap();
        assert_eq!(key.mac(b"x"), FrameKey::new(b"00112233445566778899aabbccddeeff").unwrap().mac(b"x"));
        let short = dir.join("short.psk");
        std::fs::write(&short, "abc\n").unwrap();
        assert!(load(&short).unwrap_err().contains("at least 16"));
        assert!(load(&dir.join("missing.psk")).unwrap_err().contains("cannot read"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
