//! The admin HTTP edge shared by `kms-host` and `kms-client` (docs/reliability.md, "Threat
//! model"): who may call an admin API and how its listener is kept from being starved.
//!
//! - [`token`]: the bearer token (`--admin-token`, `--admin-token-file`), kept only as a
//!   SHA-256 digest and compared in constant time;
//! - [`guard`]: the middleware every request goes through: the `Host` header must name
//!   this listener (DNS rebinding), state-changing requests must prove they are not
//!   cross-site (`Origin`, `Referer`, `Sec-Fetch-Site`, a JSON content type), then the
//!   per-source rules (`--admin-local-network`, `--admin-read-network`, the token); every
//!   answer carries `Content-Security-Policy`, `X-Frame-Options` and `nosniff`;
//! - [`answer`]: [`ApiError`], the one error answer of every admin API, in the two JSON
//!   forms docs/interfaces.md gives (kms-client's with `name`, kms-host's without);
//! - [`serve`]: an HTTP/1.1 server with a header-read timeout, a connection cap and a
//!   per-source cap, so that slow or idle admin connections cannot take the descriptors
//!   the KMS listener needs.
//!
//! **Architecture Invariant:** no KMS behaviour here; it decides which HTTP requests reach
//! a daemon's handlers at all.
#![forbid(unsafe_code)]

pub mod answer;
pub mod guard;
pub mod serve;
pub mod token;

pub use answer::ApiError;
pub use guard::AdminAccess;
pub use serve::{ServeLimits, ServeStats, serve};
pub use token::AdminToken;
