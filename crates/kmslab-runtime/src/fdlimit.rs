//! The open-files limit (`RLIMIT_NOFILE`): raised to its hard limit at start, and the
//! budget the daemons size their connection caps from, so that admin connections can never
//! take the descriptors the KMS listener needs.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept out of every connection cap: the registry and its WAL, the listeners,
/// DNS sockets, log output, the runtime's own (epoll, eventfd) and a margin for files
/// opened on demand (exports, the state file's temporary copy).
pub const RESERVED_FDS: u64 = 64;

/// Raises the soft open-files limit to the hard limit (a process may always do that), and
/// returns the soft limit in force afterwards. A limit that cannot be read counts as
/// unlimited; a failed raise keeps the old soft limit.
pub fn raise_nofile_limit() -> u64 {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let soft = current.unwrap_or(u64::MAX);
    match maximum {
        Some(hard) if hard > soft => match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        // Already at the hard limit, or the hard limit is "unlimited" (the kernel still caps
        // it at nr_open, which we do not guess): keep what we have.
        _ => soft,
    }
}

/// The open-files soft limit now (`u64::MAX` when unlimited).
pub fn nofile_limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// How the descriptors of a `limit` are shared: `(kms, admin)` connection caps. The admin
/// API gets at most `admin_want` and never more than a quarter of what is left after
/// [`RESERVED_FDS`]; the KMS listener gets at most `kms_want` of the rest. Both caps are
/// at least 1.
pub fn share(limit: u64, kms_want: usize, admin_want: usize) -> (usize, usize) {
    let usable = limit.saturating_sub(RESERVED_FDS);
    let admin = (admin_want as u64).min(usable / 4).max(1);
    let kms = (kms_want as u64).min(usable.saturating_sub(admin)).max(1);
    (kms as usize, admin as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_api_never_takes_what_the_kms_listener_needs() {
        // Plenty: each gets what it asked for.
        assert_eq!(share(1_048_576, 1024, 64), (1024, 64));
        // `ulimit -n 256`: 192 usable, the admin API at most 48, the KMS listener the rest.
        assert_eq!(share(256, 1024, 64), (144, 48));
        let (kms, admin) = share(256, 1024, 64);
        assert!(kms as u64 + admin as u64 + RESERVED_FDS <= 256);
        // Absurdly low: still one each, the caller warns.
        assert_eq!(share(10, 1024, 64), (1, 1));
        assert_eq!(share(u64::MAX, 1024, 64), (1024, 64));
    }

    #[test]
    fn raising_is_idempotent() {
        let once = raise_nofile_limit();
        assert_eq!(raise_nofile_limit(), once);
        assert_eq!(nofile_limit(), once);
    }
}
