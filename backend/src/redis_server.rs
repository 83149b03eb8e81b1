//! A throwaway `redis-server` for tests (not part of the server): on a free loopback port with its
//! own directory and an append-only file with `appendfsync always` (so every acknowledged write
//! survives a kill) — or, [`RedisServer::start_volatile`], without any persistence (a kill loses
//! everything) — stopped by pid; and a three-master [`RedisCluster`]. Shared by the unit tests (the Redis store's conformance run)
//! and the integration tests (metering, the fault test), so no Redis test is ever skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    /// Whether writes survive a kill (AOF, fsync always) or not (no persistence at all).
    persistent: bool,
    pub port: u16,
    pub dir: PathBuf,
}

/// A free loopback port below the kernel's ephemeral range (see `mcp_edge_test_ports`).
pub fn free_port() -> u16 {
    mcp_edge_test_ports::free_port().expect("free port")
}

/// A fresh temporary directory.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mcp-edge-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl RedisServer {
    /// Starts a server on a free port in a new directory. Fails (never skips) when
    /// `redis-server` is not installed: scripts/install-deps.sh installs it.
    pub fn start() -> Self {
        Self::start_persistent(true)
    }

    /// [`RedisServer::start`] without persistence: a kill loses every key, as with `--save ""
    /// --appendonly no`.
    pub fn start_volatile() -> Self {
        Self::start_persistent(false)
    }

    fn start_persistent(persistent: bool) -> Self {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        assert!(
            installed,
            "redis-server is not installed: run scripts/install-deps.sh"
        );
        let mut server = Self {
            child: None,
            persistent,
            port: free_port(),
            dir: temp_dir("redis"),
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// (Re)starts the server on the same port and directory, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                if self.persistent { "yes" } else { "no" },
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Kills the server (SIGKILL, by pid) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the server, by pid.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// A blocking connection.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("redis connection")
    }

    /// Whether writes survive a kill.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A throwaway Redis Cluster for tests: three masters (no replicas) on free loopback ports (and
/// free cluster-bus ports), each with its own directory, joined with `redis-cli --cluster
/// create`; stopped by pid on drop.
pub struct RedisCluster {
    nodes: Vec<Child>,
    pub ports: Vec<u16>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts the three nodes and waits until the cluster reports `cluster_state:ok` on each.
    pub fn start() -> Self {
        let dir = temp_dir("redis-cluster");
        let mut cluster = Self {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for i in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let node_dir = cluster.dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .arg("--dir")
                .arg(&node_dir)
                .args(["--appendonly", "no", "--save", ""])
                .args(["--daemonize", "no", "--protected-mode", "yes"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server (cluster node)");
            cluster.nodes.push(child);
            cluster.ports.push(port);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &cluster.ports {
            while !ping(*port) {
                assert!(
                    Instant::now() < deadline,
                    "cluster node {port} did not come up"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        for port in &cluster.ports {
            while !cluster_ok(*port) {
                assert!(Instant::now() < deadline, "cluster not ok on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// A blocking cluster connection (commands follow the slots).
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls())
            .and_then(|c| c.get_connection())
            .expect("cluster connection")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node(port: u16) -> Option<redis::Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
        .ok()
}

fn ping(port: u16) -> bool {
    node(port).is_some_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
}

fn cluster_ok(port: u16) -> bool {
    node(port).is_some_and(|mut c| {
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut c)
            .is_ok_and(|info| info.contains("cluster_state:ok"))
    })
}
