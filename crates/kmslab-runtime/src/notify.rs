//! systemd readiness notification (`Type=notify`): `READY=1` and `STOPPING=1` sent as a
//! datagram to `$NOTIFY_SOCKET`, the whole protocol systemd needs from a daemon.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Sends `message` (e.g. `READY=1`) to the notification socket at `socket` (a path, or an
/// abstract name starting with `@`).
pub fn notify(socket: &str, message: &str) -> io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sender.send_to_addr(message.as_bytes(), &addr)?;
    } else {
        sender.send_to(message.as_bytes(), socket)?;
    }
    Ok(())
}

/// Tells systemd the daemon is ready, when started by systemd with `Type=notify`; does
/// nothing otherwise. Errors are ignored: readiness is advisory.
pub fn ready() {
    if let Ok(socket) = std::env::var("NOTIFY_SOCKET") {
        let _ = notify(&socket, "READY=1");
    }
}

/// Tells systemd the daemon is shutting down (when started by systemd).
pub fn stopping() {
    if let Ok(socket) = std::env::var("NOTIFY_SOCKET") {
        let _ = notify(&socket, "STOPPING=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_path_socket_and_an_abstract_one() {
        let dir = std::env::temp_dir().join(format!("kmslab-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        notify(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();

        use std::os::linux::net::SocketAddrExt;
        let name = format!("kmslab-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        notify(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(notify("/nonexistent/socket", "READY=1").is_err());
    }
}
