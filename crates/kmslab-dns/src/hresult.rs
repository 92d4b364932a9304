//! The KMS-lab HRESULT codes that DNS failures map to.
//!
//! The values are the Win32 errors a Windows KMS client or host reports for the same
//! failure (`HRESULT_FROM_WIN32`), so drills and `slmgr /explain` show familiar numbers.

/// `DNS_ERROR_RCODE_SERVER_FAILURE`: the DNS server failed, refused or did not answer.
pub const DNS_SERVER_FAILURE: u32 = 0x8007_232A;
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
