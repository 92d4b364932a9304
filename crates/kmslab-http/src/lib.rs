//! The one HTTP/1.1 client of kmslab: `slmgr`, `kmslab health` and the drills talk to the
//! daemons' admin APIs through [`request`], a blocking call over `ureq` (plain http only).
//!
//! The `Host` header names the address connected to, not the name given: the daemons
//! accept any IP address there but only names they were given (`--admin-host`, their
//! defence against DNS rebinding), and callers must work with any name that resolves.
//! Every status is an answer ([`Response`]), not an error: the caller decides what a 4xx
//! means.
#![forbid(unsafe_code)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// One request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// `HOST:PORT` of the server (a name or an IP address).
    pub address: &'a str,
    /// The path and query, starting with `/`.
    pub path: &'a str,
    /// A JSON body (sent with `Content-Type: application/json`).
    pub json: Option<&'a str>,
    /// `Authorization: Bearer TOKEN`.
    pub bearer: Option<&'a str>,
    /// Allowed for connecting.
    pub connect_timeout: Duration,
    /// Allowed for the whole exchange.
    pub timeout: Duration,
}

impl<'a> Request<'a> {
    /// `GET path` from `address` with `timeout` for connecting and for the whole exchange.
    pub fn get(address: &'a str, path: &'a str, timeout: Duration) -> Self {
        Request { method: "GET", address, path, json: None, bearer: None, connect_timeout: timeout, timeout }
    }
}

/// An answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why no answer came.
#[derive(Debug)]
pub enum Error {
    /// The address is not `HOST:PORT` or resolves to nothing.
    Address(String),
    /// Connecting failed (refused, unreachable, timed out).
    Connect(SocketAddr, String),
    /// Connected, but no complete answer (closed, timed out, not HTTP).
    Exchange(SocketAddr, String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Address(reason) => f.write_str(reason),
            Error::Connect(addr, reason) => write!(f, "cannot connect to {addr}: {reason}"),
            Error::Exchange(addr, reason) => write!(f, "no answer from {addr}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// The first address `address` (`HOST:PORT`) resolves to.
pub fn resolve(address: &str) -> Result<SocketAddr, Error> {
    let mut addrs = address.to_socket_addrs().map_err(|e| Error::Address(format!("invalid address {address:?}: {e}")))?;
    addrs.next().ok_or_else(|| Error::Address(format!("{address:?} resolves to no address")))
}

/// Sends `request` and reads the whole answer.
pub fn request(request: &Request<'_>) -> Result<Response, Error> {
    let addr = resolve(request.address)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(request.connect_timeout))
        .timeout_global(Some(request.timeout))
        .build()
        .into();
    let uri = format!("http://{addr}{}", request.path);
    let mut builder = ureq::http::Request::builder().method(request.method).uri(&uri).header("Accept", "application/json");
    if let Some(token) = request.bearer {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    let result = match request.json {
        Some(json) => {
            let http = builder
                .header("Content-Type", "application/json")
                .body(json.to_owned())
                .map_err(|e| Error::Address(format!("invalid request {uri:?}: {e}")))?;
            agent.run(http)
        }
        None => {
            let http = builder.body(()).map_err(|e| Error::Address(format!("invalid request {uri:?}: {e}")))?;
            agent.run(http)
        }
    };
    let mut answer = result.map_err(|e| match e {
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::Timeout(ureq::Timeout::Connect) => {
            Error::Connect(addr, e.to_string())
        }
        other => Error::Exchange(addr, other.to_string()),
    })?;
    let status = answer.status().as_u16();
    let bytes = answer.body_mut().read_to_vec().map_err(|e| Error::Exchange(addr, e.to_string()))?;
    Ok(Response { status, body: String::from_utf8_lossy(&bytes).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A server for one connection: records the request head and sends `answer` as is.
    fn one_answer(answer: &'static str) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                head.push(line.trim().to_owned());
            }
            stream.write_all(answer.as_bytes()).unwrap();
            head
        });
        (format!("localhost:{port}"), server)
    }

    #[test]
    fn a_chunked_error_answer_is_read_whole_and_the_host_header_is_the_address() {
        let (address, server) =
            one_answer("HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"err\r\n8\r\nor\":\"x\"}\r\n0\r\n\r\n");
        let mut req = Request::get(&address, "/api/v1/status", Duration::from_secs(10));
        req.bearer = Some("t0k");
        let answer = request(&req).unwrap();
        assert_eq!(answer, Response { status: 400, body: "{\"error\":\"x\"}".into() });
        assert!(!answer.is_success());
        let head = server.join().unwrap();
        assert_eq!(head[0], "GET /api/v1/status HTTP/1.1");
        let host = head.iter().find(|l| l.to_ascii_lowercase().starts_with("host:")).unwrap();
        let port = address.rsplit_once(':').unwrap().1;
        assert!(host.ends_with(&format!("127.0.0.1:{port}")) || host.ends_with(&format!("[::1]:{port}")), "{host}");
        assert!(head.iter().any(|l| l == "authorization: Bearer t0k" || l == "Authorization: Bearer t0k"), "{head:?}");
    }

    #[test]
    fn nothing_listening_is_a_connect_error_naming_the_address() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let err = request(&Request::get(&address, "/", Duration::from_secs(5))).unwrap_err();
        assert!(matches!(err, Error::Connect(..)), "{err:?}");
        assert!(err.to_string().contains(&address), "{err}");
        assert!(matches!(resolve("no-port"), Err(Error::Address(_))));
    }
}
