//! `slmgr` client verbs: the real binary against the real daemon, `/dli` compared line by
//! line with the interfaces.md contract for each license state.

use std::path::PathBuf;
use std::process::Command;

use kmslab_core::LicenseStatus;
use kmslab_core::hresult::HResult;

use crate::support::*;

/// The `/dli` example of interfaces.md, verbatim; tests substitute the run's own values.
const CONTRACT_LICENSED: &str = "\
Name: Windows(R) 7, Enterprise edition
Description: Windows Operating System - Windows(R) 7, VOLUME_KMSCLIENT channel
Partial Product Key: HVTHH
License Status: Licensed
Volume activation expiration: 259200 minute(s) (180 day(s))

Key Management Service client information
    Client Machine ID (CMID): 2ffcfc30-6a6a-49ec-92b8-f6150c7df211
    KMS machine name from DNS: kms1.lab.test:1688
    KMS machine extended PID: 55041-00168-305-123456-03-1033-7600.0000-0012026
    Activation interval: 120 minutes
    Renewal interval: 10080 minutes
    KMS host caching is enabled
";

/// The slmgr binary next to kms-client (another package's binary, built on first use).
fn slmgr_path() -> PathBuf {
    kmslab_test_support::workspace_binary(env!("CARGO_BIN_EXE_kms-client"), "kmslab-slmgr", "slmgr")
}

/// Runs `slmgr --target ADMIN ARGS`; returns (exit code, stdout, stderr).
async fn slmgr(client: &TestClient, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(slmgr_path());
    cmd.arg("--target").arg(client.admin.to_string()).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// Compares line by line so a failure names the first differing line.
fn assert_lines(actual: &str, expected: &str) {
    let (a, e): (Vec<_>, Vec<_>) = (actual.lines().collect(), expected.lines().collect());
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        assert_eq!(x, y, "line {} differs\n--- actual:\n{actual}--- expected:\n{expected}", i + 1);
    }
    assert_eq!(a.len(), e.len(), "line count differs\n--- actual:\n{actual}--- expected:\n{expected}");
    assert!(actual.ends_with('\n'));
}

