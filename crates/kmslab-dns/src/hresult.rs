//! The KMS-lab HRESULT codes that DNS failures map to.
//!
//! The values are the Win32 errors a Windows KMS client or host reports for the same
//! failure (`HRESULT_FROM_WIN32`), so drills and `slmgr /explain` show familiar numbers.

/// `DNS_ERROR_RCODE_SERVER_FAILURE`: the DNS server failed (SERVFAIL), could not be
/// reached or did not answer.
pub const DNS_SERVER_FAILURE: u32 = 0x8007_232A;
/// `DNS_ERROR_RCODE_REFUSED`: the DNS server refused the query or the update (REFUSED).
pub const DNS_REFUSED: u32 = 0x8007_232D;
/// `DNS_ERROR_RCODE_NOTAUTH`: not authoritative for the zone, or a signature is required.
pub const DNS_NOT_AUTH: u32 = 0x8007_2331;
/// `DNS_ERROR_RCODE_BADSIG`: the TSIG signature did not verify (wrong secret).
pub const DNS_BAD_SIGNATURE: u32 = 0x8007_2338;
/// `DNS_ERROR_RCODE_BADKEY`: the server does not know the TSIG key.
pub const DNS_BAD_KEY: u32 = 0x8007_2339;
/// `DNS_ERROR_RCODE_BADTIME`: the TSIG time is outside the server's fudge.
pub const DNS_BAD_TIME: u32 = 0x8007_233A;
/// `DNS_ERROR_RCODE_NAME_ERROR`: the DNS name does not exist (NXDOMAIN).
pub const DNS_NAME_DOES_NOT_EXIST: u32 = 0x8007_232B;
/// `DNS_INFO_NO_RECORDS`: the name exists but has no record of the asked type.
pub const DNS_NO_RECORDS: u32 = 0x8007_251D;
/// `DNS_ERROR_NO_DNS_SERVERS`: no DNS server is configured on this machine.
pub const DNS_NO_SERVERS: u32 = 0x8007_267C;
/// `RPC_S_SERVER_UNAVAILABLE`: the server could not be reached at all (port closed).
pub const HOST_UNREACHABLE: u32 = 0x8007_06BA;
/// `ERROR_TIMEOUT`: the server did not answer in time.
pub const TIMEOUT: u32 = 0x8007_05B4;
/// `E_INVALIDARG`: a name, key or setting given to this crate is malformed.
pub const INVALID_ARGUMENT: u32 = 0x8007_0057;
/// `ERROR_WRITE_FAULT`: a local resource of our own (a socket to bind, a file in the data
/// directory) could not be used. Only the embedded server reports it.
pub const LOCAL_FAILURE: u32 = 0x8007_001D;

/// The `DNS_ERROR_RCODE_*` HRESULT of a DNS response code, as Windows reports it:
/// `HRESULT_FROM_WIN32(DNS_ERROR_RESPONSE_CODES_BASE (9000) + rcode)` for the codes winerror.h
/// names (FORMERR 1 .. NOTZONE 10, BADSIG 16, BADKEY 17, BADTIME 18); SERVER_FAILURE for
/// any other (unassigned) code.
pub fn from_rcode(rcode: u16) -> u32 {
    match rcode {
        1..=10 | 16..=18 => 0x8007_0000 | (9000 + u32::from(rcode)),
        _ => DNS_SERVER_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcodes_map_to_their_own_dns_error_rcode_codes() {
        let check = |rcode: u16, expected: u32| assert_eq!(from_rcode(rcode), expected, "rcode {rcode}");
        check(1, 0x8007_2329); // FORMERR
        check(2, DNS_SERVER_FAILURE); // SERVFAIL
        check(3, DNS_NAME_DOES_NOT_EXIST); // NXDOMAIN
        check(4, 0x8007_232C); // NOTIMP
        check(5, DNS_REFUSED);
        check(9, DNS_NOT_AUTH);
        check(10, 0x8007_2332); // NOTZONE
        check(16, DNS_BAD_SIGNATURE);
        check(17, DNS_BAD_KEY);
        check(18, DNS_BAD_TIME);
        check(11, DNS_SERVER_FAILURE);
        check(4095, DNS_SERVER_FAILURE);
    }
}
