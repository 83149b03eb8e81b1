//! A burst of requests to an Envoy that has no signing keys yet (issue 19, B6).
//!
//! The Envoy is started fresh, its filter fetching its JWKS from the recording upstream, which
//! holds every answer until the test lets it go ([`crate::recorder::Recorder::hold_jwks`]). Some
//! clients send a request and hang up while it waits; then a burst of requests is sent at once,
//! and the JWKS goes out only once Envoy holds them all (its `downstream_rq_active` gauge), so
//! every request of the burst needed keys. What each got, how many fetches the recorder saw and
//! what the filter counted come back for the case to judge.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::client::{authority, call_body, header, marker, post_mcp};
use crate::recorder::{JWKS_PATH, Recorder};
use crate::stack::Stack;
use crate::stats::{Stats, read_stats};

/// One burst: the Envoy's name, the JWKS it fetches, plugin fields besides `jwks`, the token, how
/// many clients hang up first, how many requests then go at once.
pub struct Burst<'a> {
    pub name: &'a str,
    pub jwks: Vec<u8>,
    pub overrides: Value,
    pub token: &'a str,
    pub hang_ups: usize,
    pub requests: usize,
}

/// What one request of the burst got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: String,
    pub ratelimit_policy: String,
    pub body: String,
}

/// What a burst got, and what it cost.
#[derive(Debug)]
pub struct KeylessBurst {
    pub answers: Vec<Answer>,
    /// The JWKS fetches the recorder received.
    pub fetches: usize,
    /// The filter's counts: requests that waited for keys, fetches started.
    pub waited: u64,
    pub started: u64,
}

impl KeylessBurst {
    /// At most one fetch per VM of an Envoy with `workers` workers (each worker's, and the main
    /// thread's, which Envoy configures too and which serves no request), as many as the filter
    /// counted, and each of `requests` waited for keys.
    pub fn check_fetches(&self, workers: u8, requests: usize) -> Result<()> {
        let statuses: Vec<u16> = self.answers.iter().map(|a| a.status).collect();
        println!("statuses {statuses:?}, JWKS fetches {}", self.fetches);
        let vms = usize::from(workers) + 1;
        ensure!(
            (1..=vms).contains(&self.fetches),
            "{} JWKS fetches for {requests} requests on {workers} workers: expected at most one \
             per VM ({vms}: the workers' and the main thread's)",
            self.fetches
        );
        ensure!(
            self.started == self.fetches as u64,
            "the filter counted {} fetches started, the JWKS server saw {}",
            self.started,
            self.fetches
        );
        ensure!(
            self.waited == requests as u64,
            "requests that waited for keys: {}, expected {requests}",
            self.waited
        );
        Ok(())
    }
}

/// Lets the recorder's held JWKS answers at a path go when dropped (also when a case fails
/// half-way, so no request thread waits for ever).
struct ReleaseJwks<'a>(&'a Recorder, &'a str);

impl Drop for ReleaseJwks<'_> {
    fn drop(&mut self) {
        self.0.release_jwks(self.1);
    }
}

/// Starts the Envoy of `burst` (stopped on return) and sends it the burst; see the module.
pub fn keyless_burst(s: &Stack, burst: &Burst<'_>) -> Result<KeylessBurst> {
    let name = burst.name;
    let path = format!("{JWKS_PATH}/{name}-{}", std::process::id());
    let release = ReleaseJwks(&s.recorder, &path);
    s.recorder.hold_jwks(&path, burst.jwks.clone());
    let mut overrides = burst.overrides.clone();
    overrides["jwks"] = json!({"remote": {"cluster": "recorder", "path": path,
        "authority": "recorder", "refresh_seconds": 300, "min_refetch_seconds": 1,
        "timeout_ms": 60_000}});
    let envoy = s.start_envoy(name, &overrides)?;
    // Waits until Envoy has exactly `n` requests in hand (each head went through the filter).
    let held = |n: usize| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stats = read_stats(&envoy.admin_url, "^http\\.mcp_edge\\.downstream_rq_active$")?;
            let active = stats.get("http.mcp_edge.downstream_rq_active");
            if active == n as u64 {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "Envoy held {active} requests after 30 s, expected {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let listener = authority(&envoy.recorded_url)?;
    let gone = (0..burst.hang_ups)
        .map(|i| send_and_keep(listener, burst.token, &format!("{name}-hang-up-{i}")))
        .collect::<Result<Vec<_>>>()?;
    held(burst.hang_ups)?;
    drop(gone);
    held(0)?;
    let answers = std::thread::scope(|scope| -> Result<Vec<Answer>> {
        let sent: Vec<_> = (0..burst.requests)
            .map(|i| {
                let url = &envoy.recorded_url;
                scope.spawn(move || -> Result<Answer> {
                    let body = call_body(&marker(&format!("{name}-{i}")));
                    let resp = post_mcp(url, Some(burst.token), &body)
                        .with_context(|| format!("request {i} of the burst got no answer"))?;
                    Ok(Answer {
                        status: resp.status().as_u16(),
                        retry_after: header(&resp, "retry-after"),
                        ratelimit_policy: header(&resp, "ratelimit-policy"),
                        body: resp.text()?,
                    })
                })
            })
            .collect();
        held(burst.requests)?;
        drop(release);
        sent.into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a request thread panicked"))?
            })
            .collect()
    })?;
    let stats = read_stats(&envoy.admin_url, "mcp_edge\\.jwks\\.")?;
    let counted = |name| stats.filter_since(&Stats::default(), name);
    Ok(KeylessBurst {
        answers,
        fetches: s.recorder.jwks_fetches(&path),
        waited: counted("jwks.waited"),
        started: counted("jwks.started"),
    })
}

/// Sends a call over a new connection to `listener` and returns the connection unread (dropping
/// it hangs up).
fn send_and_keep(listener: SocketAddr, token: &str, name: &str) -> Result<TcpStream> {
    let body = call_body(&marker(name));
    let mut conn = TcpStream::connect(listener)?;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {listener}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nauthorization: Bearer {token}\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut conn, request.as_bytes())?;
    Ok(conn)
}

/// The stack's dev issuer's JWKS document (what the filter of a stack's Envoy fetches).
pub fn issuer_jwks(s: &Stack) -> Result<Vec<u8>> {
    let resp = crate::client::http()
        .get(format!("{}/jwks", s.issuer))
        .send()?;
    ensure!(resp.status() == 200, "the issuer's JWKS: {}", resp.status());
    Ok(resp.bytes()?.to_vec())
}
