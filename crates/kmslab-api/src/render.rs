//! The one renderer of slmgr's `/dli`, `/dlv` and `/xpr` text, for clients and hosts,
//! from the typed views. slmgr prints it; the drills and the fleet show it.
//!
//! The lines are those of docs/interfaces.md: labels exact, one space after the colon;
//! day counts truncated as Windows 7's slmgr.vbs does; times in slmgr's en-US form
//! (`4/28/2009 2:32:10 PM`, UTC).
//!
//! `all` is `/dli all` and `/dlv all`: every installed license. A client has one product,
//! so its text is the same; a host prints one license block per host key group, then the
//! Key Management Service sections once.

use kmslab_core::license::{days_from_minutes, notification_reason_line};
use kmslab_core::{HResult, Timestamp};

use crate::client::ClientStatus;
use crate::host::{HostLicense, HostStatus};

/// What `/dli` prints on a client that has no product key (slmgr exits 1).
pub const NO_PRODUCT_KEY: &str = "Error: product key not found.";

/// The `Software licensing service version:` line of `/dlv`.
pub fn version_line() -> String {
    format!("Software licensing service version: 6.1.7600.16385 (kmslab {})", env!("CARGO_PKG_VERSION"))
}

/// A time as slmgr.vbs prints it in the en-US locale: `4/28/2009 2:32:10 PM` (UTC).
pub fn slmgr_time(t: Timestamp) -> String {
    let c = t.civil();
    let (hour, half) = match c.hour {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!("{}/{}/{} {hour}:{:02}:{:02} {half}", c.month, c.day, c.year, c.minute, c.second)
}

/// An RFC 3339 time of a view in slmgr's form; text that is not RFC 3339 is kept.
pub fn slmgr_time_text(rfc3339: &str) -> String {
    Timestamp::parse_rfc3339(rfc3339).map_or_else(|_| rfc3339.to_owned(), slmgr_time)
}

fn opt_time(t: Option<&String>) -> String {
    t.map(|t| slmgr_time_text(t)).unwrap_or_default()
}

/// `N minute(s) (D day(s))`, the days truncated as Windows 7's slmgr.vbs does.
pub fn minutes_and_days(minutes: u64) -> String {
    format!("{minutes} minute(s) ({} day(s))", days_from_minutes(minutes))
}

struct Lines(String);

impl Lines {
    fn line(&mut self, l: impl AsRef<str>) {
        self.0.push_str(l.as_ref());
        self.0.push('\n');
    }
}

/// A client's `/dli` (or `/dlv` when `verbose`) text; `Err` holds the one line printed
/// when no product key is installed ([`NO_PRODUCT_KEY`]).
pub fn client_dli(s: &ClientStatus, verbose: bool, all: bool) -> Result<String, String> {
    // A client has one product: `all` lists the same one.
    let _ = all;
    let Some(product) = &s.product else {
        return Err(NO_PRODUCT_KEY.to_owned());
    };
    let mut out = Lines(String::new());
    if verbose {
        out.line(version_line());
        out.line("");
    }
    out.line(format!("Name: {}", product.display_name));
    out.line(format!("Description: {}", product.description));
    if verbose {
        out.line(format!("Activation ID: {}", product.activation_id));
        out.line(format!("Application ID: {}", product.application_id));
        if let Some(epid) = &s.extended_pid {
            out.line(format!("Extended PID: {epid}"));
        }
        if let Some(iid) = &s.installation_id {
            out.line(format!("Installation ID: {iid}"));
        }
    }
    out.line(format!("Partial Product Key: {}", product.partial_key));
    out.line(format!("License Status: {}", s.status_label));
    if s.status == "notification" {
        let reason = s.notification_reason.as_deref().and_then(HResult::parse).unwrap_or(HResult::GRACE_EXPIRED);
        out.line(notification_reason_line(reason));
    }
    let mak = s.channel == "VOLUME_MAK";
    match s.status.as_str() {
        // A MAK activation never expires: no expiration line (docs/kms-behaviour.md).
        "licensed" if mak => {}
        "licensed" => out.line(format!("Volume activation expiration: {}", minutes_and_days(s.minutes_remaining))),
        "initial_grace" | "additional_grace" | "non_genuine_grace" | "extended_grace" => {
            out.line(format!("Time remaining: {}", minutes_and_days(s.minutes_remaining)))
        }
        _ => {}
    }
    if verbose {
        out.line(format!("Remaining Windows rearm count: {}", s.rearm_count));
        out.line(format!("Trusted time: {}", slmgr_time_text(&s.now)));
    }
    if mak {
        // A MAK machine is no KMS client: no KMS client block.
        return Ok(out.0);
    }
    out.line("");
    out.line("Key Management Service client information");
    out.line(format!("    Client Machine ID (CMID): {}", s.cmid));
    let host = &s.host;
    if let Some(manual) = &host.manual {
        out.line(format!("    Registered KMS machine name: {manual}"));
    } else if let Some(h) = host.last.as_ref().filter(|_| host.last_source.as_deref() != Some("manual")).or(host.cached.as_ref()) {
        out.line(format!("    KMS machine name from DNS: {h}"));
    } else {
        out.line("    DNS auto-discovery: KMS name not available");
    }
    if let Some(epid) = &s.epid {
        out.line(format!("    KMS machine extended PID: {epid}"));
    }
    out.line(format!("    Activation interval: {} minutes", s.activation_interval));
    out.line(format!("    Renewal interval: {} minutes", s.renewal_interval));
    out.line(if s.host_caching { "    KMS host caching is enabled" } else { "    KMS host caching is disabled" });
    if verbose {
        if let Some(d) = &s.domain {
            out.line(format!("    KMS SRV record lookup domain: {d}"));
        }
        if let Some(prev) = Some(&s.previous_cmid).filter(|p| !p.is_empty() && !p.starts_with("00000000-")) {
            out.line(format!("    Previous Client Machine ID (CMID): {prev}"));
        }
        if let Some(c) = s.current_count {
            out.line(format!("    Current count reported by the KMS host: {c}"));
        }
        if let Some(last) = &s.last_result {
            out.line(format!("    Last activation result: {} {} at {}", last.hresult, last.name, opt_time(last.at.as_ref())));
        }
    }
    Ok(out.0)
}

/// A client's `/xpr` text (`Err`: no product key).
pub fn client_xpr(s: &ClientStatus, all: bool) -> Result<String, String> {
    let _ = all;
    let Some(product) = &s.product else {
        return Err(NO_PRODUCT_KEY.to_owned());
    };
    if s.permanently_activated {
        return Ok(format!("{}:\n    The machine is permanently activated.\n", product.display_name));
    }
    let detail = match s.status.as_str() {
        "licensed" => format!("Volume activation will expire {}", opt_time(s.valid_until.as_ref())),
        "initial_grace" => format!("Initial grace period ends {}", opt_time(s.grace_end.as_ref())),
        "additional_grace" => format!("Additional grace period ends {}", opt_time(s.grace_end.as_ref())),
        "notification" => "Windows is in Notification mode".to_owned(),
        _ => s.status_label.clone(),
    };
    Ok(format!("{}:\n    {detail}\n", product.display_name))
}

fn host_license(out: &mut Lines, s: &HostStatus, license: &HostLicense, verbose: bool) {
    out.line(format!("Name: {}", license.name));
    out.line(format!("Description: {}", license.description));
    if verbose {
        out.line(format!("Activation ID: {}", license.activation_id));
        out.line(format!("Application ID: {}", s.application_id));
        out.line(format!("Extended PID: {}", s.epid));
        out.line(format!("Host key groups: {}", s.host_key_groups.join(", ")));
    }
    out.line(format!("Partial Product Key: {}", license.partial_product_key));
    out.line(format!("License Status: {}", s.license_status));
    match s.genuine.state.as_str() {
        "non_genuine_grace" => out.line(format!("Time remaining: {}", minutes_and_days(s.genuine.minutes_remaining.unwrap_or(0)))),
        "notification" => out.line(notification_reason_line(HResult::NOT_GENUINE)),
        _ => {}
    }
    if verbose {
        out.line(format!("Remaining Windows rearm count: {}", s.remaining_rearm_count));
        out.line(format!("Trusted time: {}", slmgr_time_text(&s.trusted_time)));
    }
}

/// A host's `/dli` (or `/dlv` when `verbose`) text.
pub fn host_dli(s: &HostStatus, verbose: bool, all: bool) -> String {
    let mut out = Lines(String::new());
    if verbose {
        out.line(version_line());
        out.line("");
    }
    let primary = HostLicense {
        host_key_group: s.host_key_groups.first().cloned().unwrap_or_default(),
        name: s.name.clone().unwrap_or_default(),
        description: s.description.clone().unwrap_or_default(),
        partial_product_key: s.partial_product_key.clone().unwrap_or_default(),
        activation_id: s.activation_id.clone(),
    };
    let licenses: Vec<&HostLicense> = if all && !s.licenses.is_empty() { s.licenses.iter().collect() } else { vec![&primary] };
    for (i, license) in licenses.iter().enumerate() {
        if i > 0 {
            out.line("");
        }
        host_license(&mut out, s, license, verbose);
    }
    out.line("");
    out.line("Key Management Service is enabled on this machine");
    let primary = s.primary_count();
    out.line(format!("    Current count: {}", primary.map_or(0, |c| c.count)));
    for c in s.served_counts().filter(|c| Some(*c) != primary) {
        out.line(format!("    Current count ({}): {}", c.group.as_deref().unwrap_or("?"), c.count));
    }
    out.line(format!("    Listening on Port: {}", s.port.map(|p| p.to_string()).unwrap_or_default()));
    out.line(format!("    DNS publishing {}", if s.dns_publishing { "enabled" } else { "disabled" }));
    out.line(format!("    KMS priority: {}", if s.settings.priority_low() { "Low" } else { "Normal" }));
    if verbose {
        out.line(format!("    Activation interval: {} minutes", s.settings.activation_interval));
        out.line(format!("    Renewal interval: {} minutes", s.settings.renewal_interval));
    }
    out.line("");
    out.line("Key Management Service cumulative requests received from clients");
    out.line(format!("    Total requests received: {}", s.counters.total));
    out.line(format!("    Failed requests received: {}", s.counters.failed));
    for (key, label) in [
        ("unlicensed", "Unlicensed"),
        ("licensed", "Licensed"),
        ("initial_grace", "Initial grace period"),
        ("additional_grace", "License expired or Hardware out of tolerance"),
        ("non_genuine_grace", "Non-genuine grace period"),
        ("notification", "Notification"),
    ] {
        out.line(format!("    Requests with License Status {label}: {}", s.counters.by_status.get(key).copied().unwrap_or(0)));
    }
    out.0
}

/// [`host_dli`] as lines.
pub fn host_dli_lines(s: &HostStatus, verbose: bool, all: bool) -> Vec<String> {
    host_dli(s, verbose, all).lines().map(str::to_owned).collect()
}

/// [`client_dli`] as lines (the one error line when no product key is installed).
pub fn client_dli_lines(s: &ClientStatus, verbose: bool, all: bool) -> Vec<String> {
    match client_dli(s, verbose, all) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(line) => vec![line],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientHost, LastResult, ProductView};

    fn client(status: &str, minutes: u64) -> ClientStatus {
        ClientStatus {
            role: "client".into(),
            now: "2009-04-28T14:32:10Z".into(),
            product: Some(ProductView {
                name: "win7-enterprise".into(),
                display_name: "Windows(R) 7, Enterprise edition".into(),
                description: "Windows Operating System - Windows(R) 7, VOLUME_KMSCLIENT channel".into(),
                partial_key: "HVTHH".into(),
                activation_id: "ae2ee509-1b34-41c0-acb7-6d4650168915".into(),
                application_id: WINDOWS_APP.into(),
                required_count: 25,
            }),
            status: status.into(),
            status_code: 1,
            status_label: "Licensed".into(),
            notification_reason: None,
            cmid: "2ffcfc30-6a6a-49ec-92b8-f6150c7df211".into(),
            previous_cmid: "00000000-0000-0000-0000-000000000000".into(),
            minutes_remaining: minutes,
            grace_end: None,
            valid_until: Some("2009-10-25T00:05:00Z".into()),
            activation_interval: 120,
            renewal_interval: 10080,
            next_attempt: None,
            attempt_in_progress: false,
            host: ClientHost::default(),
            epid: None,
            current_count: Some(25),
            host_caching: true,
            domain: None,
            dns_server: None,
            rearm_count: 3,
            machine_name: "pc".into(),
            vm: false,
            state_save_error: None,
            last_result: Some(LastResult { hresult: "0x00000000".into(), name: "S_OK".into(), at: Some("2009-04-28T12:00:00Z".into()) }),
            extended_pid: Some("55041-00142-001-000001-03-1033-7600.0000-0012009".into()),
            installation_id: Some("000000-000000-000000-000000-000000-000000-000000-000000-000000".into()),
            channel: "VOLUME_KMSCLIENT".into(),
            permanently_activated: false,
        }
    }

    #[test]
    fn a_mak_machine_has_no_expiry_no_kms_block_and_is_permanently_activated() {
        let mut s = client("licensed", 0);
        s.channel = "VOLUME_MAK".into();
        s.permanently_activated = true;
        s.valid_until = None;
        if let Some(p) = s.product.as_mut() {
            p.description = "Windows Operating System - Windows(R) 7, VOLUME_MAK channel".into();
        }
        let dli = client_dli(&s, false, false).unwrap();
        assert!(dli.contains("Description: Windows Operating System - Windows(R) 7, VOLUME_MAK channel\n"), "{dli}");
        assert!(dli.contains("License Status: Licensed\n"), "{dli}");
        assert!(!dli.contains("expiration") && !dli.contains("Key Management Service"), "{dli}");
        let xpr = client_xpr(&s, false).unwrap();
        assert_eq!(xpr, "Windows(R) 7, Enterprise edition:\n    The machine is permanently activated.\n");
        // The same machine on the KMS channel keeps its expiry and KMS block.
        let kms = client_dli(&client("licensed", 259_200), false, false).unwrap();
        assert!(
            kms.contains("Volume activation expiration: 259200 minute(s) (180 day(s))")
                && kms.contains("Key Management Service client information"),
            "{kms}"
        );
    }

    const WINDOWS_APP: &str = crate::host::WINDOWS_APPLICATION_ID;

    #[test]
    fn times_read_as_slmgr_vbs_writes_them_in_en_us() {
        let t = |s: &str| slmgr_time(Timestamp::parse_rfc3339(s).unwrap());
        assert_eq!(t("2009-04-28T14:32:10Z"), "4/28/2009 2:32:10 PM");
        assert_eq!(t("2009-04-28T00:05:09Z"), "4/28/2009 12:05:09 AM");
        assert_eq!(t("2009-12-01T12:00:00Z"), "12/1/2009 12:00:00 PM");
        assert_eq!(t("2009-12-01T11:59:59.999Z"), "12/1/2009 11:59:59 AM");
        assert_eq!(slmgr_time_text("not a time"), "not a time");
    }

    #[test]
    fn client_dli_has_the_contract_lines_and_dlv_the_details() {
        let s = client("licensed", 259_200);
        let dli = client_dli(&s, false, false).unwrap();
        assert_eq!(
            dli.lines().collect::<Vec<_>>(),
            [
                "Name: Windows(R) 7, Enterprise edition",
                "Description: Windows Operating System - Windows(R) 7, VOLUME_KMSCLIENT channel",
                "Partial Product Key: HVTHH",
                "License Status: Licensed",
                "Volume activation expiration: 259200 minute(s) (180 day(s))",
                "",
                "Key Management Service client information",
                "    Client Machine ID (CMID): 2ffcfc30-6a6a-49ec-92b8-f6150c7df211",
                "    DNS auto-discovery: KMS name not available",
                "    Activation interval: 120 minutes",
                "    Renewal interval: 10080 minutes",
                "    KMS host caching is enabled",
            ]
        );
        assert_eq!(client_dli(&s, false, true).unwrap(), dli, "a client's /dli all is its one product");
        let dlv = client_dli(&s, true, false).unwrap();
        for line in [
            "Extended PID: 55041-00142-001-000001-03-1033-7600.0000-0012009",
            "Installation ID: 000000-000000-000000-000000-000000-000000-000000-000000-000000",
            "Trusted time: 4/28/2009 2:32:10 PM",
            "    Last activation result: 0x00000000 S_OK at 4/28/2009 12:00:00 PM",
        ] {
            assert!(dlv.lines().any(|l| l == line), "{line:?} in\n{dlv}");
        }
        assert_eq!(
            client_xpr(&s, false).unwrap(),
            "Windows(R) 7, Enterprise edition:\n    Volume activation will expire 10/25/2009 12:05:00 AM\n"
        );
        let mut none = s.clone();
        none.product = None;
        assert_eq!(client_dli(&none, false, false), Err(NO_PRODUCT_KEY.to_owned()));
        assert_eq!(client_dli_lines(&none, true, false), [NO_PRODUCT_KEY]);
    }

    #[test]
    fn host_dli_lists_served_groups_and_all_lists_every_license() {
        use crate::host::{DnsStatus, GroupCount, Health, HostCounters, HostSettings};
        let group = |name: &str, count: u32, served: bool| GroupCount {
            group: Some(name.into()),
            kms_counted_id: name.into(),
            count,
            cap: 50,
            max_n_policy: 25,
            thresholds: vec![25],
            served,
        };
        let license = |g: &str, name: &str| HostLicense {
            host_key_group: g.into(),
            name: name.into(),
            description: format!("{name} description"),
            partial_product_key: "ABCDE".into(),
            activation_id: format!("id-{g}"),
        };
        let s = HostStatus {
            role: "host".into(),
            version: "0".into(),
            now: "2009-04-28T14:32:10Z".into(),
            name: Some("Host A".into()),
            description: Some("Host A description".into()),
            partial_product_key: Some("ABCDE".into()),
            host_key_groups: vec!["kms-b".into(), "office-2010".into()],
            activated: true,
            license_status: "Licensed".into(),
            epid: "55041-00168-305-123456-03-1033-7600.0000-0012026".into(),
            listening: vec!["0.0.0.0:1688".into()],
            port: Some(1688),
            admin: "127.0.0.1:8688".into(),
            counts: vec![group("office2010", 4, true), group("windows", 7, true), group("other", 9, false)],
            counters: HostCounters { total: 11, failed: 1, by_status: [("licensed".to_owned(), 10)].into() },
            settings: HostSettings {
                activation_interval: 120,
                renewal_interval: 10080,
                port: None,
                dns_publishing: true,
                priority: "low".into(),
            },
            dns_publishing: true,
            dns: DnsStatus {
                configured: false,
                enabled: true,
                server: None,
                hostname: None,
                port: None,
                address: None,
                ttl: 600,
                tsig_key: None,
                unpublish_on_exit: false,
                zones: Vec::new(),
            },
            open_connections: 0,
            health: Health { ok: true, reason: None },
            activation_id: "id-kms-b".into(),
            application_id: WINDOWS_APP.into(),
            remaining_rearm_count: 3,
            trusted_time: "2009-04-28T14:32:10Z".into(),
            licenses: vec![license("kms-b", "Host A"), license("office-2010", "Office host")],
            last_request: None,
            genuine: Default::default(),
        };
        let dli = host_dli(&s, false, false);
        assert!(dli.contains("    Current count: 7\n    Current count (office2010): 4\n    Listening on Port: 1688\n"), "{dli}");
        assert!(!dli.contains("(other)"), "a group the host does not serve is not listed: {dli}");
        assert!(dli.contains("    KMS priority: Low\n") && dli.contains("    Requests with License Status Licensed: 10\n"), "{dli}");
        assert_eq!(dli.matches("Name: ").count(), 1);
        let all = host_dli(&s, true, true);
        assert_eq!(all.matches("Name: ").count(), 2, "{all}");
        assert!(all.contains("Name: Office host\nDescription: Office host description\nActivation ID: id-office-2010\n"), "{all}");
        assert!(all.contains("Trusted time: 4/28/2009 2:32:10 PM\n"), "{all}");
        assert_eq!(all.matches("Key Management Service is enabled on this machine").count(), 1);
        assert!(!dli.contains("Time remaining") && !dli.contains("Notification Reason"), "{dli}");
        let mut ng = s.clone();
        ng.license_status = "Non-genuine grace period".into();
        ng.genuine.state = "non_genuine_grace".into();
        ng.genuine.minutes_remaining = Some(43_140);
        let dli = host_dli(&ng, false, false);
        assert!(dli.contains("License Status: Non-genuine grace period\nTime remaining: 43140 minute(s) (29 day(s))\n"), "{dli}");
        ng.license_status = "Notification".into();
        ng.genuine.state = "notification".into();
        let dli = host_dli(&ng, false, false);
        assert!(dli.contains("License Status: Notification\nNotification Reason: 0xC004F200 (non-genuine).\n"), "{dli}");
    }
}
