//! The admin API, settings, restarts and `slmgr /dli` against an in-process host.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn intervals_set_through_the_admin_api_reach_clients_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    let r = response(ask_once(host.kms, &request("win7-enterprise")).await);
    assert_eq!((r.activation_interval, r.renewal_interval), (120, 10_080));
    let (code, body) = http(host.admin, "POST", "/api/v1/settings", Some(r#"{"activation_interval":5}"#)).await.unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("between 15 and 43200"), "{body}");
    let (code, body) = http(
        host.admin,
        "POST",
        "/api/v1/settings",
        Some(r#"{"activation_interval":30,"renewal_interval":60,"priority":"low","dns_publishing":false,"port":1789}"#),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let r = response(ask_once(host.kms, &request("win7-enterprise")).await);
    assert_eq!((r.activation_interval, r.renewal_interval), (30, 60));
    host.stop().await;

    let host = TestHost::start(config(dir.path())).await;
    let r = response(ask_once(host.kms, &request("win7-enterprise")).await);
    assert_eq!((r.activation_interval, r.renewal_interval), (30, 60));
    let status = host.status().await;
    assert_eq!(
        status["settings"],
        json!({"activation_interval":30,"renewal_interval":60,"port":1789,"dns_publishing":false,"priority":"low"})
    );
    host.stop().await;

    // An interval given at start wins over the stored one, and is stored in its place.
    let mut c = config(dir.path());
    c.activation_interval = Some(45);
    let host = TestHost::start(c).await;
    let r = response(ask_once(host.kms, &request("win7-enterprise")).await);
    assert_eq!((r.activation_interval, r.renewal_interval), (45, 60));
    host.stop().await;
    let host = TestHost::start(config(dir.path())).await;
    assert_eq!(host.status().await["settings"]["activation_interval"], 45);
    host.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_counters_and_epid_but_empties_the_count_unless_keep_count() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    for _ in 0..3 {
        response(ask_once(host.kms, &request("win7-enterprise")).await);
    }
    error_frame(ask_once(host.kms, &request("office2010-proplus")).await);
    let before = host.status().await;
    let epid = before["epid"].as_str().unwrap().to_owned();
    assert!(kmslab_core::epid::is_valid(&epid), "{epid}");
    host.stop().await;

    let host = TestHost::start(config(dir.path())).await;
    let after = host.status().await;
    assert_eq!(after["epid"], epid.as_str());
    assert_eq!(after["counters"], before["counters"]);
    assert_eq!(after["counts"][0]["count"], 0, "the count starts empty after a restart");
    assert_eq!(response(ask_once(host.kms, &request("win7-enterprise")).await).current_count, 1);
    host.stop().await;

    let mut c = config(dir.path());
    c.keep_count = true;
    let host = TestHost::start(c).await;
    let r = response(ask_once(host.kms, &request("win7-enterprise")).await);
    assert_eq!(r.current_count, 5, "--keep-count restores the 4 CMIDs counted before");
    assert_eq!(r.epid, epid);
    host.stop().await;

    // --epid overrides the stored one.
    let mut c = config(dir.path());
    c.epid = Some("55041-00168-305-123456-03-1033-7600.0000-0012026".into());
    let host = TestHost::start(c).await;
    assert_eq!(response(ask_once(host.kms, &request("win7-enterprise")).await).epid, "55041-00168-305-123456-03-1033-7600.0000-0012026");
    host.stop().await;
}

#[tokio::test]
async fn clients_and_events_are_exported_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    let mut win = request("win7-enterprise");
    win.machine_name = "alpha-pc".into();
    response(ask_once(host.kms, &win).await);
    response(ask_once(host.kms, &request("server2008r2-standard")).await);
    error_frame(ask_once(host.kms, &request("server2008r2-datacenter")).await);

    let all = get_json(host.admin, "/api/v1/clients").await;
    assert_eq!(all["total"], 3);
    let page = get_json(host.admin, "/api/v1/clients?product=win7-enterprise").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["clients"][0]["cmid"], win.cmid.to_string());
    assert_eq!(page["clients"][0]["machine_name"], "alpha-pc");
    assert_eq!(page["clients"][0]["license_status"], "initial_grace");
    assert_eq!(get_json(host.admin, "/api/v1/clients?search=ALPHA").await["total"], 1);
    assert_eq!(get_json(host.admin, "/api/v1/clients?state=licensed").await["total"], 0);
    assert_eq!(get_json(host.admin, "/api/v1/clients?limit=2").await["clients"].as_array().unwrap().len(), 2);
    let (code, _) = http(host.admin, "GET", "/api/v1/clients?state=bogus", None).await.unwrap();
    assert_eq!(code, 400);

    let events = get_json(host.admin, "/api/v1/events?id=12290").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["fields"]["cmid"], win.cmid.to_string());
    assert_eq!(events[2]["fields"]["result"], "0xC004F042");
    assert_eq!(get_json(host.admin, "/api/v1/events?id=12294").await["events"].as_array().unwrap().len(), 0);
    assert_eq!(get_json(host.admin, "/api/v1/events?since=2999-01-01T00:00:00Z").await["events"].as_array().unwrap().len(), 0);
    let (code, csv) = http(host.admin, "GET", "/api/v1/events?format=csv", None).await.unwrap();
    assert_eq!(code, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], kmslab_host::events_csv::header().join(","));
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1].contains(",12290,") && lines[1].contains("alpha-pc"), "{csv}");
    // The fields have their own columns: machine_name, then cmid.
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!((cells[1], cells[4], cells[5]), ("12290", "alpha-pc", win.cmid.to_string().as_str()), "{csv}");

    let (code, health) = http(host.admin, "GET", "/healthz", None).await.unwrap();
    assert_eq!((code, health.as_str()), (200, r#"{"status":"ok"}"#));
    let (_, metrics) = http(host.admin, "GET", "/metrics", None).await.unwrap();
    assert!(metrics.contains(r#"kmslab_host_requests_total{result="0xC004F042",license_status="initial_grace"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"kmslab_host_counted_cmids{group="windows"} 2"#), "{metrics}");
    assert!(metrics.contains("kmslab_host_request_duration_seconds_count 3"), "{metrics}");
    host.stop().await;
}

/// The `slmgr` binary of this workspace (built on demand: it lives in another package).
fn slmgr_binary() -> PathBuf {
    kmslab_test_support::workspace_binary(env!("CARGO_BIN_EXE_kms-host"), "kmslab-slmgr", "slmgr")
}

/// The host `/dli` block of interfaces.md, as `(label, example value)` per line.
fn interfaces_dli() -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/interfaces.md")).expect("docs/interfaces.md readable");
    let start = doc.find("`/dli` on a host prints:\n```\n").expect("host /dli block") + "`/dli` on a host prints:\n```\n".len();
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].lines().map(str::to_owned).collect()
}

/// The part of a line that must match exactly: everything up to the value.
fn label(line: &str) -> String {
    match line.split_once(": ") {
        Some((label, _)) => format!("{label}: "),
        None => line.to_owned(),
    }
}

#[tokio::test]
async fn slmgr_dli_on_a_host_matches_the_interfaces_format_line_by_line() {
    let slmgr = slmgr_binary();
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    response(ask_once(host.kms, &request("win7-enterprise")).await);
    response(ask_once(host.kms, &request("win7-enterprise")).await);
    let target = host.admin.to_string();
    let out = tokio::task::spawn_blocking(move || Command::new(slmgr).args(["--target", &target, "/dli"]).output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let ours: Vec<&str> = text.lines().collect();
    let expected = interfaces_dli();
    assert_eq!(ours.len(), expected.len(), "ours:\n{text}");
    for (o, e) in ours.iter().zip(&expected) {
        assert_eq!(label(o), label(e), "ours:\n{text}");
    }
    // Values that are fixed for a fresh kms-b host.
    assert!(ours.contains(&"Name: Windows Server(R), ServerEnterprise edition"), "{text}");
    assert!(ours.contains(&"    Current count: 2"), "{text}");
    assert!(ours.contains(&format!("    Listening on Port: {}", host.kms.port()).as_str()), "{text}");
    assert!(ours.contains(&"    Total requests received: 2"), "{text}");
    assert!(ours.contains(&"    Requests with License Status Initial grace period: 2"), "{text}");
    host.stop().await;
}

/// `value` read as `T` and written back is `value` again: the typed view holds every field
/// the daemon serves, with the same names and types.
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(value: &serde_json::Value) -> T {
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("not a {}: {e}\n{value:#}", std::any::type_name::<T>()));
    assert_eq!(&serde_json::to_value(&typed).unwrap(), value, "{} loses or changes fields", std::any::type_name::<T>());
    typed
}

#[tokio::test]
async fn status_clients_and_events_round_trip_through_the_typed_views() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.host_key_groups = vec!["kms-b".into(), "office-2010".into()];
    let host = TestHost::start(c).await;
    response(ask_once(host.kms, &request("win7-enterprise")).await);
    error_frame(ask_once(host.kms, &request("server2008r2-datacenter")).await);

    let status: kmslab_api::HostStatus = round_trips(&host.status().await);
    assert_eq!(status.role, "host");
    assert_eq!(status.count_of("windows"), 1);
    assert_eq!(status.application_id, kmslab_api::WINDOWS_APPLICATION_ID);
    assert_eq!(status.licenses.iter().map(|l| l.host_key_group.as_str()).collect::<Vec<_>>(), ["kms-b", "office-2010"]);
    assert_eq!(status.activation_id, status.licenses[0].activation_id);
    assert_ne!(status.licenses[0].activation_id, status.licenses[1].activation_id);
    assert!(kmslab_core::Timestamp::parse_rfc3339(&status.trusted_time).is_ok(), "{}", status.trusted_time);
    let clients: kmslab_api::ClientList = round_trips(&get_json(host.admin, "/api/v1/clients").await);
    assert_eq!(clients.total, 2);
    let events: kmslab_api::EventList = round_trips(&get_json(host.admin, "/api/v1/events").await);
    assert_eq!(events.events.len(), 2);
    assert!(events.events.iter().all(|e| e.event_id == Some(12290) && e.kind.as_deref() == Some("request_received")));
    host.stop().await;
}

