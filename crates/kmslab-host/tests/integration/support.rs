//! Test support: an in-process host on port 0, a small KMS client, and the admin API over
//! kmslab's HTTP client.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kmslab_core::catalog::Catalog;
use kmslab_core::wire::{KMS_PROTOCOL_V4, Message, Request};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};
use kmslab_host::HostConfig;
use kmslab_runtime::framed::{read_message, write_message};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A host running in this process.
pub struct TestHost {
    pub kms: SocketAddr,
    pub admin: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// A config on 127.0.0.1 with its registry in `dir`.
pub fn config(dir: &Path) -> HostConfig {
    let mut c = HostConfig::with_data_dir(dir);
    c.idle_timeout = Duration::from_secs(5);
    c
}

impl TestHost {
    pub async fn start(config: HostConfig) -> TestHost {
        let kms_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let kms = kms_listener.local_addr().unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            kmslab_host::run(vec![kms_listener], admin_listener, config, token).await.unwrap();
        });
        let host = TestHost { kms, admin, shutdown, task };
        // Ready once the admin API answers (the registry is open by then); generous for a
        // busy machine.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if let Ok((200, _)) = http(host.admin, "GET", "/healthz", None).await {
                return host;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("host did not come up within 60 s");
    }

    /// Cancels and waits until the registry is closed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task).await.expect("host drains in time").unwrap();
    }

    pub async fn status(&self) -> Value {
        let (code, body) = http(self.admin, "GET", "/api/v1/status", None).await.unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

pub fn now() -> Timestamp {
    Timestamp::from_unix_ms(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64)
}

/// A request for `product` (a catalog name) from a new random CMID.
pub fn request(product: &str) -> Request {
    let catalog = Catalog::builtin();
    let p = catalog.product_by_name(product).unwrap_or_else(|| panic!("no product {product}"));
    Request {
        protocol: KMS_PROTOCOL_V4,
        vm: false,
        license_status: LicenseStatus::InitialGrace,
        minutes_to_expiry: 43_200,
        application_id: p.application_id,
        activation_id: p.activation_id,
        kms_counted_id: p.kms_counted_id,
        cmid: Uuid::new_v4(),
        previous_cmid: Uuid::nil(),
        n_policy: p.required_count,
        client_time: now(),
        machine_name: "test-machine".into(),
    }
}

/// A KMS connection that can send several requests.
pub struct KmsConn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

impl KmsConn {
    pub async fn connect(addr: SocketAddr) -> KmsConn {
        KmsConn { stream: TcpStream::connect(addr).await.unwrap(), rbuf: Vec::new(), wbuf: Vec::new() }
    }

    pub async fn ask(&mut self, req: &Request) -> Message {
        write_message(&mut self.stream, &Message::Request(req.clone()), &mut self.wbuf).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), read_message(&mut self.stream, &mut self.rbuf))
            .await
            .expect("answer in time")
            .unwrap()
            .expect("an answer, not a close")
    }

    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Sends raw bytes, then returns what comes back: `Some(message)` or `None` for a close.
    pub async fn send_raw(&mut self, bytes: &[u8], then_shutdown: bool) -> Option<Message> {
        self.stream.write_all(bytes).await.unwrap();
        if then_shutdown {
            self.stream.shutdown().await.unwrap();
        }
        let answer = tokio::time::timeout(Duration::from_secs(10), read_message(&mut self.stream, &mut self.rbuf))
            .await
            .expect("answer or close in time");
        let msg = answer.ok().flatten();
        if msg.is_some() {
            // After an error frame the host closes the connection.
            let mut rest = [0u8; 16];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut rest)).await.expect("close in time").unwrap_or(0);
            assert_eq!(n, 0, "connection closed after the error frame");
        }
        msg
    }
}

/// One request on a fresh connection.
pub async fn ask_once(addr: SocketAddr, req: &Request) -> Message {
    KmsConn::connect(addr).await.ask(req).await
}

/// One HTTP/1.1 exchange with the admin API (kmslab's own client, `kmslab-http`, through
/// `kmslab-test-support`, on a blocking thread): `(status, body)`; a POST carries its JSON
/// content type (empty body when `None`).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let json = (method != "GET" && method != "HEAD").then(|| body.unwrap_or("").to_owned());
    let (method, path) = (method.to_owned(), path.to_owned());
    let answer = tokio::task::spawn_blocking(move || kmslab_test_support::http(addr, &method, &path, json.as_deref()))
        .await
        .expect("the exchange does not panic")
        .map_err(std::io::Error::other)?;
    Ok((answer.status, answer.body))
}

pub async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (code, body) = http(addr, "GET", path, None).await.unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

pub fn response(msg: Message) -> kmslab_core::wire::Response {
    match msg {
        Message::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

pub fn error_frame(msg: Message) -> kmslab_core::wire::ErrorFrame {
    match msg {
        Message::Error(e) => e,
        other => panic!("expected an error frame, got {other:?}"),
    }
}
