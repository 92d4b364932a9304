//! The embedded lab DNS server behind `kmslab dns` and `kmslab up`, on hickory-server.
//!
//! One primary zone, served from hickory's SQLite-journalled store: the first start writes
//! a zone file with the SOA and NS records into the data directory, hickory loads it and
//! copies it into its journal, and from then on every accepted update is journalled, so a
//! restart on the same data directory serves the same records. Updates are accepted only
//! when TSIG-signed with the configured key (hickory's store refuses unsigned updates and
//! answers NOTAUTH with BADKEY/BADSIG to wrongly signed ones).
//!
//! An answer of several records is rotated by one position per query ([`RotatingZone`]),
//! like BIND's `rrset-order cyclic` and the Windows DNS Server's round robin (both on by
//! default in their own way): two `_vlmcs._tcp` records of equal priority and weight reach
//! the clients in both orders, so a fleet spreads over the hosts whatever order the
//! records were added in.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType, TSigResponseContext};
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::server::{Request, RequestInfo};
use hickory_server::store::sqlite::{SqliteConfig, SqliteZoneHandler, TsigKeyConfig};
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, Catalog, LookupControlFlow, LookupError, LookupOptions, LookupRecords, Nsec3QueryInfo, ZoneHandler,
    ZoneTransfer, ZoneType,
};
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

use crate::hresult;
use crate::tsig::{TSIG_FUDGE, TsigKey};

/// How long an idle TCP connection may stay open.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection (the figure hickory's own tests use).
const TCP_RESPONSE_BUFFER: usize = 32;
/// How often to retry finding a port free for both UDP and TCP when asked for port 0.
const PORT_ATTEMPTS: usize = 20;
/// TTL of the SOA and NS records the first start creates.
const ZONE_TTL: u32 = 300;

/// What the embedded server serves and where it keeps its state.
#[derive(Clone, Debug)]
pub struct LabDnsConfig {
    /// The zone served, e.g. `lab.test` (a trailing dot is optional).
    pub zone: String,
    /// Address for both UDP and TCP; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory of the zone file, the update journal and the key file (created if absent).
    pub data_dir: PathBuf,
    /// The only key allowed to sign updates.
    pub tsig: TsigKey,
}

/// A running embedded DNS server. Dropping it aborts its tasks; [`LabDnsServer::shutdown`]
/// stops it cleanly.
pub struct LabDnsServer {
    server: Server<Catalog>,
    local_addr: SocketAddr,
    zone: String,
    faults: Arc<DnsFaults>,
}

/// Faults `kmslab up`'s control API switches on a running server: updates refused
/// (REFUSED, which a publishing host reports in event 12293) and an outage (queries and
/// updates go unanswered until the outage ends, so clients time out).
#[derive(Debug)]
pub struct DnsFaults {
    refuse_updates: std::sync::atomic::AtomicBool,
    outage: tokio::sync::watch::Sender<bool>,
}

impl Default for DnsFaults {
    fn default() -> Self {
        DnsFaults { refuse_updates: std::sync::atomic::AtomicBool::new(false), outage: tokio::sync::watch::Sender::new(false) }
    }
}

/// Longest an unanswered query is held during an outage (every client has given up by then).
const OUTAGE_HOLD: Duration = Duration::from_secs(30);

impl DnsFaults {
    /// Refuses (true) or accepts again (false) dynamic updates.
    pub fn set_refuse_updates(&self, refuse: bool) {
        self.refuse_updates.store(refuse, Ordering::Relaxed);
    }

    /// True while updates are refused.
    pub fn refusing_updates(&self) -> bool {
        self.refuse_updates.load(Ordering::Relaxed)
    }

    /// Starts (true) or ends (false) an outage.
    pub fn set_outage(&self, outage: bool) {
        self.outage.send_replace(outage);
    }

    /// True during an outage.
    pub fn in_outage(&self) -> bool {
        *self.outage.borrow()
    }

    /// Holds a query during an outage: until it ends or [`OUTAGE_HOLD`].
    async fn hold(&self) {
        if self.in_outage() {
            let mut rx = self.outage.subscribe();
            let _ = tokio::time::timeout(OUTAGE_HOLD, rx.wait_for(|o| !*o)).await;
        }
    }
}

impl std::fmt::Debug for LabDnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabDnsServer").field("local_addr", &self.local_addr).field("zone", &self.zone).finish_non_exhaustive()
    }
}

