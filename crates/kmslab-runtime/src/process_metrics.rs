//! The process metrics every kmslab `/metrics` ends with: `kmslab_build_info` and the
//! standard `process_*` series of the Prometheus client libraries (CPU seconds, resident
//! and virtual memory, open and maximum file descriptors, start time), read from
//! `/proc/self` on Linux. Elsewhere only `kmslab_build_info` is written.

use crate::prometheus::{ConstCounter, ConstGauge, MetricType, Registry, Series, register as put};

/// Registers `kmslab_build_info` and the `process_*` series (read now) in `registry`.
pub fn register(registry: &mut Registry) {
    let mut build = Series::new(MetricType::Gauge);
    build.push([("version", env!("CARGO_PKG_VERSION")), ("revision", crate::GIT_REVISION)], ConstGauge::new(1_i64));
    put(registry, "kmslab_build_info", "The kmslab version and git revision this process was built from.", build);
    if let Some(p) = read() {
        put(registry, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", ConstCounter::new(p.cpu_seconds));
        for (name, help, value) in [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_bytes),
            ("process_open_fds", "Number of open file descriptors.", p.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors.", p.max_fds),
            ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", p.start_time_seconds),
        ] {
            put(registry, name, help, ConstGauge::new(value));
        }
    }
}

/// Appends `kmslab_build_info` and the `process_*` series to a Prometheus text body.
pub fn render(out: &mut String) {
    let mut registry = Registry::default();
    register(&mut registry);
    out.push_str(&crate::prometheus::encode(&registry));
}

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    start_time_seconds: f64,
}

/// Clock ticks per second of `/proc/*/stat` times: `USER_HZ`, 100 on every Linux
/// architecture kmslab builds for (the kernel ABI fixes it, whatever `CONFIG_HZ` is).
const USER_HZ: f64 = 100.0;
/// Page size for `statm`; 4 KiB on x86_64 and most aarch64 kernels.
const PAGE_SIZE: f64 = 4096.0;

fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in brackets and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let (utime, stime, starttime, vsize, rss_pages) = (field(14)?, field(15)?, field(22)?, field(23)?, field(24)?);
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))?;
    let open_fds = count_entries(std::path::Path::new("/proc/self/fd"))? as f64;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).and_then(|soft| soft.parse::<f64>().ok()))?;
    Some(Process {
        cpu_seconds: (utime + stime) / USER_HZ,
        resident_bytes: rss_pages * PAGE_SIZE,
        virtual_bytes: vsize,
        open_fds,
        max_fds,
        start_time_seconds: boot_time + starttime / USER_HZ,
    })
}

/// How many entries a directory has: for `/proc/self/fd`, the open descriptors.
fn count_entries(dir: &std::path::Path) -> Option<usize> {
    Some(std::fs::read_dir(dir).ok()?.count())
}

#[cfg(test)]
mod tests {
    #[test]
    // Compares the process start time with the real clock.
    #[allow(clippy::disallowed_methods)]
    fn reads_this_process() {
        let mut text = String::new();
        super::render(&mut text);
        assert!(
            text.contains(&format!(
                "kmslab_build_info{{version=\"{}\",revision=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION"),
                crate::GIT_REVISION
            )),
            "{text}"
        );
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "), "{text}");
        let p = super::read().expect("/proc/self is readable on Linux");
        assert!(p.resident_bytes > 1e6 && p.virtual_bytes >= p.resident_bytes, "{p:?}");
        assert!(p.open_fds >= 3.0 && p.max_fds >= p.open_fds, "{p:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!((now - p.start_time_seconds).abs() < 3600.0, "started {} s ago?", now - p.start_time_seconds);
    }

    /// The fd count is a count of directory entries (other tests in this process open and
    /// close descriptors concurrently, so `/proc/self/fd` itself cannot be compared exactly).
    #[test]
    fn counts_directory_entries() {
        let dir = std::env::temp_dir().join(format!("kmslab-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..3 {
            std::fs::write(dir.join(n.to_string()), b"").unwrap();
        }
        assert_eq!(super::count_entries(&dir), Some(3));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(super::count_entries(&dir), None);
    }
}
