//! Fuzz target: arbitrary UTF-8 as a `kms-host --config` file, through
//! `config::parse_file` and `config::validate_file` (the validation `kms-host` runs, without
//! the flags, the environment or the disk). It never panics; a refusal is one non-empty line
//! without control characters, naming the file or the setting; an accepted file gives a
//! configuration within the documented ranges whose clock and rate limiter work, and that
//! configuration written back as a file (`canonical`) is accepted again and gives the same
//! configuration.
#![no_main]

use std::time::Duration;

use kmslab_host::access::RateLimiter;
use kmslab_host::config::{self, HostConfig};
use kmslab_host::publish::REPUBLISH_MS;
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;
use toml::Value;

fuzz_target!(|text: &str| {
    let file = match config::parse_file(text) {
        Ok(file) => file,
        Err(e) => {
            let e = e.to_string();
            check_refusal(&e);
            assert!(e.starts_with("invalid config file: "), "{e}");
            return;
        }
    };
    let config = match config::validate_file(file.clone()) {
        Ok(config) => config,
        Err(e) => {
            let e = e.to_string();
            check_refusal(&e);
            assert!(e.contains("key `") || e.contains(" --"), "the refusal names no key or flag: {e}");
            return;
        }
    };
    check_ranges(&config);
    let canonical = canonical(&config);
    // Validation is a function of the file alone.
    let twice = config::validate_file(file).expect("the same file was accepted a moment ago");
    assert_eq!(self::canonical(&twice), canonical, "validating the same file twice gave two configurations");
    // What was accepted, written back with the values as validation left them, is accepted
    // again with the same values: every value kms-host keeps is one it would accept.
    let again = config::parse_file(&canonical)
        .and_then(config::validate_file)
        .unwrap_or_else(|e| panic!("the configuration written back is refused: {e}\n{canonical}"));
    assert_eq!(self::canonical(&again), canonical, "the configuration written back validates to another one");
});

/// A refusal is one non-empty line without control characters (`kms-host` prints it as
/// its only output line).
fn check_refusal(message: &str) {
    assert!(!message.trim().is_empty(), "empty refusal");
    assert!(!message.chars().any(char::is_control), "a refusal with a control character: {message:?}");
}

/// The documented ranges of the values, and what kms-host does with them at start.
fn check_ranges(c: &HostConfig) {
    assert!(!c.listen.is_empty());
    assert!(!c.host_key_groups.is_empty());
    for g in &c.host_key_groups {
        assert!(c.catalog.host_key_group(g).is_some(), "unknown host key group {g:?} accepted");
    }
    for m in [c.activation_interval, c.renewal_interval].into_iter().flatten() {
        assert!((15..=43_200).contains(&m), "interval {m}");
    }
    if let Some(epid) = &c.epid {
        assert!(kmslab_core::epid::is_valid(epid), "{epid:?}");
    }
    // An admin token is kept only as a digest (kmslab-admin refuses empty tokens and
    // tokens with white space or control characters when it is made); never shown.
    if let Some(token) = &c.admin_token {
        assert!(!format!("{token:?}").contains("digest"), "{token:?}");
    }
    if let Some(limit) = c.rate_limit {
        assert!(limit.per_second.is_finite() && limit.per_second > 0.0 && limit.burst >= 1.0, "{limit:?}");
        // A source's first request always passes (the bucket starts full).
        let limiter = RateLimiter::new(limit, 2);
        let now = Instant::now();
        assert!(limiter.check([192, 0, 2, 1].into(), now), "{limit:?} refuses a first request");
        let _ = limiter.check([192, 0, 2, 1].into(), now + Duration::from_secs(1));
    }
    assert!((1..=1_000_000).contains(&c.max_connections));
    assert!((1..=86_400).contains(&c.idle_timeout.as_secs()) && c.idle_timeout.subsec_nanos() == 0);
    assert!((1..=604_800).contains(&c.dns.ttl));
    assert!(c.psk.is_none() && c.dns.tsig.as_ref().is_none_or(|k| !k.secret.is_empty()));
    if c.dns.active() {
        // The server's address is known only when publishing (a name is resolved then).
        let server = std::net::SocketAddr::from(([127, 0, 0, 1], 53));
        assert!(matches!(c.dns.publisher(1688, server, c.dns.address), Ok(Some(_))), "an active DNS configuration has no publisher");
    }
    // The simulated clock (`HostConfig::clock` relies on validation) and the horizon the
    // host schedules with it: the daily DNS republish.
    let clock = c.clock();
    let now = clock.now();
    assert!(!now.to_string().is_empty());
    let _ = clock.real_duration(REPUBLISH_MS);
    let _ = clock.deadline(now.plus_ms(REPUBLISH_MS));
}

