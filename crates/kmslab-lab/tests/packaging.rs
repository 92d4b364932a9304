//! Shell completions, man pages and `scripts/install.sh`: what `kmslab completions`,
//! `kmslab man` and the install script produce mentions every binary and its flags.

use std::path::{Path, PathBuf};
use std::process::Command;

const BINARIES: [&str; 4] = ["kms-host", "kms-client", "slmgr", "kmslab"];

fn kmslab(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kmslab")).args(args).output().unwrap();
    assert!(out.status.success(), "kmslab {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Roff writes `--dns-zone` as `\-\-dns\-zone`.
fn unroff(page: &str) -> String {
    page.replace("\\-", "-")
}

/// Checks one shell's completion text for every binary and a few flags of each.
fn check_completions(shell: &str, text: &str) {
    for bin in BINARIES {
        assert!(text.contains(bin), "{shell} completions do not mention {bin}");
    }
    for flag in ["dns-zone", "time-scale", "data-dir", "state-dir", "admin-token", "out-dir"] {
        assert!(text.contains(flag), "{shell} completions do not mention --{flag}");
    }
}

#[test]
fn completions_cover_every_binary_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        check_completions(shell, &kmslab(&["completions", shell]));
    }
}

#[test]
fn man_pages_for_every_binary_and_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    kmslab(&["man", "--out-dir", out.to_str().unwrap()]);
    check_man_pages(&out);
}

fn check_man_pages(dir: &Path) {
    for bin in BINARIES {
        let page = unroff(&read(&dir.join(format!("{bin}.1"))));
        assert!(page.contains(".TH"), "{bin}.1 is not a man page");
        assert!(page.contains(kmslab_runtime::VERSION), "{bin}.1 lacks the version");
    }
    for sub in ["up", "fleet", "sim", "drill", "dns", "bench"] {
        assert!(dir.join(format!("kmslab-{sub}.1")).exists(), "no kmslab-{sub}.1");
    }
    let host = unroff(&read(&dir.join("kms-host.1")));
    for flag in ["--dns-zone", "--listen", "--data-dir", "--activation-interval", "--time-scale"] {
        assert!(host.contains(flag), "kms-host.1 lacks {flag}");
    }
    let client = unroff(&read(&dir.join("kms-client.1")));
    for flag in ["--product", "--kms", "--domain", "--state-dir"] {
        assert!(client.contains(flag), "kms-client.1 lacks {flag}");
    }
    let slmgr = unroff(&read(&dir.join("slmgr.1")));
    for verb in ["/dli", "/dlv", "/skms", "/ckms", "/sai", "/sri", "/sprt", "/sdns", "/cdns", "/spri", "/cpri", "/explain"] {
        assert!(slmgr.contains(verb), "slmgr.1 lacks {verb}");
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// The directory holding the freshly built binaries (target/debug), with the three that
/// are not this package's brought up to date: `cargo test -p kmslab-lab` builds only
/// `kmslab`, and a `kms-host` left from an earlier revision would print another version.
/// (A no-op when they are current.)
fn built_binaries() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_kmslab")).parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--bins", "-p", "kmslab-host", "-p", "kmslab-client", "-p", "kmslab-slmgr"])
        .status()
        .unwrap();
    assert!(status.success(), "building the binaries failed");
    dir
}

#[test]
fn install_script_installs_binaries_man_pages_completions_and_units() {
    let from = built_binaries();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let staging = dir.path().join("staging");
    // DESTDIR keeps --systemd's /etc/systemd/system inside the temp dir.
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/install.sh"))
        .args(["--no-build", "--systemd", "--from", from.to_str().unwrap(), prefix.to_str().unwrap()])
        .env("DESTDIR", &staging)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh: {}", String::from_utf8_lossy(&out.stderr));
    let root = staging.join(prefix.strip_prefix("/").unwrap());
    for bin in BINARIES {
        let installed = root.join("bin").join(bin);
        let version = Command::new(&installed).arg("--version").output().unwrap();
        assert!(String::from_utf8_lossy(&version.stdout).contains(kmslab_runtime::VERSION), "{}", installed.display());
        // Installed copies are stripped (when binutils' strip is there, as it is wherever
        // Rust links): the debug build's symbols and line tables stay behind.
        if Command::new("strip").arg("--version").output().is_ok_and(|o| o.status.success()) {
            let (built, copied) = (std::fs::metadata(from.join(bin)).unwrap().len(), std::fs::metadata(&installed).unwrap().len());
            assert!(copied < built / 2, "{bin}: installed {copied} bytes of the {built} built: not stripped");
        }
    }
    check_completions("bash", &(BINARIES.map(|b| read(&root.join("share/bash-completion/completions").join(b))).concat()));
    check_completions("zsh", &(BINARIES.map(|b| read(&root.join("share/zsh/site-functions").join(format!("_{b}")))).concat()));
    check_completions("fish", &(BINARIES.map(|b| read(&root.join("share/fish/vendor_completions.d").join(format!("{b}.fish")))).concat()));
    check_man_pages(&root.join("share/man/man1"));
    assert!(root.join("share/doc/kmslab/operations.md").exists());
    for unit in ["kms-host.service", "kms-client.service"] {
        let text = read(&staging.join("etc/systemd/system").join(unit));
        let exec = format!("ExecStart={}/bin/", prefix.display());
        assert!(text.contains(&exec), "{unit} does not run the installed binary: {text}");
        assert!(text.contains("Type=notify"), "{unit}");
    }
}