#[tokio::test]
async fn slmgr_dlv_and_dli_all_on_a_host_show_every_license() {
    let slmgr = slmgr_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.host_key_groups = vec!["kms-b".into(), "office-2010".into()];
    let host = TestHost::start(c).await;
    response(ask_once(host.kms, &request("win7-enterprise")).await);
    let target = host.admin.to_string();
    let run = |args: &'static [&'static str]| {
        let (slmgr, target) = (slmgr.clone(), target.clone());
        tokio::task::spawn_blocking(move || {
            let out = Command::new(slmgr).arg("--target").arg(target).args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let dlv = run(&["/dlv"]).await.unwrap();
    let line = |text: &str, prefix: &str| {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?}:\n{text}")).to_owned()
    };
    assert!(line(&dlv, "Software licensing service version: ").starts_with("Software licensing service version: 6.1.7600.16385 (kmslab "));
    assert_eq!(line(&dlv, "Application ID: "), "Application ID: 55c92734-d682-4d71-983e-d6ec3f16059f");
    let activation_id = kmslab_core::install_id::host_activation_id("kms-b").to_string();
    assert_eq!(line(&dlv, "Activation ID: "), format!("Activation ID: {activation_id}"));
    assert!(kmslab_core::epid::is_valid(line(&dlv, "Extended PID: ").trim_start_matches("Extended PID: ")), "{dlv}");
    assert_eq!(line(&dlv, "Remaining Windows rearm count: "), "Remaining Windows rearm count: 3");
    // slmgr's en-US time: M/D/YYYY h:mm:ss AM|PM.
    let trusted = line(&dlv, "Trusted time: ");
    let trusted = trusted.trim_start_matches("Trusted time: ");
    let (date, rest) = trusted.split_once(' ').unwrap();
    assert_eq!(date.split('/').count(), 3, "{trusted}");
    assert!(rest.ends_with(" AM") || rest.ends_with(" PM"), "{trusted}");
    assert_eq!(dlv.matches("Name: ").count(), 1, "/dlv shows the primary license:\n{dlv}");

    let all = run(&["/dli", "all"]).await.unwrap();
    assert_eq!(all.matches("Name: ").count(), 2, "{all}");
    assert!(all.contains("Name: Windows Server(R), ServerEnterprise edition"), "{all}");
    assert!(all.contains("Name: Office 14, OfficeKMSHostVL edition"), "{all}");
    assert_eq!(all.matches("Key Management Service is enabled on this machine").count(), 1, "{all}");
    host.stop().await;
}
