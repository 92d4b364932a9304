//! Every drill is a test: it fails when the drill's symptom or its outcome is not the
//! expected one. Drills wait on conditions with generous deadlines, never on fixed delays.

use kmslab_lab::drill::{DEFAULT_SCALE, DRILLS, DrillOutcome, run_drill};

async fn check(name: &str) -> DrillOutcome {
    let outcome = run_drill(name, DEFAULT_SCALE, false).await.expect("the drill's lab starts");
    assert!(outcome.passed, "drill {name} failed: {:?}\n{}", outcome.failures, outcome.transcript.join("\n"));
    assert_eq!(outcome.summary["drill"], name);
    assert_eq!(outcome.summary["passed"], true);
    for key in ["clients", "licensed", "initial_grace", "additional_grace", "notification", "unlicensed", "requests"] {
        assert!(outcome.summary[key].is_u64(), "{key} in {}", outcome.summary);
    }
    assert!(outcome.summary["errors"].is_object());
    outcome
}

#[test]
fn every_drill_has_a_test() {
    let source = include_str!("drills.rs");
    for (name, _) in DRILLS {
        let test_name = format!("async fn {}()", name.replace('-', "_"));
        assert!(source.contains(&test_name), "no test for drill {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_threshold() {
    check("below-threshold").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloned_cmid() {
    check("cloned-cmid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_failover() {
    check("host-failover").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_refused() {
    check("dns-refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_host_srv() {
    check("second-host-srv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_blocked() {
    check("port-blocked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_skew() {
    check("time-skew").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unactivated_host() {
    check("unactivated-host").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_group() {
    check("wrong-key-group").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_host() {
    let outcome = check("refusing-host").await;
    // The technician sees both hosts in one attempt: kms1's refusal, then kms2's answer.
    let requests: Vec<&String> = outcome.transcript.iter().filter(|l| l.contains("Event 12288")).collect();
    let refused =
        requests.iter().position(|l| l.contains("0xC004F041 SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED") && l.contains("kms1."));
    let answered = requests.iter().position(|l| l.contains("0x00000000") && l.contains("kms2."));
    assert!(matches!((refused, answered), (Some(r), Some(a)) if r < a), "{}", outcome.transcript.join("\n"));
    assert_eq!(outcome.summary["licensed"], 12, "{}", outcome.summary);
    assert!(outcome.summary["errors"].get("0xC004F074").is_none(), "no attempt ended with 0xC004F074: {}", outcome.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mak_exhausted() {
    let outcome = check("mak-exhausted").await;
    assert_eq!(outcome.summary["clients"], 6, "{}", outcome.summary);
    assert_eq!(outcome.summary["licensed"], 6, "{}", outcome.summary);
    assert_eq!(outcome.summary["errors"]["0xC004C020"], 2, "{}", outcome.summary);
    assert!(
        outcome.transcript.iter().any(|l| l.contains("Error: 0xC004C020 SL_E_CHPA_DMAK_LIMIT_EXCEEDED")),
        "{}",
        outcome.transcript.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oem_marker() {
    let outcome = check("oem-marker").await;
    let text = outcome.transcript.join("\n");
    assert!(text.contains("Error: 0xC004F035 SL_E_VL_NOT_WINDOWS_SLP"), "{text}");
    assert!(text.contains("The machine is permanently activated."), "{text}");
    assert_eq!(outcome.summary["licensed"], 1, "{}", outcome.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_to_mak() {
    let outcome = check("kms-to-mak").await;
    let text = outcome.transcript.join("\n");
    let mak = text.find("The machine is permanently activated.").expect("/xpr on the MAK machine");
    let kms = text.rfind("Volume activation will expire").expect("/xpr on the KMS client");
    assert!(mak < kms, "MAK first, then KMS again: {text}");
    assert!(text.contains("VOLUME_MAK channel") && text.contains("VOLUME_KMSCLIENT channel"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_offline() {
    let outcome = check("proxy-offline").await;
    let text = outcome.transcript.join("\n");
    assert!(text.contains("exported 2 computers") && text.contains("acquired 2 confirmation IDs"), "{text}");
    assert!(text.contains("imported 2 confirmation IDs"), "{text}");
    assert_eq!(outcome.summary["licensed"], 2, "{}", outcome.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_host_key() {
    let outcome = check("leaked-host-key").await;
    let text = outcome.transcript.join("\n");
    let grace = text.find("Windows is running within the non-genuine notification period.").expect("/ato in the non-genuine grace");
    let event = text.find("Event 8209: Genuine state set to non-genuine").expect("event 8209");
    let notification = text.find("Notification Reason: 0xC004F200 (non-genuine).").expect("/dli in Notification");
    let recovered = text.rfind("slmgr /ato on kms2: Product activated successfully.").expect("kms2 fixed");
    assert!(grace < event && event < notification && notification < recovered, "{text}");
    assert!(text.contains("License Status: Non-genuine grace period"), "{text}");
    assert!(text.contains("Error: 0xC004F064 SL_E_NONGENUINE_GRACE_TIME_EXPIRED"), "{text}");
    assert!(text.contains("result 0xC004F041 SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED"), "{text}");
    assert_eq!(outcome.summary["clients"], 10, "{}", outcome.summary);
    assert_eq!(outcome.summary["licensed"], 10, "{}", outcome.summary);
}
