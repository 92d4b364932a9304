//! The configuration's tests: flags, variables and files, and the pure file path the
//! `host_config` fuzz target drives.

mod load_tests {
    use super::super::*;
    use crate::access::RateLimit;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        std::iter::once("kms-host").chain(list.iter().copied()).map(Into::into).collect()
    }

    fn check_err(list: &[&str], needle: &str) {
        match load(args(list)) {
            // A value bad in itself is refused by clap, one that does not fit the others (or
            // names a file that does not work) by the configuration: both name the flag.
            Err(LoadError::Config(e)) => assert!(e.to_string().contains(needle), "{e} does not name {needle}"),
            Err(LoadError::Clap(e)) if e.kind() == clap::error::ErrorKind::ValueValidation => {
                let line = kmslab_runtime::usage::one_line(&e.to_string());
                assert!(line.contains(&format!("'{needle} ")), "{line} does not name {needle}");
            }
            other => panic!("{list:?}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_file_key_is_a_flag_and_once() {
        let keys = Settings::keys();
        let command = Cli::command();
        for key in keys {
            assert_eq!(keys.iter().filter(|k| *k == key).count(), 1, "{key}");
            let flag = command.get_arguments().find(|a| a.get_id() == *key).unwrap_or_else(|| panic!("no flag for {key}"));
            assert_eq!(flag.get_long(), Some(key.replace('_', "-").as_str()));
            assert_eq!(flag.get_env().and_then(|e| e.to_str()), Some(format!("KMSLAB_{}", key.to_uppercase()).as_str()));
        }
        let interval = kmslab_core::ledger::INTERVAL_RANGE;
        assert_eq!(kms::Interval::RANGE, u64::from(*interval.start())..=u64::from(*interval.end()));
    }

    #[test]
    fn bad_values_name_their_flag() {
        check_err(&["--activation-interval", "5"], "--activation-interval");
        check_err(&["--listen", "nonsense"], "--listen");
        check_err(&["--host-key-group", "kms-b,kms-z"], "--host-key-group");
        check_err(&["--epid", "12"], "--epid");
        check_err(&["--time-scale", "0"], "--time-scale");
        check_err(&["--max-connections", "0"], "--max-connections");
        check_err(&["--host-key", "LABM6-Y6JKP-FPP9X-MYG8Q-CKMM2"], "--host-key");
        check_err(&["--host-key", "FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4"], "--host-key");
        check_err(&["--activation-service", "svc.lab.test:port"], "--activation-service");
    }

    #[test]
    fn dns_publishing_settings_are_checked_and_named() {
        check_err(&["--dns-server", "nowhere"], "--dns-server");
        check_err(&["--dns-zone", "lab.test,high"], "--dns-zone");
        check_err(&["--dns-zone", "lab.test"], "--dns-server");
        check_err(&["--dns-server", "127.0.0.1:53", "--dns-zone", "lab.test", "--dns-hostname", "kms1"], "--dns-hostname");
        check_err(&["--dns-address", "kms1:1688"], "--dns-address");
        check_err(&["--dns-address", "a b"], "--dns-address");
        check_err(&["--dns-ttl", "0"], "--dns-ttl");
        check_err(&["--tsig-key", "ddns-key:hmac-md5:AAAA"], "--tsig-key");
        check_err(&["--tsig-key-file", "/nonexistent/key"], "--tsig-key-file");
        let c = load(args(&[
            "--dns-server",
            "127.0.0.1:5353",
            "--dns-zone",
            "lab.test,10,20",
            "--dns-zone",
            "other.test",
            "--dns-hostname",
            "kms1.lab.test",
            "--dns-address",
            "::1",
            "--dns-ttl",
            "120",
            "--unpublish-on-exit",
            "--tsig-key",
            "ddns-key:hmac-sha256:c2VjcmV0",
        ]))
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        assert!(c.dns.active() && c.dns.unpublish_on_exit);
        assert_eq!(c.dns.zones.iter().map(ToString::to_string).collect::<Vec<_>>(), ["lab.test,10,20", "other.test,0,0"]);
        assert_eq!((c.dns.ttl, c.dns.address), (120, Some("::1".parse().unwrap())));
        assert_eq!(c.dns.tsig.as_ref().map(|k| k.name.as_str()), Some("ddns-key"));
        // The TOML file takes the same keys; --no-dns-publish turns everything off.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "dns_server = \"127.0.0.1:53\"\ndns_zone = [\"lab.test,5\"]\ndns_hostname = \"kms2.lab.test\"\n").unwrap();
        let p = path.to_str().unwrap();
        let c = load(args(&["--config", p])).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(c.dns.zones[0].priority, 5);
        let c = load(args(&["--config", p, "--no-dns-publish"])).map_err(|e| format!("{e:?}")).unwrap();
        assert!(!c.dns.active());
        std::fs::write(&path, "dns_zone = [\"lab.test,x\"]\n").unwrap();
        check_err(&["--config", p], "key dns_zone:");
    }

    #[test]
    fn access_control_settings_are_checked_and_named() {
        check_err(&["--allow", "10.0.0.1/8"], "--allow");
        check_err(&["--allow", "everyone"], "--allow");
        check_err(&["--admin-read-network", "10.0.0.0/40"], "--admin-read-network");
        check_err(&["--admin-local-network", "x"], "--admin-local-network");
        check_err(&["--rate-limit", "0"], "--rate-limit");
        check_err(&["--rate-limit", "5,0"], "--rate-limit");
        check_err(&["--psk", "/nonexistent/lab.psk"], "--psk");
        check_err(&["--admin-token", "two words"], "--admin-token");
        check_err(&["--admin-token-file", "/nonexistent/token"], "--admin-token-file");
        check_err(&["--admin-host", "bad name"], "--admin-host");
        check_err(&["--max-connections-per-source", "0"], "--max-connections-per-source");
        let c = load(args(&["--admin-token", "s3cret", "--admin-host", "KMS1.lab.test.,kms1"])).map_err(|e| format!("{e:?}")).unwrap();
        assert!(c.admin_token.as_ref().is_some_and(|t| t.matches("s3cret")));
        assert!(!format!("{c:?}").contains("s3cret"), "the token is not in the config's Debug");
        assert_eq!(c.admin_hosts, ["kms1.lab.test", "kms1"]);
        assert_eq!((c.per_source_cap(1024), c.per_source_cap(40), c.per_source_cap(1)), (512, 20, 1));
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.psk");
        std::fs::write(&short, "tooshort\n").unwrap();
        check_err(&["--psk", short.to_str().unwrap()], "--psk");
        let psk = dir.path().join("lab.psk");
        std::fs::write(&psk, "0123456789abcdef0123456789abcdef\n").unwrap();
        let c = load(args(&[
            "--allow",
            "10.0.0.0/8,192.168.1.0/24",
            "--allow",
            "::1",
            "--admin-read-network",
            "10.1.0.0/16",
            "--rate-limit",
            "2,10",
            "--psk",
            psk.to_str().unwrap(),
        ]))
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        assert_eq!(c.allow.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "192.168.1.0/24", "::1/128"]);
        assert_eq!(c.admin_read_networks.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.1.0.0/16"]);
        assert_eq!(c.admin_local_networks.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.0/8", "::1/128"]);
        assert_eq!(c.rate_limit, Some(RateLimit { per_second: 2.0, burst: 10.0 }));
        assert!(c.psk.is_some());
        // The same keys in the file.
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "allow = [\"10.0.0.0/8\"]\nrate_limit = \"1\"\nadmin_local_network = [\"127.0.0.1/32\"]\n").unwrap();
        let c = load(args(&["--config", path.to_str().unwrap()])).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!((c.allow.len(), c.admin_local_networks.len()), (1, 1));
        std::fs::write(&path, "allow = [\"10.0.0.0/x\"]\n").unwrap();
        check_err(&["--config", path.to_str().unwrap()], "key allow:");
    }

    #[test]
    fn file_keys_are_checked_and_flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            "activation_interval = 60\nhost_key_group = \"kms-c,office-2010\"\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = load(args(&["--config", p, "--activation-interval", "30"])).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(c.activation_interval, Some(30));
        assert_eq!(c.host_key_groups, ["kms-c", "office-2010"]);
        assert_eq!(c.listen.len(), 2);
        std::fs::write(&path, "activation_intervall = 60\n").unwrap();
        check_err(&["--config", p], "activation_intervall");
        std::fs::write(&path, "renewal_interval = 99999\n").unwrap();
        check_err(&["--config", p], "key renewal_interval: 99999 is not in 15..=43200");
    }
}