/// Why the embedded DNS server could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The zone name is not a valid DNS name.
    #[error("zone {zone:?} is not a valid DNS name: {detail}")]
    InvalidZone {
        /// The zone given.
        zone: String,
        /// Why it is not valid.
        detail: String,
    },
    /// The data directory or a file in it could not be created or written.
    #[error("cannot use data directory file {}: {source}", path.display())]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The listen address could not be bound for UDP or TCP.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// hickory could not load the zone file or recover the journal.
    #[error("cannot load zone {zone}: {detail}")]
    Zone {
        /// The zone.
        zone: String,
        /// hickory's reason.
        detail: String,
    },
    /// The server's tasks ended with an error while shutting down.
    #[error("DNS server did not shut down cleanly: {detail}")]
    Shutdown {
        /// The task error.
        detail: String,
    },
}

impl ServeError {
    /// The KMS-lab HRESULT: a bad zone name 0x80070057, a local socket or file problem
    /// 0x8007001D, a zone that does not load or a failed shutdown 0x8007232A.
    pub fn hresult(&self) -> u32 {
        match self {
            Self::InvalidZone { .. } => hresult::INVALID_ARGUMENT,
            Self::DataDir { .. } | Self::Bind { .. } => hresult::LOCAL_FAILURE,
            Self::Zone { .. } | Self::Shutdown { .. } => hresult::DNS_SERVER_FAILURE,
        }
    }
}

impl LabDnsServer {
    /// Prepares the data directory, loads the zone (from the journal if there is one), binds
    /// UDP and TCP on the same port and starts serving.
    pub async fn start(config: LabDnsConfig) -> Result<Self, ServeError> {
        let zone = config.zone.trim().trim_end_matches('.').to_owned();
        let origin = Name::from_ascii(format!("{zone}."))
            .map_err(|error| ServeError::InvalidZone { zone: config.zone.clone(), detail: error.to_string() })?;
        if zone.is_empty() {
            return Err(ServeError::InvalidZone { zone: config.zone.clone(), detail: "the root zone cannot be served".to_owned() });
        }

        let data_dir = &config.data_dir;
        fs::create_dir_all(data_dir).map_err(|source| ServeError::DataDir { path: data_dir.clone(), source })?;
        let files = ZoneFiles::new(data_dir, &zone);
        let journal_exists = files.journal.exists();
        if !journal_exists && !files.zone.exists() {
            write_file(&files.zone, initial_zone_file(&zone, config.listen.ip()).as_bytes())?;
        }
        // hickory reads TSIG secrets from a file of raw bytes. It is rewritten on every start
        // so that the key given now, not an older one, is the one accepted.
        write_file(&files.key, &config.tsig.secret)?;

        let sqlite = SqliteConfig {
            zone_path: files.zone.clone(),
            journal_path: files.journal.clone(),
            allow_update: true,
            tsig_keys: vec![TsigKeyConfig {
                name: format!("{}.", config.tsig.name),
                key_file: files.key.clone(),
                algorithm: config.tsig.algorithm.to_hickory(),
                fudge: TSIG_FUDGE,
            }],
        };
        let handler = SqliteZoneHandler::<TokioRuntimeProvider>::try_from_config(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
            false,
            None,
            &sqlite,
            None,
        )
        .await
        .map_err(|detail| ServeError::Zone { zone: zone.clone(), detail })?;
        let mut catalog = Catalog::new();
        let faults = Arc::new(DnsFaults::default());
        let handler: Arc<dyn ZoneHandler> =
            Arc::new(RotatingZone { inner: handler, next: AtomicUsize::new(0), faults: Arc::clone(&faults) });
        catalog.upsert(LowerName::from(&origin), vec![handler]);

        let (udp, tcp, local_addr) = bind_pair(config.listen).await?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        info!(%local_addr, %zone, recovered = journal_exists, "lab DNS server started");
        Ok(Self { server, local_addr, zone, faults })
    }

    /// The address UDP and TCP are bound to (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The zone served, without a trailing dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The fault switches of this server.
    pub fn faults(&self) -> &Arc<DnsFaults> {
        &self.faults
    }

    /// Stops accepting queries, waits for the server's tasks to end and closes the journal.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        let result = self.server.shutdown_gracefully().await.map_err(|error| ServeError::Shutdown { detail: error.to_string() });
        info!(local_addr = %self.local_addr, zone = %self.zone, "lab DNS server stopped");
        result
    }
}

/// The zone handler with cyclic order of multi-record answers: every answer of two or
/// more records starts one record later than the previous one did (BIND's `rrset-order
/// cyclic`, the Windows DNS Server's round robin). Everything else is the SQLite handler's.
struct RotatingZone {
    inner: SqliteZoneHandler<TokioRuntimeProvider>,
    /// Queries answered with several records so far: the rotation of the next one.
    next: AtomicUsize,
    faults: Arc<DnsFaults>,
}

