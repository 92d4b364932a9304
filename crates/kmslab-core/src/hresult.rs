//! Every HRESULT the lab produces, with its symbolic name, meaning and the usual fix.
//!
//! One table feeds error frames, client results, events, logs and `slmgr /explain`.
//! An [`HResult`] is a plain 32-bit code so that codes the table does not know (from a
//! newer peer, say) still travel and print; [`HResult::info`] looks the code up.

use std::fmt;

/// A Windows-style HRESULT as the lab uses it (0 = success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HResult(pub u32);

/// What the table knows about one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HResultInfo {
    /// The code.
    pub code: HResult,
    /// Its symbolic name (Microsoft's where one is published, else a descriptive one).
    pub name: &'static str,
    /// What it means, in one sentence.
    pub meaning: &'static str,
    /// What usually fixes it.
    pub fix: &'static str,
}

macro_rules! hresults {
    ($( $konst:ident = $code:literal, $name:literal, $meaning:literal, $fix:literal; )*) => {
        impl HResult {
            $(
                #[doc = $meaning]
                pub const $konst: HResult = HResult($code);
            )*
        }

        /// Every code the lab produces, in table order.
        pub const TABLE: &[HResultInfo] = &[
            $( HResultInfo { code: HResult($code), name: $name, meaning: $meaning, fix: $fix }, )*
        ];
    };
}