#[test]
fn install_script_leaves_systemd_alone_without_the_flag() {
    let from = built_binaries();
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/install.sh"))
        .args(["--no-build", "--from", from.to_str().unwrap(), "/usr/local"])
        .env("DESTDIR", &staging)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh: {}", String::from_utf8_lossy(&out.stderr));
    assert!(staging.join("usr/local/bin/kms-host").exists());
    assert!(!staging.join("etc").exists(), "units installed without --systemd");
}

#[test]
fn a_mistyped_flag_or_verb_gets_one_line_with_the_suggestion_and_exit_2() {
    let dir = built_binaries();
    for (bin, args, expected) in [
        (
            "kmslab",
            &["up", "--clinets", "5"][..],
            "kmslab: unexpected argument '--clinets' found (tip: a similar argument exists: '--clients')",
        ),
        (
            "kms-host",
            &["--listn", "127.0.0.1:0"][..],
            "kms-host: unexpected argument '--listn' found (tip: a similar argument exists: '--listen')",
        ),
        (
            "kms-client",
            &["--prodct", "win7-enterprise"][..],
            "kms-client: unexpected argument '--prodct' found (tip: a similar argument exists: '--product')",
        ),
        ("slmgr", &["/dlii"][..], "slmgr: unknown verb \"/dlii\" (did you mean /dli?)"),
    ] {
        let out = Command::new(dir.join(bin)).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bin} {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().next(), Some(expected), "{bin} {args:?}: {stderr}");
    }
}

#[test]
fn slmgr_takes_the_machine_before_the_verb_as_slmgr_vbs_does() {
    let dir = built_binaries();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let (mut host, admin) = spawn_host(
        &dir.join("kms-host"),
        &["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--no-dns-publish", "--data-dir", &data_dir],
    );
    let slmgr = |args: &[&str]| Command::new(dir.join("slmgr")).args(args).output().unwrap();
    let by_target = slmgr(&["--target", &admin, "/dli"]);
    let by_machine = slmgr(&[&admin, "/dli"]);
    let with_credentials = slmgr(&[&admin, "administrator", "not-needed-on-loopback", "/sai", "60"]);
    host.kill();
    assert!(by_target.status.success() && by_machine.status.success(), "{}", String::from_utf8_lossy(&by_machine.stderr));
    assert!(String::from_utf8_lossy(&by_machine.stdout).contains("Key Management Service is enabled on this machine"));
    assert_eq!(by_machine.stdout, by_target.stdout);
    assert!(with_credentials.status.success(), "{}", String::from_utf8_lossy(&with_credentials.stderr));
    assert_eq!(String::from_utf8_lossy(&with_credentials.stdout).trim(), "Volume activation interval set to 60 minutes successfully.");
    let two_words = slmgr(&[&admin, "administrator", "/dli"]);
    assert_eq!(two_words.status.code(), Some(2));
}

/// Starts the `kms-host` at `bin` with `args` (kmslab-test-support's `Daemon`, killed on
/// drop); returns it with the admin address it printed.
fn spawn_host(bin: &Path, args: &[&str]) -> (kmslab_test_support::Daemon, String) {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    let host = kmslab_test_support::Daemon::spawn(cmd, &["admin"]);
    let admin = host.addr("admin").to_string();
    (host, admin)
}

