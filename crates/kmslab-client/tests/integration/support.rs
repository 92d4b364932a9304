//! Test support: a small real KMS host (the core's ledger behind a TCP listener), the
//! client run in-process, its control API over kmslab's HTTP client, and a real BIND9 named.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kmslab_client::{ClientConfig, persist};
use kmslab_core::Timestamp;
use kmslab_core::activator::Activator;
use kmslab_core::catalog::Catalog;
use kmslab_core::ledger::{HostSettings, Ledger};
use kmslab_core::rng::{KmsRng, SplitMix64};
use kmslab_core::wire::{ErrorFrame, Message, Request};
use kmslab_runtime::framed::{read_message, write_message};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A minimal KMS host: the core's ledger on a real TCP listener. It takes the request's
/// own client time as "now", so it never disagrees with the client about the clock.
pub struct TestHost {
    pub addr: SocketAddr,
    pub ledger: Arc<Mutex<Ledger>>,
    pub requests: Arc<Mutex<Vec<Request>>>,
    task: Option<JoinHandle<()>>,
}

impl TestHost {
    pub async fn start(activation_interval: u32, renewal_interval: u32) -> Self {
        let settings = HostSettings {
            key_groups: vec!["kms-c".into()],
            activated: true,
            activation_interval,
            renewal_interval,
            epid: "55041-00168-305-123456-03-1033-7600.0000-0012026".into(),
        };
        let ledger = Arc::new(Mutex::new(Ledger::new(settings, Arc::new(Catalog::builtin()))));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (l, r) = (ledger.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                let (l, r) = (l.clone(), r.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Ok(Some(Message::Request(req))) = read_message(&mut stream, &mut buf).await {
                        r.lock().unwrap().push(req.clone());
                        let answer = match l.lock().unwrap().handle_request(&req, req.client_time) {
                            Ok(resp) => Message::Response(resp),
                            Err(refusal) => {
                                Message::Error(ErrorFrame { hresult: refusal.hresult, cmid: req.cmid, message: refusal.reason.to_owned() })
                            }
                        };
                        if write_message(&mut stream, &answer, &mut buf).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        TestHost { addr, ledger, requests, task: Some(task) }
    }

    /// Puts `n` other machines into the host's count (as if they had asked at `now`).
    pub fn add_machines(&self, n: usize, n_policy: u32, now: Timestamp) {
        let catalog = Catalog::builtin();
        let windows = catalog.counted_group_by_name("windows").unwrap().kms_counted_id;
        let mut rng = SplitMix64::new(now.as_unix_ms() as u64);
        let mut l = self.ledger.lock().unwrap();
        for _ in 0..n {
            l.restore_cmid(windows, rng.uuid_v4(), n_policy, now, now);
        }
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Stops listening: later connections are refused.
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A kms-client running in-process.
pub struct TestClient {
    pub admin: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl TestClient {
    pub async fn start(config: ClientConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { kmslab_client::run(config, listener, token).await.unwrap() });
        TestClient { admin, shutdown, task: Some(task) }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = http(self.admin, "GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POSTs and returns (HTTP status, body).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        http(self.admin, "POST", path, Some(body)).await
    }

    pub async fn status(&self) -> Value {
        self.get("/api/v1/status").await
    }

    pub async fn ato(&self) -> Value {
        let (status, body) = self.post("/api/v1/ato", serde_json::json!({})).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn events(&self) -> Vec<Value> {
        self.get("/api/v1/events").await["events"].as_array().unwrap().clone()
    }

    /// Polls the status until `pred` holds (or panics after `secs` real seconds).
    pub async fn wait_status(&self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status().await;
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; status: {s:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A config for tests: the given scale from process start (origin = now), short timeouts.
pub fn config(scale: f64) -> ClientConfig {
    let mut c = ClientConfig { time_scale: scale, time_origin: None, machine_name: Some("test-pc".into()), ..ClientConfig::default() };
    c.timeouts.connect = Duration::from_secs(2);
    c.timeouts.response = Duration::from_secs(3);
    c.timeouts.dns = Duration::from_secs(2);
    c
}

pub fn product(name: &str) -> Option<Arc<kmslab_core::catalog::Product>> {
    Some(Catalog::builtin().product_by_name(name).unwrap().clone())
}

/// One HTTP/1.1 exchange with the control API (kmslab's own client, `kmslab-http`, through
/// `kmslab-test-support`, on a blocking thread): the status and the JSON body (the text as a
/// JSON string when it is not JSON).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let (method, path) = (method.to_owned(), path.to_owned());
    // A POST always carries its JSON content type (the guard refuses one without).
    let json = move |m: &str| (m != "GET" && m != "HEAD").then_some(payload);
    let answer = tokio::task::spawn_blocking(move || kmslab_test_support::http(addr, &method, &path, json(&method).as_deref()))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    (answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body)))
}

pub fn ts(v: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"))).unwrap()
}

/// The wall clock as the core's timestamp (what a host on real time compares with).
pub fn wall_now() -> Timestamp {
    Timestamp::from_unix_ms(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

/// A Windows 7 Enterprise request in initial grace from `machine_name`, sent now.
pub fn win7_request(cmid: uuid::Uuid, machine_name: &str) -> Request {
    let catalog = Catalog::builtin();
    let p = catalog.product_by_name("win7-enterprise").unwrap();
    Request {
        protocol: kmslab_core::wire::KMS_PROTOCOL_V4,
        vm: false,
        license_status: kmslab_core::license::LicenseStatus::InitialGrace,
        minutes_to_expiry: 43_200,
        application_id: p.application_id,
        activation_id: p.activation_id,
        kms_counted_id: p.kms_counted_id,
        cmid,
        previous_cmid: uuid::Uuid::nil(),
        n_policy: 25,
        client_time: wall_now(),
        machine_name: machine_name.into(),
    }
}

/// Writes a state as a restarted machine would find it.
pub fn write_state(dir: &std::path::Path, edit: impl FnOnce(&mut kmslab_core::activator::ActivatorState)) {
    let catalog = Catalog::builtin();
    let now = wall_now();
    let p = catalog.product_by_name("win7-enterprise").unwrap().clone();
    let a = Activator::new(p, SplitMix64::new(42).uuid_v4(), "test-pc", now);
    let mut state = a.state().clone();
    state.manual_host = Some("127.0.0.1:9".parse().unwrap());
    state.next_attempt = None;
    edit(&mut state);
    persist::save(dir, &state).unwrap();
}

/// A `named` serving one zone from `zone_text` (`kmslab-test-support`'s); killed (by its
/// PID) when dropped.
pub struct Bind {
    pub addr: SocketAddr,
    _named: kmslab_test_support::Named,
}

impl Bind {
    pub fn start(zone: &str, zone_text: &str) -> Self {
        let named = kmslab_test_support::Named::start(&[kmslab_test_support::Zone::fixed(zone, zone_text)], &[]);
        Bind { addr: named.addr, _named: named }
    }
}
