//! `kmslab health URL`: one HTTP GET that exits 0 on a 2xx answer and 1 otherwise, so a
//! `FROM scratch` image (no curl, no shell) can run docker healthchecks on `/healthz`.
//! The request goes through the workspace's one HTTP client (`kmslab-http`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

/// Arguments of `kmslab health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// URL to check, e.g. http://127.0.0.1:8688/healthz (plain http only)
    pub url: String,
    /// Seconds allowed for connecting and for the answer
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Splits `http://HOST:PORT/PATH` into the address and the path.
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else { bail!("only http:// URLs are supported: {url}") };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("no host in {url}");
    }
    // A missing port means 80, as in any URL; `[v6]:port` and `host:port` pass through.
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| !p.is_empty() && (!h.contains(':') || h.ends_with(']')));
    let address = if has_port { authority.to_owned() } else { format!("{authority}:80") };
    Ok((address, path.to_owned()))
}

/// Runs the check; prints the status line (or the reason) on stderr only when it fails.
pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let (address, path) = split_url(&args.url).context("invalid URL")?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    match get_status(&address, &path, timeout) {
        Ok(code) if (200..300).contains(&code) => Ok(ExitCode::SUCCESS),
        Ok(code) => {
            eprintln!("kmslab: health: {} answered HTTP {code}", args.url);
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("kmslab: health: {}: {e:#}", args.url);
            Ok(ExitCode::from(1))
        }
    }
}

fn get_status(address: &str, path: &str, timeout: Duration) -> anyhow::Result<u16> {
    Ok(kmslab_http::request(&kmslab_http::Request::get(address, path, timeout))?.status)
}

#[cfg(test)]
mod tests {
    use super::split_url;

    fn check(url: &str, expected: Option<(&str, &str)>) {
        let got = split_url(url).ok();
        assert_eq!(got.as_ref().map(|(a, p)| (a.as_str(), p.as_str())), expected, "{url}");
    }

    #[test]
    fn urls_split_into_address_and_path() {
        check("http://127.0.0.1:8688/healthz", Some(("127.0.0.1:8688", "/healthz")));
        check("http://kms1:8688", Some(("kms1:8688", "/")));
        check("http://kms1/healthz", Some(("kms1:80", "/healthz")));
        check("http://[::1]:8688/healthz", Some(("[::1]:8688", "/healthz")));
        check("https://kms1/healthz", None);
        check("http:///healthz", None);
    }
}