fn licensed_contract(cmid: &str, host_line: &str) -> String {
    CONTRACT_LICENSED
        .replace("2ffcfc30-6a6a-49ec-92b8-f6150c7df211", cmid)
        .replace("    KMS machine name from DNS: kms1.lab.test:1688", host_line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dli_matches_the_contract_licensed_from_dns_and_manual() {
    let host = TestHost::start(120, 10080).await;
    let port = host.addr.port();
    let bind = Bind::start("lab.test", &format!("_vlmcs._tcp IN SRV 0 0 {port} kms1.lab.test.\nkms1 IN A 127.0.0.1\n"));
    let mut cfg = config(1.0);
    cfg.product = product("win7-enterprise");
    cfg.domain = Some("lab.test".into());
    cfg.dns_server = Some(bind.addr.into());
    let client = TestClient::start(cfg).await;
    client.wait_status(10, "the first attempt", |s| !s["last_result"].is_null()).await;
    let last = host.requests.lock().unwrap().last().unwrap().client_time;
    host.add_machines(24, 25, last);
    let r = client.ato().await;
    assert_eq!(r["hresult"], "0x00000000", "{r}");
    let cmid = client.status().await["cmid"].as_str().unwrap().to_owned();

    let (code, out, _) = slmgr(&client, &["/dli"]).await;
    assert_eq!(code, 0);
    assert_lines(&out, &licensed_contract(&cmid, &format!("    KMS machine name from DNS: kms1.lab.test:{port}")));

    // The same machine pinned by hand.
    let (code, out, _) = slmgr(&client, &["/skms", &format!("127.0.0.1:{port}")]).await;
    assert_eq!((code, out.trim()), (0, format!("Key Management Service machine name set to 127.0.0.1:{port} successfully.").as_str()));
    let (code, out, _) = slmgr(&client, &["-ato"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("Product activated successfully.\n"), "{out}");
    let (_, out, _) = slmgr(&client, &["--dli"]).await;
    assert_lines(&out, &licensed_contract(&cmid, &format!("    Registered KMS machine name: 127.0.0.1:{port}")));

    // /dlv adds detail; --json gives the status object.
    let (code, out, _) = slmgr(&client, &["/dlv"]).await;
    assert_eq!(code, 0);
    for needle in ["Activation ID: ae2ee509-1b34-41c0-acb7-6d4650168915", "Remaining Windows rearm count: 3", "Application ID: "] {
        assert!(out.contains(needle), "{needle} missing in\n{out}");
    }
    let (_, out, _) = slmgr(&client, &["--json", "/dli"]).await;
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((v["role"].as_str(), v["status"].as_str()), (Some("client"), Some("licensed")));
    let (_, out, _) = slmgr(&client, &["/xpr"]).await;
    assert!(out.contains("Volume activation will expire"), "{out}");
    // /xpr writes the time as slmgr.vbs does in en-US: M/D/YYYY h:mm:ss AM|PM.
    let until = out.lines().nth(1).unwrap().trim().trim_start_matches("Volume activation will expire ").to_owned();
    assert_eq!(until.split(' ').count(), 3, "{out}");
    assert_eq!(until.split(' ').next().unwrap().split('/').count(), 3, "{out}");
    assert!(until.ends_with(" AM") || until.ends_with(" PM"), "{out}");

    // The machine's own Extended PID and Installation ID, as the status serves them.
    let status = client.status().await;
    let typed: kmslab_api::ClientStatus = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), status, "the typed view keeps every field");
    let iid = typed.installation_id.clone().unwrap();
    assert!(kmslab_core::install_id::is_valid_installation_id(&iid), "{iid}");
    let (_, dlv, _) = slmgr(&client, &["/dlv"]).await;
    assert!(dlv.contains(&format!("\nInstallation ID: {iid}\n")), "{dlv}");
    assert!(dlv.contains(&format!("\nExtended PID: {}\n", typed.extended_pid.as_deref().unwrap())), "{dlv}");
    // A client has one product: `/dli all` lists it as `/dli` does.
    let (code, all, _) = slmgr(&client, &["/dli", "all"]).await;
    assert_eq!(code, 0);
    let (_, dli, _) = slmgr(&client, &["/dli"]).await;
    assert_eq!(all, dli);
    let raw = client.events().await;
    let events: Vec<kmslab_api::EventRecord> = serde_json::from_value(serde_json::Value::Array(raw.clone())).unwrap();
    assert_eq!(serde_json::to_value(&events).unwrap(), serde_json::Value::Array(raw), "events keep every field");
    assert!(events.iter().any(|e| e.event_id == Some(kmslab_core::events::REQUEST_SENT) && e.kind.as_deref() == Some("request_sent")));
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dli_in_grace_failure_codes_and_bad_arguments() {
    let mut host = TestHost::start(120, 10080).await;
    let mut cfg = config(1.0);
    cfg.product = product("win7-enterprise");
    cfg.kms = Some(host.addr.to_string().parse().unwrap());
    let client = TestClient::start(cfg).await;
    client.wait_status(10, "the first attempt", |s| !s["last_result"].is_null()).await;

    // Below the count: Initial grace, Time remaining, exit 1 with the code from /ato.
    let (code, out, _) = slmgr(&client, &["/ato"]).await;
    assert_eq!(code, 1);
    assert!(out.contains("Error: 0xC004F038"), "{out}");
    let cmid = client.status().await["cmid"].as_str().unwrap().to_owned();
    let (_, out, _) = slmgr(&client, &["/dli"]).await;
    let expected = licensed_contract(&cmid, &format!("    Registered KMS machine name: {}", host.addr))
        .replace("License Status: Licensed", "License Status: Initial grace period")
        .replace("Volume activation expiration: 259200 minute(s) (180 day(s))", "Time remaining: 43200 minute(s) (30 day(s))");
    assert_lines(&out, &expected);

    host.stop().await;
    let (code, out, _) = slmgr(&client, &["/ato"]).await;
    assert_eq!(code, 1);
    assert!(out.contains("Error: 0xC004F074"), "{out}");

    let (code, out, _) = slmgr(&client, &["/ipk", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"]).await;
    assert_eq!(code, 1);
    assert!(out.contains("0xC004F050"), "{out}");
    for bad in [&["/skms"][..], &["/skms", "a b"], &["/ipk"], &["/dli", "extra"], &["/skms-domain", "bad domain"]] {
        let (code, _, err) = slmgr(&client, bad).await;
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.contains("client verbs:"), "{bad:?}: usage expected, got {err}");
    }
    let (code, out, _) = slmgr(&client, &["/ckhc"]).await;
    assert_eq!((code, out.as_str()), (0, "KMS host caching is disabled\n"));
    let (code, _, _) = slmgr(&client, &["/skms-domain", "lab.test"]).await;
    assert_eq!(code, 0);
    let (code, _, _) = slmgr(&client, &["/ckms"]).await;
    assert_eq!(code, 0);
    let (_, out, _) = slmgr(&client, &["/dli"]).await;
    assert!(out.contains("    KMS host caching is disabled\n"), "{out}");

    let (code, out, _) = slmgr(&client, &["/rearm"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(client.status().await["rearm_count"], 2);
    let (code, _, _) = slmgr(&client, &["/ipk", "489J6-VHDMP-X63PK-3K798-CPX3Y"]).await;
    assert_eq!(code, 0);
    assert_eq!(client.status().await["product"]["name"], "server2008r2-enterprise");
    let (code, out, _) = slmgr(&client, &["/upk"]).await;
    assert_eq!((code, out.as_str()), (0, "Uninstalled product key successfully.\n"));
    let (code, out, _) = slmgr(&client, &["/dli"]).await;
    assert_eq!((code, out.as_str()), (1, "Error: product key not found.\n"));
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dli_in_notification_and_additional_grace() {
    // Notification: its reason follows License Status, and there is no expiry line.
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), |s| {
        s.status = LicenseStatus::Notification;
        s.notification_reason = Some(HResult::GRACE_EXPIRED);
        s.grace_end = None;
    });
    let mut cfg = config(1.0);
    cfg.state_dir = Some(dir.path().to_owned());
    let client = TestClient::start(cfg.clone()).await;
    let cmid = client.status().await["cmid"].as_str().unwrap().to_owned();
    let (_, out, _) = slmgr(&client, &["/dli"]).await;
    let expected = licensed_contract(&cmid, "    Registered KMS machine name: 127.0.0.1:9")
        .replace(
            "License Status: Licensed\nVolume activation expiration: 259200 minute(s) (180 day(s))\n",
            "License Status: Notification\nNotification Reason: 0xC004F009 (grace time expired).\n",
        )
        .replace("    KMS machine extended PID: 55041-00168-305-123456-03-1033-7600.0000-0012026\n", "");
    assert_lines(&out, &expected);
    let events = client.events().await;
    assert!(events.iter().any(|e| e["kind"] == "notification_reminder"), "{events:?}");
    client.stop().await;

    // 180 days without renewal: Additional grace, 30 days from the end of the validity.
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), |s| {
        let now = s.grace_end.unwrap().plus_days(-30);
        s.status = LicenseStatus::Licensed;
        s.grace_end = None;
        s.valid_until = Some(now.plus_days(-1));
        s.last.epid = Some("55041-00168-305-123456-03-1033-7600.0000-0012026".into());
    });
    cfg.state_dir = Some(dir.path().to_owned());
    let client = TestClient::start(cfg).await;
    let s = client.wait_status(5, "Additional grace", |s| s["status"] == "additional_grace").await;
    let minutes = s["minutes_remaining"].as_u64().unwrap();
    assert!((29 * 1440 - 5..=29 * 1440).contains(&minutes), "{minutes}");
    let (_, out, _) = slmgr(&client, &["/dli"]).await;
    let expected = licensed_contract(s["cmid"].as_str().unwrap(), "    Registered KMS machine name: 127.0.0.1:9")
        .replace(
            "License Status: Licensed\nVolume activation expiration: 259200 minute(s) (180 day(s))",
            &format!(
                "License Status: Additional grace period (KMS license expired or hardware out of tolerance)\nTime remaining: {minutes} minute(s) (29 day(s))"
            ),
        );
    assert_lines(&out, &expected);
    client.stop().await;
}
