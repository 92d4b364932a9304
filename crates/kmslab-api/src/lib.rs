//! Typed views of the kmslab admin APIs, shared by the daemons that serve them and the
//! tools that read them (slmgr, the drills, the fleet):
//!
//! - [`HostStatus`]: kms-host's `GET /api/v1/status`;
//! - [`ClientStatus`]: kms-client's `GET /api/v1/status`;
//! - [`EventRecord`]: one event of either daemon's `GET /api/v1/events`;
//! - [`ClientEntry`]: one row of kms-host's `GET /api/v1/clients`;
//! - [`render`]: the one renderer of the slmgr `/dli`, `/dlv` and `/xpr` text.
//!
//! The JSON of each type is the public contract of docs/interfaces.md: fields are only
//! ever added. Times are RFC 3339 strings (UTC), as the daemons have always served them.
//!
//! **Architecture Invariant:** this crate has no I/O and no runtime (no tokio, HTTP or
//! SQLite): a view is plain data, so every reader links the same types the daemons serve.

pub mod client;
pub mod event;
pub mod host;
pub mod render;

pub use client::{ClientHost, ClientStatus, LastResult, ProductView};
pub use event::{ClientEntry, ClientList, EventList, EventRecord};
pub use host::{
    DnsStatus, GroupCount, Health, HostCounters, HostGenuine, HostLicense, HostSettings, HostStatus, LastRequest, WINDOWS_APPLICATION_ID,
    ZoneStatus,
};
