//! A tiny HTTP/1.1 client for the daemons' admin APIs (loopback JSON, `Connection: close`).
//!
//! slmgr talks to one address per run with small JSON bodies, so a blocking std socket is
//! all it needs; no HTTP library is pulled in for it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// What every verb gets: where the daemon is and how to print.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `host:port` of the daemon's admin address.
    pub target: String,
    /// Print JSON instead of slmgr's text.
    pub json: bool,
    /// Bearer token for mutating requests (`--admin-token` / `KMSLAB_ADMIN_TOKEN`).
    pub token: Option<String>,
    /// How long to wait for the daemon (an `/ato` can take a while).
    pub timeout: Duration,
}

/// An HTTP answer: status code and parsed JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: Value,
    /// The raw body text.
    pub text: String,
}

impl Reply {
    /// The body if the status is 2xx, else an error carrying the daemon's message.
    pub fn ok(self) -> anyhow::Result<Value> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            let msg = self.body.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| self.text.trim().to_owned());
            bail!("{msg} (HTTP {})", self.status)
        }
    }
}

impl Ctx {
    /// `GET path`.
    pub fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request("POST", path, Some(body))
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
        let addr = self
            .target
            .to_socket_addrs()
            .with_context(|| format!("invalid --target {:?}", self.target))?
            .next()
            .ok_or_else(|| anyhow!("--target {:?} resolves to no address", self.target))?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("cannot reach the kmslab daemon at {} (is it running? see --target)", self.target))?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        // The Host header names the address connected to, not the --target text: the daemons
        // accept any IP address there but only names they were given (--admin-host), their
        // defence against DNS rebinding, and slmgr must work with any name that resolves.
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if body.is_some() {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", payload.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(payload.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).with_context(|| format!("no answer from {}", self.target))?;
        parse_response(&raw)
    }
}

fn parse_response(raw: &[u8]) -> anyhow::Result<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow!("malformed HTTP answer"))?;
    let head = std::str::from_utf8(&raw[..split]).context("malformed HTTP header")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply { status, body: json, text })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow!("bad chunked body"))?;
        let size_text = std::str::from_utf8(&data[..eol])?.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"a\":\"b\"} ").unwrap();
        assert_eq!((r.status, r.body["a"].as_str()), (200, Some("b")));
        let r =
            parse_response(b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"err\r\n8\r\nor\":\"x\"}\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.ok().unwrap_err().to_string(), "x (HTTP 400)");
    }
}
