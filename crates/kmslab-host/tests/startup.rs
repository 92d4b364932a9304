//! The real `kms-host` binary at start: it says where its registry is (made in the working
//! directory without `--data-dir`), and a refused setting names where it came from (a flag,
//! a `KMSLAB_*` variable or a config file key), with exit status 2.

use std::path::Path;
use std::process::Command;

/// `kms-host` run in `dir` with `args`, no `KMSLAB_*` variable but `env`.
fn kms_host(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kms-host"));
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("KMSLAB_")) {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

#[test]
fn without_data_dir_the_registry_is_made_in_the_working_directory_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let host = kmslab_test_support::Daemon::spawn(
        kms_host(dir.path(), &["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--no-dns-publish"], &[]),
        &["admin"],
    );
    let printed = host.stdout();
    let admin_line = printed.iter().position(|l| l.starts_with("listening on admin ")).expect("kms-host printed its addresses");
    let registry = printed[..admin_line].iter().find_map(|l| l.strip_prefix("registry ")).map(str::to_owned);
    drop(host);
    let expected = dir.path().canonicalize().unwrap().join("kms-host-data").join("registry.sqlite");
    let registry = registry.expect("a `registry PATH` line before `listening on admin`");
    assert!(Path::new(&registry).is_absolute(), "{registry}");
    assert_eq!(Path::new(&registry).canonicalize().unwrap(), expected);
    assert!(expected.is_file());
}

/// The one line `kms-host` prints on stderr when it refuses to start (exit status 2).
fn refusal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = kms_host(dir, args, env).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!dir.join("kms-host-data").exists(), "a refused configuration made a registry");
    stderr.trim_end().to_owned()
}

#[test]
fn a_refused_setting_names_its_flag_variable_or_key() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        refusal(dir.path(), &["--activation-interval", "5"], &[]),
        "kms-host: invalid value '5' for '--activation-interval <MIN>': 5 is not in 15..=43200"
    );
    assert_eq!(
        refusal(dir.path(), &[], &[("KMSLAB_MAX_CONNECTIONS", "0")]),
        "kms-host: invalid KMSLAB_MAX_CONNECTIONS \"0\": 0 is not in 1..=1000000"
    );
    // The flag wins over the variable, so the flag's value is the one refused.
    assert!(refusal(dir.path(), &["--idle-timeout", "0"], &[("KMSLAB_IDLE_TIMEOUT", "30")]).contains("'0' for '--idle-timeout <SECS>'"));
    let file = dir.path().join("host.toml");
    std::fs::write(&file, "seed_unused = 1\n").unwrap();
    let p = file.to_str().unwrap();
    assert!(
        refusal(dir.path(), &["--config", p], &[])
            .starts_with(&format!("kms-host: invalid config file {p}: line 1, column 1: unknown field `seed_unused`"))
    );
    std::fs::write(&file, "admin = \"127.0.0.1:0\"\nlisten = \"127.0.0.1:1\"\n").unwrap();
    assert_eq!(
        refusal(dir.path(), &["--config", p], &[]),
        format!(
            "kms-host: invalid config file {p}: line 2, column 10, key listen: invalid type: string \"127.0.0.1:1\", expected a sequence"
        )
    );
    std::fs::write(&file, "idle_timeout = 0\n").unwrap();
    assert_eq!(
        refusal(dir.path(), &["--config", p], &[]),
        format!("kms-host: invalid config file {p}: line 1, column 16, key idle_timeout: 0 is not in 1..=86400")
    );
    std::fs::write(&file, "host_key_group = \"kms-z\"\n").unwrap();
    assert!(
        refusal(dir.path(), &["--config", p], &[])
            .starts_with(&format!("kms-host: invalid key `host_key_group` in {p} \"kms-z\": unknown host key group"))
    );
}