mod file_tests {
    use super::super::*;

    /// The example of docs/operations.md ("A host configured by file").
    const OPERATIONS_EXAMPLE: &str = r#"listen = ["127.0.0.1:17688"]
admin = "127.0.0.1:17788"
data_dir = "/tmp/ops/cfg/data"
activation_interval = 60
renewal_interval = 1440
no_dns_publish = true
"#;

    /// Every key but `catalog`, `psk` and `tsig_key_file`, whose files `validate_file` does
    /// not read.
    const EVERY_KEY: &str = r#"
listen = ["0.0.0.0:1688", "[::]:1688"]
admin = "127.0.0.1:8688"
data_dir = "/var/lib/kmslab"
host_key_group = "kms-b,office-2010"
unactivated = false
host_key = "labhk-wm8x2-78tvf-6k8t6-7j6bt"
activation_service = "activation.lab.test:1689"
activation_interval = 120
renewal_interval = 10080
epid = "55041-00168-305-123456-03-1033-7600.0000-0012026"
keep_count = true
admin_token = "s3cret-token"
admin_host = ["kms1.lab.test", "kms1"]
admin_read_network = ["10.1.0.0/16", "fd00::/8"]
admin_local_network = ["127.0.0.0/8", "::1/128"]
allow = ["10.0.0.0/8", "192.168.1.0/24", "::1"]
rate_limit = "0.5,10"
time_scale = 86400.0
time_origin = "2026-01-01T09:30:00.250+02:00"
max_connections = 1024
max_connections_per_source = 512
idle_timeout = 30
log_format = "json"
registry_sync = "normal"
dns_server = "127.0.0.1:5353"
dns_zone = ["lab.test,10,20", "other.test"]
dns_hostname = "kms1.lab.test"
dns_address = "::1"
dns_ttl = 600
no_dns_publish = false
tsig_key = "ddns-key:hmac-sha256:c2VjcmV0"
unpublish_on_exit = true
"#;

