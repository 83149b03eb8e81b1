//! Loopback ports for the servers a test starts (Envoy, Redis, the rate limit service, …), which
//! bind them a moment after they are chosen.
//!
//! A port the kernel hands out for `127.0.0.1:0` lies in its ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default), where every outgoing
//! connection and every other process's port-0 bind may take it in that moment (seen: Envoy
//! exiting with `Address already in use` while another test run shared the machine). The ports
//! handed out here lie below that range, and at least 10000 below it, so a Redis Cluster node's
//! bus port (its port + 10000) stays out of it too: only another test choosing the same port can
//! take one. Within a process no port is handed out twice. Across processes a port is reserved
//! with a lock file (`$TMPDIR/mcp-edge-test-ports/<port>.lock`, `flock`ed until the process exits,
//! however it exits): seen, two test runs on one machine chose the same free port, and the second
//! Envoy to bind it exited with `Address already in use`. The search starts at a point spread by
//! process id and time, so processes rarely even try the same ports.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The lowest port handed out (above the well-known and most registered service ports in use).
const LOWEST: u16 = 10_000;
/// The kernel's default start of the ephemeral range, when it cannot be read.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
/// Room left below the ephemeral range for a Redis Cluster node's bus port (port + 10000).
const BUS_OFFSET: u16 = 10_000;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// The lock files of the ports this process holds: open (and locked) until it exits.
static RESERVATIONS: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A loopback TCP port that is free now, outside the kernel's ephemeral range; never the same
/// twice in this process. Falls back to a kernel-chosen port when the range leaves no room.
pub fn free_port() -> std::io::Result<u16> {
    let (low, high) = candidates(ephemeral_start());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    if high > low {
        let span = u32::from(high - low);
        let start = spread() % span;
        for step in 0..span {
            let port = low + u16::try_from((start + step) % span).unwrap_or(0);
            if handed_out.contains(&port) {
                continue;
            }
            let Some(reservation) = reserve(port) else {
                continue; // another process holds it
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                RESERVATIONS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(reservation);
                return Ok(port);
            }
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    handed_out.insert(port);
    Ok(port)
}

/// The directory of the ports' lock files, shared by every test process of the machine.
fn reservations_dir() -> PathBuf {
    std::env::temp_dir().join("mcp-edge-test-ports")
}

/// `port`'s lock file, locked by this process; `None` when another process holds it (or the
/// file cannot be made: then the port is not used, rather than used unreserved).
fn reserve(port: u16) -> Option<File> {
    let dir = reservations_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{port}.lock")))
        .ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// The ports to choose from, `low..high`, for an ephemeral range starting at `ephemeral`.
fn candidates(ephemeral: u16) -> (u16, u16) {
    (LOWEST, ephemeral.saturating_sub(BUS_OFFSET).max(LOWEST))
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

/// A starting offset that differs between processes started together.
fn spread() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_lie_below_the_ephemeral_range_and_are_never_repeated() {
        let (_, high) = candidates(ephemeral_start());
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            let port = free_port().expect("a port");
            assert!((LOWEST..high).contains(&port), "{port}");
            assert!(seen.insert(port), "{port} handed out twice");
        }
    }

    #[test]
    fn a_handed_out_port_is_reserved_against_other_processes() {
        let port = free_port().expect("a port");
        // Another open of the lock file (as another process would) cannot lock it: flock locks
        // belong to the open file, so this holds within one process too.
        let other = OpenOptions::new()
            .write(true)
            .open(reservations_dir().join(format!("{port}.lock")))
            .expect("the lock file exists");
        assert!(other.try_lock().is_err(), "{port} is not reserved");
        assert!(reserve(port).is_none(), "{port} reserved twice");
    }

    #[test]
    fn the_range_leaves_room_for_cluster_bus_ports() {
        assert_eq!(candidates(32_768), (10_000, 22_768));
        assert_eq!(
            candidates(15_000),
            (10_000, 10_000),
            "no room: kernel-chosen ports"
        );
    }
}