hresults! {
    SUCCESS = 0x0000_0000, "S_OK",
        "The operation completed successfully.",
        "Nothing to fix.";
    NOT_ENOUGH_COUNT = 0xC004_F038, "SL_E_VL_NOT_ENOUGH_COUNT",
        "The count reported by the KMS host is insufficient for this product.",
        "Wait until enough distinct machines (25 for client editions, 5 for servers and Office) have asked the host within 30 days; the client retries every activation interval by itself.";
    KMS_NOT_ENABLED = 0xC004_F039, "SL_E_VL_BINDING_SERVICE_NOT_ENABLED",
        "The KMS request got no answer: Key Management Service is not enabled or the host did not respond.",
        "Check that kms-host is running and listening on the port the client uses, and that no firewall drops the connection.";
    HOST_NOT_ACTIVATED = 0xC004_F041, "SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED",
        "The KMS host is not activated.",
        "Activate the KMS host itself (in the lab: start kms-host without --unactivated).";
    KEY_GROUP_MISMATCH = 0xC004_F042, "SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH",
        "This KMS host cannot activate this product: its host key group does not cover it, or the product is unknown to the host.",
        "Use a host whose key group covers the product (kms-c covers every Windows product), or add the product to the host's catalog.";
    INVALID_TIMESTAMP = 0xC004_F06C, "SL_E_VL_INVALID_TIMESTAMP",
        "The request timestamp is invalid: the client's clock differs from the host's by more than 4 hours.",
        "Correct the client's (or the host's) clock, or synchronise both with the same time source.";
    NO_HOST_AVAILABLE = 0xC004_F074, "SL_E_VL_BINDING_SERVICE_UNAVAILABLE",
        "No Key Management Service host could be contacted: every host tried failed (each one's answer is in its event 12288).",
        "Check DNS (the _vlmcs._tcp SRV records), the network path to TCP 1688 and that at least one host is running; slmgr /skms can pin a host.";
    GRACE_EXPIRED = 0xC004_F009, "SL_E_GRACE_TIME_EXPIRED",
        "The grace period expired and the machine is in Notification.",
        "Activate the machine against a KMS host that meets its count (slmgr /ato).";
    NO_PRODUCT_KEY = 0xC004_F014, "SL_E_PKEY_NOT_INSTALLED",
        "No product key is installed.",
        "Install a volume setup key (GVLK) with slmgr /ipk.";
    INVALID_PRODUCT_KEY = 0xC004_F050, "SL_E_INVALID_PRODUCT_KEY",
        "The product key is invalid: it is not a setup key (GVLK) of any product the catalog knows.",
        "Check the key for typos, or add the product to the catalog file.";
    REARM_LIMIT = 0xC004_D307, "SL_REMAPPING_SP_PUB_TS_MAX_REARM_REACHED",
        "The maximum allowed number of rearms has been exceeded.",
        "Reinstall the machine or activate it; rearm cannot be used again.";
    DNS_FORMAT_ERROR = 0x8007_2329, "DNS_ERROR_RCODE_FORMAT_ERROR",
        "The DNS server could not interpret the query or the update (FORMERR).",
        "Check that the DNS server supports SRV records and RFC 2136 updates; try another DNS server.";
    DNS_SERVER_FAILURE = 0x8007_232A, "DNS_ERROR_RCODE_SERVER_FAILURE",
        "The DNS server failed (SERVFAIL), could not be reached or did not answer.",
        "Check that the DNS server is running, reachable, and loads the zone.";
    DNS_NOT_IMPLEMENTED = 0x8007_232C, "DNS_ERROR_RCODE_NOT_IMPLEMENTED",
        "The DNS server does not implement the operation (NOTIMP), e.g. dynamic update.",
        "Use a DNS server that accepts RFC 2136 dynamic updates, or publish the SRV record by hand.";
    DNS_REFUSED = 0x8007_232D, "DNS_ERROR_RCODE_REFUSED",
        "The DNS server refused the query or the update (REFUSED): no permission for this client or this record.",
        "Allow this host to update the zone (allow-update, or give it the zone's TSIG key with --tsig-key-file), or let it query the server.";
    DNS_YXDOMAIN = 0x8007_232E, "DNS_ERROR_RCODE_YXDOMAIN",
        "The DNS server refused the update: a name that ought not to exist does exist (YXDOMAIN).",
        "Remove the conflicting record, or let the host that owns it update it.";
    DNS_YXRRSET = 0x8007_232F, "DNS_ERROR_RCODE_YXRRSET",
        "The DNS server refused the update: an RRset that ought not to exist does exist (YXRRSET).",
        "Remove the conflicting record, or let the host that owns it update it.";
    DNS_NXRRSET = 0x8007_2330, "DNS_ERROR_RCODE_NXRRSET",
        "The DNS server refused the update: an RRset that ought to exist does not exist (NXRRSET).",
        "Publish the record again; it was removed by somebody else.";
    DNS_NOT_AUTH = 0x8007_2331, "DNS_ERROR_RCODE_NOTAUTH",
        "The DNS server is not authoritative for the zone, or requires a signature for the update (NOTAUTH).",
        "Send updates to the zone's primary server, signed with the zone's TSIG key.";
    DNS_NOT_ZONE = 0x8007_2332, "DNS_ERROR_RCODE_NOTZONE",
        "A name in the update is not within the zone (NOTZONE).",
        "Check the --dns-zone and --dns-hostname of the host: the record must be inside the zone.";
    DNS_BAD_SIGNATURE = 0x8007_2338, "DNS_ERROR_RCODE_BADSIG",
        "The DNS server rejected the TSIG signature of the update (BADSIG: wrong key secret).",
        "Give the host the zone's TSIG key exactly as the DNS server has it.";
    DNS_BAD_KEY = 0x8007_2339, "DNS_ERROR_RCODE_BADKEY",
        "The DNS server does not know the TSIG key of the update (BADKEY: unknown key name or algorithm).",
        "Give the host the zone's TSIG key (same name and algorithm as the DNS server's).";
    DNS_BAD_TIME = 0x8007_233A, "DNS_ERROR_RCODE_BADTIME",
        "The DNS server rejected the TSIG signature's time (BADTIME: the clocks differ by more than the allowed fudge).",
        "Synchronise the host's and the DNS server's clocks.";
    DNS_NAME_ERROR = 0x8007_232B, "DNS_ERROR_RCODE_NAME_ERROR",
        "DNS name does not exist: no _vlmcs._tcp SRV record in the domain.",
        "Make sure a KMS host publishes itself in the client's domain (or set the domain with slmgr /skms-domain), or pin a host with /skms.";
    DNS_NO_RECORDS = 0x8007_251D, "DNS_INFO_NO_RECORDS",
        "No records were found for the DNS query.",
        "Publish the host's SRV record (check kms-host DNS publishing and event 12293), or pin a host with /skms.";
    DNS_NO_SERVERS = 0x8007_267C, "DNS_ERROR_NO_DNS_SERVERS",
        "No DNS server is configured for this machine.",
        "Configure a resolver (--dns-server or /etc/resolv.conf), or pin a host with /skms.";
    HOST_UNREACHABLE = 0x8007_06BA, "RPC_S_SERVER_UNAVAILABLE",
        "The server is unreachable (the KMS host, or for a MAK the activation service): the connection was refused or the port is blocked.",
        "Check that kms-host (for a MAK: kmslab activation-service) listens on that address and port and that no firewall blocks it (KMS: TCP 1688).";
    TIMEOUT = 0x8007_05B4, "ERROR_TIMEOUT",
        "The operation timed out.",
        "Check that the server is up and not overloaded, and the network path to it.";
    WRITE_FAULT = 0x8007_001D, "ERROR_WRITE_FAULT",
        "A local resource could not be used: a socket could not be bound or a file in the data directory could not be written.",
        "Check that the address is free and the data directory exists and is writable by the service.";
    INVALID_ARG = 0x8007_0057, "E_INVALIDARG",
        "An argument is invalid: a malformed name, key, setting or request body.",
        "Correct the value the message names (see --help or docs/interfaces.md).";
    ACCESS_DENIED = 0x8007_0005, "E_ACCESSDENIED",
        "Access is denied: the admin API refused the request from this source or without the right token.",
        "Send mutating requests from loopback or the --admin-local-network, with --admin-token when the host asks for one.";
    UNEXPECTED = 0x8000_FFFF, "E_UNEXPECTED",
        "An unexpected failure inside the daemon (an internal task stopped).",
        "Look at the daemon's log for the cause and restart it; report the log if it happens again.";
    FAIL = 0x8000_4005, "E_FAIL",
        "Unspecified failure.",
        "Look at the daemon's log for the cause.";
    NOT_GENUINE = 0xC004_F200, "SL_E_NOT_GENUINE",
        "The Software Licensing Service reported that the current state is not genuine.",
        "Read event 8209 for the reason; a KMS host whose host key was blocked needs a new host key (slmgr /ipk, then slmgr /ato) on every host that had the old one.";
    INVALID_DATA = 0x8007_000D, "ERROR_INVALID_DATA",
        "The request was malformed: a bad frame or an impossible field value (kmslab's code for any request it cannot parse or accept).",
        "Use a kmslab client of the same protocol version; see docs/protocol.md.";
    STORE_FAILED = 0x8007_0070, "ERROR_DISK_FULL",
        "The KMS host could not store the request durably (disk full or failing), so it did not acknowledge it.",
        "Free space on or repair the host's data directory; the host recovers by itself.";
    RATE_LIMITED = 0xA04B_0001, "KMSLAB_E_RATE_LIMITED",
        "The KMS host refused the request because its source address sent more requests than the host's per-source rate limit allows (kmslab's own code: customer bit set, facility 0x04B).",
        "Wait and retry (the client does so every activation interval), or raise the host's --rate-limit for this lab.";
    FRAME_AUTH_FAILED = 0xA04B_0002, "KMSLAB_E_FRAME_AUTH",
        "The frame's HMAC-SHA256 is missing, unexpected or wrong: the peers do not share the same pre-shared key (--psk) (kmslab's own code: customer bit set, facility 0x04B).",
        "Give the host and every client the same --psk file, or neither of them one.";
    MAK_OUT_OF_RANGE = 0xC004_C001, "SL_E_CHPA_PRODUCT_KEY_OUT_OF_RANGE",
        "The activation service refused the MAK: it is not valid for the product installed on this machine.",
        "Install a MAK issued for this edition (kmslab activation-service lists each key's products).";
    MAK_BLOCKED = 0xC004_C003, "SL_E_CHPA_PRODUCT_KEY_BLOCKED",
        "The activation service has blocked this multiple activation key.",
        "Install a new MAK (slmgr /ipk) and activate again.";
    MAK_LIMIT_EXCEEDED = 0xC004_C020, "SL_E_CHPA_DMAK_LIMIT_EXCEEDED",
        "The multiple activation key has used all of its activations.",
        "Ask for more activations for the key (kmslab activation-service add), then activate again; machines already activated stay activated.";
    CID_INVALID_DATA = 0xC004_F02C, "SL_E_CIDIID_INVALID_DATA",
        "The confirmation ID (or installation ID) is malformed: wrong number of digits or characters that are not digits.",
        "Type the confirmation ID again: 8 groups of 6 digits as the activation service gave them.";
    CID_MISMATCHED = 0xC004_F031, "SL_E_CIDIID_MISMATCHED",
        "The confirmation ID does not belong to this machine's installation ID.",
        "Read the installation ID again (slmgr /dti), get its confirmation ID and deposit that one (slmgr /atp).";
    CID_INVALID_CHECK_DIGITS = 0xC004_F04D, "SL_E_CIDIID_INVALID_CHECK_DIGITS",
        "A group of the confirmation ID has a wrong check digit: a digit was mistyped.",
        "Type the confirmation ID again; the group with the wrong check digit is named in the message.";
    VL_NOT_WINDOWS_SLP = 0xC004_F035, "SL_E_VL_NOT_WINDOWS_SLP",
        "The computer could not be activated with a Volume license product key. Volume-licensed systems require upgrading from a qualifying operating system. Please contact your system administrator or use a different type of key.",
        "This OEM machine's ACPI_SLIC table has no valid Windows marker: install a MAK or a retail key (slmgr /ipk) and activate online or by phone.";
    VALIDATION_BLOCKED_PRODUCT_KEY = 0xC004_C4A2, "SL_E_VALIDATION_BLOCKED_PRODUCT_KEY",
        "Genuine validation failed: the activation service has blocked the installed product key (a leaked or misused KMS host key or MAK).",
        "Install a new key (slmgr /ipk NEWKEY, then slmgr /ato): for a KMS host key on every host that had the blocked one, for a MAK on every machine.";
    NONGENUINE_GRACE_PERIOD = 0x4004_F065, "SL_I_NONGENUINE_GRACE_PERIOD",
        "Windows is running within the non-genuine notification period. Run 'slui.exe' to go online and validate Windows.",
        "Read event 8209 for the reason and install a new key (slmgr /ipk NEWKEY, slmgr /ato) within the 30 days of the non-genuine grace.";
    NONGENUINE_GRACE_EXPIRED = 0xC004_F064, "SL_E_NONGENUINE_GRACE_TIME_EXPIRED",
        "The non-genuine grace period expired: the machine is in Notification (a KMS host answers its clients 0xC004F041).",
        "Install a new key (slmgr /ipk NEWKEY, slmgr /ato); the clients of a KMS host recover on their next /ato or renewal.";
}