    fn check(text: &str) -> Result<HostConfig, ConfigError> {
        validate_file(parse_file(text)?)
    }

    #[test]
    fn parse_file_refuses_unknown_keys_by_name_and_wrong_types() {
        let e = parse_file("activation_intervall = 60\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid config file: line 1, column 1: unknown field `activation_intervall`, expected one of `listen`"),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'), "{e}");
        let e = parse_file("sai = 60\nlisten = [\"0.0.0.0:1688\"]\n").unwrap_err();
        assert!(e.to_string().contains("`sai`"), "{e}");
        let e = parse_file("dns_ttl = 60\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config file: line 2, column 10, key listen: invalid type: string \"127.0.0.1:1\", expected a sequence"
        );
        assert!(parse_file("activation_interval = \"60\"\n").is_err());
        assert!(parse_file("activation_interval = -1\n").is_err());
        assert!(parse_file("listen = [\n").is_err());
        assert!(parse_file("").is_ok());
    }

    #[test]
    fn a_valid_file_validates_as_load_reads_it() {
        let c = check(OPERATIONS_EXAMPLE).unwrap();
        assert_eq!((c.listen.as_slice(), c.listen_explicit), (["127.0.0.1:17688".parse().unwrap()].as_slice(), true));
        assert_eq!(c.admin, "127.0.0.1:17788".parse().unwrap());
        assert_eq!(c.data_dir, Path::new("/tmp/ops/cfg/data"));
        assert_eq!((c.activation_interval, c.renewal_interval), (Some(60), Some(1440)));
        assert!(!c.dns.publish);
        // `load --config` of the same file, with no flag, gives the same configuration.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms-host.toml");
        std::fs::write(&path, OPERATIONS_EXAMPLE).unwrap();
        let args = ["kms-host", "--config", path.to_str().unwrap()].map(std::ffi::OsString::from);
        let l = load(args).map_err(|e| format!("{e:?}")).unwrap();
        let summary = |c: &HostConfig| {
            format!(
                "{:?}",
                (
                    &c.listen,
                    c.admin,
                    &c.data_dir,
                    c.activation_interval,
                    c.renewal_interval,
                    c.dns.publish,
                    c.max_connections,
                    c.time_scale
                )
            )
        };
        assert_eq!(summary(&c), summary(&l));
    }

    #[test]
    fn every_key_but_the_file_names_is_accepted() {
        // Also a seed of the host_config fuzz target (fuzz/corpus/host_config/).
        let c = check(EVERY_KEY).map_err(|e| e.to_string()).unwrap();
        assert_eq!(c.host_key_groups, ["kms-b", "office-2010"]);
        assert_eq!((c.keep_count, c.log_format, c.registry_sync), (true, LogFormat::Json, kmslab_store::Synchronous::Normal));
        assert_eq!(c.time_origin.map(|t| t.to_string()).as_deref(), Some("2026-01-01T07:30:00.250Z"));
        assert!(c.dns.active() && c.dns.unpublish_on_exit && c.dns.tsig.is_some());
        assert_eq!(c.dns.zones.len(), 2);
        assert_eq!(c.host_key.as_deref(), Some("LABHK-WM8X2-78TVF-6K8T6-7J6BT"));
        assert_eq!(c.activation_service.map(|a| a.to_string()).as_deref(), Some("activation.lab.test:1689"));
    }

