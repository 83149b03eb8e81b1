//! The real processes of these tests: a throwaway `redis-server` and the service binary, each on a
//! free loopback port and stopped by pid.
//!
//! (The backend has a fuller Redis helper behind its `test-support` feature; depending on the
//! whole backend for these few lines would double this crate's test build.)

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port below the kernel's ephemeral range (see `mcp_edge_test_ports`).
pub fn free_port() -> u16 {
    mcp_edge_test_ports::free_port().expect("free port")
}

/// `redis-server` without persistence, restartable on the same port.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self {
            child: None,
            port: free_port(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/install-deps.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `STOP` or `CONT`, by pid.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server cannot die of SIGKILL until continued on some systems; be sure.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// A running `mcp-edge-ratelimit`.
pub struct Service {
    child: Child,
    pub addr: String,
    /// `host:port` of `GET /metrics` when started with `--metrics-addr`.
    pub metrics_addr: Option<String>,
}

impl Service {
    /// Starts the binary with `--limits <limits>` and `args`; waits for its listening line.
    pub fn start(limits: &Path, args: &[&str]) -> Self {
        Self::start_with_env(limits, args, &[])
    }

    /// [`Service::start`] with environment variables `env` set.
    pub fn start_with_env(limits: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-edge-ratelimit"))
            .envs(env.iter().copied())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--limits")
            .arg(limits)
            .args(["--reload-interval-ms", "50"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mcp-edge-ratelimit");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics_addr = None;
        let addr = loop {
            let line = lines
                .next()
                .expect("the service printed its address")
                .expect("stdout line");
            if let Some(addr) = line.strip_prefix("mcp-edge-ratelimit metrics on ") {
                metrics_addr = Some(addr.to_string());
            }
            if let Some(addr) = line.strip_prefix("mcp-edge-ratelimit listening on ") {
                break addr.to_string();
            }
        };
        Self {
            child,
            addr: format!("http://{addr}"),
            metrics_addr,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of `GET /metrics` (HTTP/1.0, so the server closes when done).
pub fn metrics(service: &Service) -> String {
    use std::io::{Read as _, Write as _};
    let addr = service.metrics_addr.as_deref().expect("--metrics-addr");
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text
}

/// Runs the binary to completion: (exit success, stderr).
pub fn run_to_exit(limits: &Path, args: &[&str]) -> (bool, String) {
    run_to_exit_with_env(limits, args, &[])
}

/// [`run_to_exit`] with environment variables `env` set.
pub fn run_to_exit_with_env(limits: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-edge-ratelimit"))
        .envs(env.iter().copied())
        .arg("--limits")
        .arg(limits)
        .args(args)
        .output()
        .expect("run mcp-edge-ratelimit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits, if needed, until at least `room` is left in the current UTC minute. The service's
/// windows turn on the clock, so a test that counts a minute budget must not straddle a minute's
/// end (its budget would come back half way through).
pub async fn minute_with_room(room: Duration) {
    let ms = mcp_edge_ratelimit::clock_window::now_ms();
    let left = Duration::from_millis(60_000 - ms % 60_000);
    if left < room {
        tokio::time::sleep(left + Duration::from_millis(20)).await;
    }
}