impl HResult {
    /// The table entry for this code, if the lab knows it.
    pub fn info(self) -> Option<&'static HResultInfo> {
        TABLE.iter().find(|i| i.code == self)
    }

    /// The symbolic name, or `UNKNOWN` for codes the table does not know.
    pub fn name(self) -> &'static str {
        self.info().map_or("UNKNOWN", |i| i.name)
    }

    /// True for success codes (the high bit clear).
    pub fn is_success(self) -> bool {
        self.0 & 0x8000_0000 == 0
    }

    /// Parses `0xC004F074`, `C004F074` or a decimal code (as `slui 0x2a CODE` accepts).
    pub fn parse(text: &str) -> Option<HResult> {
        let t = text.trim();
        let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"));
        match hex {
            Some(h) => u32::from_str_radix(h, 16).ok().map(HResult),
            None if t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()) => u32::from_str_radix(t, 16).ok().map(HResult),
            None => {
                t.parse::<i64>().ok().and_then(|v| u32::try_from(v).ok().or_else(|| i32::try_from(v).ok().map(|v| v as u32))).map(HResult)
            }
        }
    }
}

impl fmt::Display for HResult {
    /// `0xC004F074`, as slmgr prints codes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_from_the_reference_is_in_the_table_with_text() {
        let reference = [
            0xC004F038u32,
            0xC004F039,
            0xC004F041,
            0xC004F042,
            0xC004F06C,
            0xC004F074,
            0xC004F009,
            0xC004F014,
            0xC004F050,
            0xC004D307,
            0x8007232A,
            0x8007232B,
            0x8007251D,
            0x8007267C,
            0x800706BA,
        ];
        for code in reference {
            let info = HResult(code).info().unwrap_or_else(|| panic!("{code:#X} missing"));
            assert!(!info.name.is_empty() && info.meaning.ends_with('.') && info.fix.ends_with('.'), "{info:?}");
        }
        let mut codes: Vec<u32> = TABLE.iter().map(|i| i.code.0).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len(), "duplicate code in the table");
    }

    #[test]
    fn display_and_parse_agree() {
        assert_eq!(HResult::NO_HOST_AVAILABLE.to_string(), "0xC004F074");
        for text in ["0xC004F074", "0xc004f074", "C004F074", "3221549172", "-1073418124"] {
            assert_eq!(HResult::parse(text), Some(HResult::NO_HOST_AVAILABLE), "{text}");
        }
        assert_eq!(HResult::parse("nonsense"), None);
        assert_eq!(HResult(0x1234_5678).name(), "UNKNOWN");
        assert!(HResult::SUCCESS.is_success() && !HResult::NOT_ENOUGH_COUNT.is_success());
    }
}