    /// Found by the `host_config` fuzz target: hickory's refusal of a DNS name quotes the
    /// offending character raw, so `dns_zone = ["a\rb"]` (a carriage return) made a
    /// two-line refusal that overwrote its own beginning on a terminal.
    #[test]
    fn refusals_are_one_line_whatever_the_value_holds() {
        for text in [
            "dns_zone = [\"lab\\rtest\"]\n",
            "dns_server = \"127.0.0.1:53\"\ndns_hostname = \"kms1.lab\\u001b[2Jtest\"\n",
            "tsig_key = \"ddns\\rkey:hmac-sha256:c2VjcmV0\"\n",
            "\"a\\rb\" = 1\n",
        ] {
            let e = check(text).unwrap_err();
            assert!(!e.to_string().chars().any(char::is_control), "{text:?}: {e:?}");
        }
        let e = check("dns_zone = [\"lab\\rtest\"]\n").unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("invalid config file: line 1, column 12, key dns_zone: \"lab\\rtest\": "), "{e}");
        // Through `load` too.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, "tsig_key = \"ddns\\rkey:hmac-sha256:c2VjcmV0\"\n").unwrap();
        let args = ["kms-host", "--config", path.to_str().unwrap()].map(std::ffi::OsString::from);
        match load(args) {
            Err(LoadError::Config(e)) => {
                let e = e.to_string();
                assert!(e.contains("key `tsig_key`") && !e.chars().any(char::is_control), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Found by running the `host_config` fuzz target on edge values: these files were
    /// accepted, then the clock overflowed (`now`) or panicked (`real_duration`, which the
    /// DNS republish calls), or the origin printed as a time no longer accepted.
    #[test]
    fn accepted_time_settings_give_a_working_clock() {
        for text in [
            "time_scale = 10000000\ntime_origin = \"1970-01-02T00:00:00Z\"\n",
            "time_scale = 10000000\ntime_origin = \"9999-12-31T23:59:59.999Z\"\n",
            "time_scale = 1e-300\n",
            "time_scale = 5e-324\n",
        ] {
            let c = check(text).unwrap();
            let clock = c.clock();
            let now = clock.now();
            assert!(Timestamp::parse_rfc3339(&now.to_string()).is_ok(), "{text}: {now}");
            let _ = clock.real_duration(crate::publish::REPUBLISH_MS);
            let _ = clock.deadline(now.plus_ms(crate::publish::REPUBLISH_MS));
        }
        for text in ["time_origin = \"0000-01-01T00:00:00+01:00\"\n", "time_origin = \"9999-12-31T23:59:59.999-01:00\"\n"] {
            let e = check(text).unwrap_err();
            let e = e.to_string();
            assert!(
                e.starts_with("invalid config file: line 1, column 15, key time_origin: ") && e.contains("outside years 0000..9999"),
                "{e}"
            );
        }
    }

    /// Found by the `host_config` fuzz target: `dns_hostname = "u.B. ."` was kept as
    /// "u.B. " (trimmed, then its final dots dropped), which validating again turned into
    /// "u.B": what the host showed was not the name it published.
    #[test]
    fn a_dns_hostname_is_kept_as_validated() {
        for text in ["dns_hostname = \"u.B. .\"\n", "dns_server = \"127.0.0.1:53\"\ndns_hostname = \"u.B. .\"\n"] {
            assert_eq!(check(text).unwrap().dns.hostname.as_deref(), Some("u.B"), "{text}");
        }
    }

    #[test]
    fn validate_file_names_bad_values_and_reads_no_file() {
        let e = check("renewal_interval = 99999\n").unwrap_err();
        assert_eq!(e.to_string(), "invalid config file: line 1, column 20, key renewal_interval: 99999 is not in 15..=43200");
        // Keys naming another file are refused, not read (/etc/hostname exists but is no
        // catalog, key or TSIG key file: reading it would give another error).
        for key in ["catalog", "psk", "tsig_key_file"] {
            let e = check(&format!("{key} = \"/etc/hostname\"\n")).unwrap_err();
            let e = e.to_string();
            assert!(e.contains(&format!("key `{key}`")) && e.contains("not read"), "{e}");
        }
        // No system host name to complete the DNS host name with.
        let e = check("dns_server = \"127.0.0.1:53\"\ndns_zone = [\"lab.test\"]\n").unwrap_err();
        assert!(e.to_string().contains("--dns-hostname"), "{e}");
        let c = check("dns_server = \"127.0.0.1:53\"\ndns_zone = [\"lab.test\"]\ndns_hostname = \"kms1.lab.test\"\n").unwrap();
        assert!(c.dns.active());
    }
}