impl RotatingZone {
    fn rotate(&self, flow: LookupControlFlow<AuthLookup>) -> LookupControlFlow<AuthLookup> {
        let rotate_lookup = |lookup: AuthLookup| match lookup {
            AuthLookup::Records { answers, additionals } => {
                let mut records: Vec<Record> = answers.iter().cloned().collect();
                if records.len() < 2 {
                    return AuthLookup::Records { answers, additionals };
                }
                let shift = self.next.fetch_add(1, Ordering::Relaxed) % records.len();
                records.rotate_left(shift);
                AuthLookup::Records { answers: LookupRecords::Section(records), additionals }
            }
            other => other,
        };
        match flow {
            LookupControlFlow::Continue(Ok(lookup)) => LookupControlFlow::Continue(Ok(rotate_lookup(lookup))),
            LookupControlFlow::Break(Ok(lookup)) => LookupControlFlow::Break(Ok(rotate_lookup(lookup))),
            other => other,
        }
    }
}

#[async_trait::async_trait]
impl ZoneHandler for RotatingZone {
    fn zone_type(&self) -> ZoneType {
        self.inner.zone_type()
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        self.inner.axfr_policy()
    }

    fn can_validate_dnssec(&self) -> bool {
        self.inner.can_validate_dnssec()
    }

    async fn update(&self, update: &Request, now: u64) -> (Result<bool, ResponseCode>, Option<TSigResponseContext>) {
        self.faults.hold().await;
        if self.faults.refusing_updates() {
            return (Err(ResponseCode::Refused), None);
        }
        self.inner.update(update, now).await
    }

    fn origin(&self) -> &LowerName {
        self.inner.origin()
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.faults.hold().await;
        self.rotate(self.inner.lookup(name, rtype, request_info, lookup_options).await)
    }

    async fn search(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        self.faults.hold().await;
        let (flow, signer) = self.inner.search(request, lookup_options).await;
        (self.rotate(flow), signer)
    }

    async fn nsec_records(&self, name: &LowerName, lookup_options: LookupOptions) -> LookupControlFlow<AuthLookup> {
        self.inner.nsec_records(name, lookup_options).await
    }

    async fn nsec3_records(&self, info: Nsec3QueryInfo<'_>, lookup_options: LookupOptions) -> LookupControlFlow<AuthLookup> {
        self.inner.nsec3_records(info, lookup_options).await
    }

    async fn zone_transfer(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
        now: u64,
    ) -> Option<(Result<ZoneTransfer, LookupError>, Option<TSigResponseContext>)> {
        self.inner.zone_transfer(request, lookup_options, now).await
    }

    fn nx_proof_kind(&self) -> Option<&NxProofKind> {
        self.inner.nx_proof_kind()
    }
}

/// The files of one zone in the data directory.
struct ZoneFiles {
    zone: PathBuf,
    journal: PathBuf,
    key: PathBuf,
}

impl ZoneFiles {
    fn new(data_dir: &Path, zone: &str) -> Self {
        Self {
            zone: data_dir.join(format!("{zone}.zone")),
            journal: data_dir.join(format!("{zone}.jrnl")),
            key: data_dir.join(format!("{zone}.tsig")),
        }
    }
}

/// SOA and NS for a fresh zone; the name server `ns.<zone>` gets the listen address (the
/// loopback address when listening on every address).
fn initial_zone_file(zone: &str, listen: IpAddr) -> String {
    let ns_address = match listen {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let address_type = if ns_address.is_ipv4() { "A" } else { "AAAA" };
    format!(
        "$ORIGIN {zone}.\n\
         $TTL {ZONE_TTL}\n\
         @ IN SOA ns.{zone}. hostmaster.{zone}. ( 1 3600 600 86400 60 )\n\
         @ IN NS ns.{zone}.\n\
         ns IN {address_type} {ns_address}\n"
    )
}

fn write_file(path: &Path, content: &[u8]) -> Result<(), ServeError> {
    let data_dir_error = |source| ServeError::DataDir { path: path.to_owned(), source };
    fs::write(path, content).map_err(data_dir_error)?;
    restrict_permissions(path).map_err(data_dir_error)
}

/// The key file holds a secret: readable by its owner only.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Binds UDP and TCP on the same port. For port 0 the OS picks a TCP port and UDP is tried
/// on it; if that UDP port is taken, another TCP port is picked.
async fn bind_pair(listen: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), ServeError> {
    let bind_error = |source| ServeError::Bind { address: listen, source };
    if listen.port() != 0 {
        let udp = UdpSocket::bind(listen).await.map_err(bind_error)?;
        let tcp = TcpListener::bind(listen).await.map_err(bind_error)?;
        return Ok((udp, tcp, listen));
    }
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let tcp = TcpListener::bind(listen).await.map_err(bind_error)?;
        let local_addr = tcp.local_addr().map_err(bind_error)?;
        match UdpSocket::bind(local_addr).await {
            Ok(udp) => return Ok((udp, tcp, local_addr)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = Some(error),
            Err(error) => return Err(bind_error(error)),
        }
    }
    Err(bind_error(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no port free for both UDP and TCP"))))
}