/// Runs a command, panicking with its output when it fails.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_installs_verifies_starts_and_removes() {
    let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    if !root || Command::new("dpkg").arg("--version").output().is_err() {
        eprintln!("the .deb test needs root and dpkg (CI has both): skipped");
        return;
    }
    let status = Command::new("dpkg-query").args(["-W", "-f=${Status}", "kmslab"]).output().unwrap();
    if String::from_utf8_lossy(&status.stdout).contains("installed") {
        eprintln!("a kmslab package is installed on this machine; the .deb test leaves it alone: skipped");
        return;
    }
    let from = built_binaries();
    let out_dir = tempfile::tempdir().unwrap();
    let printed = run_ok(Command::new("bash").arg(workspace_root().join("scripts/build-deb.sh")).args([
        "--no-build",
        "--compress",
        "none",
        "--from",
        from.to_str().unwrap(),
        "--out",
        out_dir.path().to_str().unwrap(),
    ]));
    let deb = PathBuf::from(printed.lines().last().unwrap().trim());
    let info = run_ok(Command::new("dpkg-deb").arg("--field").arg(&deb).arg("Package").arg("Version"));
    assert!(info.contains("Package: kmslab") && info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))), "{info}");

    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    let installed = std::panic::catch_unwind(|| {
        for bin in BINARIES {
            let version = run_ok(Command::new(format!("/usr/bin/{bin}")).arg("--version"));
            assert!(version.contains(kmslab_runtime::VERSION), "/usr/bin/{bin}: {version}");
        }
        assert!(Path::new("/usr/share/man/man1/kms-host.1").exists() && Path::new("/usr/share/bash-completion/completions/slmgr").exists());
        let unit = read(Path::new("/lib/systemd/system/kms-host.service"));
        let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart").to_owned();
        assert!(exec.starts_with("/usr/bin/kms-host "), "{exec}");
        if Command::new("systemd-analyze").arg("--version").output().is_ok() {
            let out = Command::new("systemd-analyze")
                .args(["verify", "/lib/systemd/system/kms-host.service", "/lib/systemd/system/kms-client.service"])
                .output()
                .unwrap();
            assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify: {}", String::from_utf8_lossy(&out.stderr));
        }
        // Start the installed host as its unit does, on free ports and a scratch state dir.
        let state = tempfile::tempdir().unwrap();
        let args: Vec<String> = exec
            .split_whitespace()
            .skip(1)
            .map(|a| match a {
                "[::]:1688" | "127.0.0.1:8688" => "127.0.0.1:0".to_owned(),
                "${STATE_DIRECTORY}" => state.path().display().to_string(),
                other => other.to_owned(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).chain(["--no-dns-publish"]).collect();
        let (mut host, admin) = spawn_host(Path::new("/usr/bin/kms-host"), &args);
        let health = Command::new("/usr/bin/kmslab").args(["health", &format!("http://{admin}/healthz")]).output().unwrap();
        host.kill();
        assert!(health.status.success(), "the installed host is not healthy: {}", String::from_utf8_lossy(&health.stderr));
    });
    // Purged whatever happened above, so a failure leaves the machine as it was.
    run_ok(Command::new("dpkg").args(["--purge", "kmslab"]));
    assert!(!Path::new("/usr/bin/kms-host").exists() && !Path::new("/lib/systemd/system/kms-host.service").exists());
    if let Err(panic) = installed {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn cargo_install_installs_each_binary_from_its_crate() {
    // As docs/operations.md tells users; the test shares this build's target directory so it
    // only links what is already compiled.
    let target_dir = Path::new(env!("CARGO_BIN_EXE_kmslab")).parent().unwrap().parent().unwrap().to_path_buf();
    let root = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (krate, bin) in [("kmslab-lab", "kmslab"), ("kmslab-host", "kms-host"), ("kmslab-client", "kms-client"), ("kmslab-slmgr", "slmgr")]
    {
        run_ok(
            Command::new(&cargo)
                .current_dir(workspace_root())
                .env("CARGO_TARGET_DIR", &target_dir)
                .args(["install", "--quiet", "--locked", "--debug", "--path"])
                .arg(workspace_root().join("crates").join(krate))
                .arg("--root")
                .arg(root.path()),
        );
        let version = run_ok(Command::new(root.path().join("bin").join(bin)).arg("--version"));
        assert!(version.contains(kmslab_runtime::VERSION), "{bin}: {version}");
    }
}
