//! `slmgr /explain` and usage errors, through the real binary (no daemon needed).

use std::process::Command;

fn slmgr(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slmgr")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn explain_prints_name_meaning_and_fix_of_every_code_the_lab_produces() {
    for info in kmslab_core::hresult::TABLE {
        for spelling in ["/explain", "-explain", "--explain"] {
            let (code, out, err) = slmgr(&[spelling, &info.code.to_string()]);
            assert_eq!(code, 0, "{err}");
            assert_eq!(out, format!("Error: {}  {}\nMeaning: {}\nUsual fix: {}\n", info.code, info.name, info.meaning, info.fix));
        }
    }
    let (code, out, _) = slmgr(&["--json", "/explain", "c004f038"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "SL_E_VL_NOT_ENOUGH_COUNT");
}

#[test]
fn bad_usage_exits_2_with_a_reason() {
    for (args, needle) in [
        (vec!["/bogus"], "unknown verb"),
        (vec![], "no verb given"),
        (vec!["/explain"], "needs an error code"),
        (vec!["/explain", "banana"], "not an error code"),
        (vec!["--target"], "--target needs"),
    ] {
        let (code, _, err) = slmgr(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = slmgr(&["/explain", "0x12345678"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a code kmslab produces"), "{err}");
}

#[test]
fn an_unreachable_daemon_is_a_runtime_failure_naming_the_target() {
    let (code, _, err) = slmgr(&["--target", "127.0.0.1:1", "/dli"]);
    assert_eq!(code, 1);
    assert!(err.contains("127.0.0.1:1"), "{err}");
}
