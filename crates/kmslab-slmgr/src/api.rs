//! slmgr's requests to a daemon's admin API (small JSON bodies, one address per run),
//! through the workspace's one HTTP client, `kmslab-http` (blocking: no async runtime).

use std::time::Duration;

use anyhow::{anyhow, bail};
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
    /// `--machine NAME`: `target` is a lab's control plane and `/api/v1/X` means
    /// `/api/v1/lab/machines/NAME/X` (same bodies, same answers as a kms-client's).
    pub machine: Option<String>,
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
    /// The path a request for `path` (`/api/v1/...`) goes to: itself, or the lab
    /// machine's with `--machine`.
    pub fn path(&self, path: &str) -> String {
        match (&self.machine, path.strip_prefix("/api/v1/")) {
            (Some(name), Some(rest)) => format!("/api/v1/lab/machines/{name}/{rest}"),
            _ => path.to_owned(),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request("POST", path, Some(body))
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
        let path = self.path(path);
        let payload = body.map(Value::to_string);
        let request = kmslab_http::Request {
            method,
            address: &self.target,
            path: &path,
            json: payload.as_deref(),
            bearer: self.token.as_deref(),
            connect_timeout: Duration::from_secs(5),
            timeout: self.timeout,
        };
        let answer = kmslab_http::request(&request).map_err(|e| match e {
            kmslab_http::Error::Address(reason) => anyhow!("invalid --target {:?}: {reason}", self.target),
            kmslab_http::Error::Connect(..) => {
                anyhow!("cannot reach the kmslab daemon at {} (is it running? see --target): {e}", self.target)
            }
            kmslab_http::Error::Exchange(..) => anyhow!("no answer from {}: {e}", self.target),
        })?;
        Ok(Reply::from_text(answer.status, answer.body))
    }
}

impl Reply {
    /// An answer's status and body text, the body parsed as JSON when it is JSON.
    fn from_text(status: u16, text: String) -> Reply {
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_carries_the_daemons_message() {
        let r = Reply::from_text(400, r#"{"error":"x"}"#.into());
        assert_eq!(r.ok().unwrap_err().to_string(), "x (HTTP 400)");
        let r = Reply::from_text(502, "bad gateway\n".into());
        assert!(r.body.is_null());
        assert_eq!(r.ok().unwrap_err().to_string(), "bad gateway (HTTP 502)");
        assert_eq!(Reply::from_text(200, r#"{"a":"b"}"#.into()).ok().unwrap()["a"], "b");
    }
}
