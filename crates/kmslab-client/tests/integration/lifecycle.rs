//! The activation lifecycle against a real host at a high time scale.

use kmslab_core::time::MINUTE_MS;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_threshold_retries_then_licensed_then_renewal_restarts_the_180_days() {
    // 15-minute intervals at 3600x: one simulated interval every 0.25 real seconds.
    let host = TestHost::start(15, 15).await;
    let mut cfg = config(3600.0);
    cfg.product = product("win7-enterprise");
    cfg.kms = Some(host.addr.to_string().parse().unwrap());
    let client = TestClient::start(cfg).await;

    // Below the threshold (count 1 of 25): Initial grace, 0xC004F038, retries.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while host.request_count() < 4 {
        assert!(std::time::Instant::now() < deadline, "the client did not retry");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let s = client.status().await;
    assert_eq!(s["status"], "initial_grace", "{s:#}");
    assert_eq!(s["status_label"], "Initial grace period");
    assert_eq!(s["last_result"]["hresult"], "0xC004F038");
    assert_eq!(s["current_count"], 1);
    assert_eq!(s["activation_interval"], 15, "the host's interval replaces the client's");
    let times: Vec<i64> = host.requests.lock().unwrap().iter().map(|r| r.client_time.as_unix_ms()).collect();
    for pair in times.windows(2).skip(1) {
        let gap = (pair[1] - pair[0]) / MINUTE_MS;
        // One activation interval apart (scheduling jitter at 3600x is a few simulated minutes).
        assert!((15..=40).contains(&gap), "retry gap {gap} min in {times:?}");
    }
    let events = client.events().await;
    assert!(events.iter().any(|e| e["event_id"] == 12288));
    assert!(events.iter().any(|e| e["event_id"] == 12289 && e["fields"]["result"] == "0xC004F038"));

    // The count is reached: Licensed for 180 days.
    let last = host.requests.lock().unwrap().last().unwrap().client_time;
    host.add_machines(24, 25, last);
    let s = client.wait_status(20, "Licensed", |s| s["status"] == "licensed").await;
    assert_eq!(s["last_result"]["hresult"], "0x00000000");
    assert!(s["current_count"].as_u64().unwrap() >= 25);
    let minutes = s["minutes_remaining"].as_u64().unwrap();
    assert!((259_100..=259_200).contains(&minutes), "{minutes}");
    let first_valid = ts(&s["valid_until"]);

    // A renewal (every 15 simulated minutes here) restarts the 180 days.
    let s = client.wait_status(20, "a renewal", |s| ts(&s["valid_until"]) > first_valid).await;
    assert_eq!(s["status"], "licensed");
    assert!(ts(&s["valid_until"]).ms_since(first_valid) >= 15 * MINUTE_MS);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_reminder_every_60_simulated_minutes() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), |s| {
        s.status = kmslab_core::LicenseStatus::Notification;
        s.notification_reason = Some(kmslab_core::HResult::GRACE_EXPIRED);
        s.grace_end = None;
    });
    // 36000x: 60 simulated minutes every 0.1 real seconds.
    let mut cfg = config(36_000.0);
    cfg.state_dir = Some(dir.path().to_owned());
    let client = TestClient::start(cfg).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let reminders = loop {
        let r: Vec<_> = client.events().await.into_iter().filter(|e| e["kind"] == "notification_reminder").collect();
        if r.len() >= 4 {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "only {} reminders", r.len());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(reminders.iter().all(|e| e["fields"]["reason"] == "0xC004F009"));
    let at: Vec<i64> = reminders.iter().map(|e| ts(&e["fields"]["at"]).as_unix_ms()).collect();
    for pair in at.windows(2) {
        // Never more often than hourly, and on the hour's rhythm: the core stamps a
        // reminder with its scheduled time, so a driver that wakes late (at 36000x one real
        // millisecond is 36 simulated seconds) cannot shorten a gap; only a wake-up a whole
        // slot late restarts the rhythm (a gap of two hours or more).
        let gap_ms = pair[1] - pair[0];
        assert!(gap_ms == 60 * MINUTE_MS || gap_ms >= 120 * MINUTE_MS, "reminder gap {} min: {at:?}", gap_ms / MINUTE_MS);
    }
    client.stop().await;
}
