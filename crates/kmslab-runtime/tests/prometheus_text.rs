//! `promtool check metrics` reads what `kmslab_runtime::prometheus` encodes, also when a
//! label value holds a double quote, a backslash or a line feed (a group name from a user's
//! catalog file), and refuses the same text with the value unescaped, so the check can fail.

use std::io::Write as _;
use std::process::{Command, Stdio};

use kmslab_runtime::prometheus::{ConstGauge, Registry, encode, gauges, register};

fn promtool_check(text: &str) -> (bool, String) {
    let promtool = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("promtool")).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("`promtool` not found on PATH: install the Debian package `prometheus` (scripts/test.sh does)"));
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn label_values_with_quotes_backslashes_and_line_feeds_pass_promtool() {
    let hostile = "Office \"2010\" \\ volume\nsecond line";
    let mut r = Registry::default();
    let mut counted = gauges();
    counted.push([("group", hostile)], ConstGauge::new(3.0));
    counted.push([("group", "windows")], ConstGauge::new(25.0));
    register(&mut r, "kmslab_host_counted_cmids", "Distinct CMIDs in the current count, per counted group.", counted);
    let text = encode(&r);
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics:\n{said}\n--- metrics ---\n{text}");
    assert!(text.contains(r#"kmslab_host_counted_cmids{group="Office \"2010\" \\ volume\nsecond line"} 3"#), "{text}");

    // The same line with the value as given is not the text format.
    let raw = text.replace(r#"Office \"2010\" \\ volume\nsecond line"#, hostile);
    let (ok, said) = promtool_check(&raw);
    assert!(!ok, "promtool accepted an unescaped label value:\n{raw}\n{said}");
}