/// The configuration as a config file, every value written as validation left it (lists
/// and optional values only when set), keys sorted: equal texts mean equal configurations
/// (catalog and pre-shared key aside: `validate_file` reads neither).
fn canonical(c: &HostConfig) -> String {
    let mut t = toml::Table::new();
    let mut put = |key: &str, value: Value| {
        t.insert(key.to_owned(), value);
    };
    let text = |s: &dyn ToString| Value::String(s.to_string());
    let list = |items: Vec<String>| Value::Array(items.into_iter().map(Value::String).collect());
    if c.listen_explicit {
        put("listen", list(c.listen.iter().map(ToString::to_string).collect()));
    }
    put("admin", text(&c.admin));
    put("data_dir", Value::String(c.data_dir.to_str().expect("a path from TOML text is UTF-8").to_owned()));
    put("host_key_group", Value::String(c.host_key_groups.join(",")));
    put("unactivated", Value::Boolean(!c.activated));
    if let Some(m) = c.activation_interval {
        put("activation_interval", Value::Integer(m.into()));
    }
    if let Some(m) = c.renewal_interval {
        put("renewal_interval", Value::Integer(m.into()));
    }
    if let Some(epid) = &c.epid {
        put("epid", text(epid));
    }
    put("keep_count", Value::Boolean(c.keep_count));
    // The token's text is not kept (only its digest): any one valid token stands for it,
    // so two configurations with a token compare equal here.
    if c.admin_token.is_some() {
        put("admin_token", Value::String("canonical-token".to_owned()));
    }
    put("admin_read_network", list(c.admin_read_networks.iter().map(ToString::to_string).collect()));
    put("admin_local_network", list(c.admin_local_networks.iter().map(ToString::to_string).collect()));
    put("allow", list(c.allow.iter().map(ToString::to_string).collect()));
    if let Some(limit) = c.rate_limit {
        put("rate_limit", Value::String(format!("{},{}", limit.per_second, limit.burst)));
    }
    put("time_scale", Value::Float(c.time_scale));
    if let Some(origin) = c.time_origin {
        put("time_origin", text(&origin));
    }
    put("max_connections", Value::Integer(c.max_connections as i64));
    put("idle_timeout", Value::Integer(c.idle_timeout.as_secs() as i64));
    // Both print as their variant name: Text/Json, Full/Normal.
    put("log_format", Value::String(format!("{:?}", c.log_format).to_lowercase()));
    put("registry_sync", Value::String(format!("{:?}", c.registry_sync).to_lowercase()));
    let dns = &c.dns;
    if let Some(server) = &dns.server {
        put("dns_server", text(server));
    }
    if !dns.zones.is_empty() {
        put("dns_zone", list(dns.zones.iter().map(ToString::to_string).collect()));
    }
    if let Some(hostname) = &dns.hostname {
        put("dns_hostname", text(hostname));
    }
    if let Some(address) = dns.address {
        put("dns_address", text(&address));
    }
    if let Some(name) = &dns.address_name {
        put("dns_address", text(name));
    }
    put("dns_ttl", Value::Integer(dns.ttl.into()));
    put("no_dns_publish", Value::Boolean(!dns.publish));
    if let Some(key) = &dns.tsig {
        put("tsig_key", text(key));
    }
    put("unpublish_on_exit", Value::Boolean(dns.unpublish_on_exit));
    toml::to_string(&t).expect("a table of strings, numbers and lists serializes")
}
