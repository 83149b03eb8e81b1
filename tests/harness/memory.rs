//! How much memory a running Envoy holds, read from `/proc` (Linux).
//!
//! Envoy 1.40 publishes no statistic for the wasm VMs' linear memory, and V8 maps that memory
//! outside the heap that `server.memory_allocated` reports. It is found in `/proc/<pid>/smaps`:
//! for each wasm32 memory V8 reserves 8 GiB of address space (4 GiB addressable plus guard
//! pages) and makes the first part, exactly the current linear memory, readable and writable. So
//! each linear memory is an `rw-p` mapping directly followed by a `---p` mapping, the two making
//! 8 GiB together. A VM's linear memory only ever grows (`memory.grow`), so its size is the most
//! the VM has held at once.

use anyhow::{Context as _, Result, ensure};

/// Address space V8 reserves for one wasm32 memory, in KiB.
const WASM_RESERVATION_KIB: u64 = 8 * 1024 * 1024;

/// One mapping of `/proc/<pid>/smaps`: its permissions and size in KiB.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    perms: String,
    size_kib: u64,
}

fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if first.contains('-') && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            out.push(Mapping {
                perms: words.next().unwrap_or_default().to_string(),
                size_kib: 0,
            });
        } else if first == "Size:"
            && let (Some(m), Some(kib)) = (out.last_mut(), words.next())
        {
            m.size_kib = kib.parse().unwrap_or(0);
        }
    }
    out
}

/// The sizes in bytes of the wasm linear memories in an smaps text (see the module comment).
pub fn wasm_memories_in(smaps: &str) -> Vec<u64> {
    mappings(smaps)
        .windows(2)
        .filter(|w| {
            w[0].perms == "rw-p"
                && w[1].perms == "---p"
                && w[0].size_kib + w[1].size_kib == WASM_RESERVATION_KIB
        })
        .map(|w| w[0].size_kib * 1024)
        .collect()
}

/// The sizes in bytes of the wasm linear memories of process `pid` (one per VM: one per worker
/// thread plus those of the main thread). An error if there are none: then the measure no
/// longer works on this Envoy, and a bound checked with it would prove nothing.
pub fn wasm_memories(pid: u32) -> Result<Vec<u64>> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .with_context(|| format!("reading /proc/{pid}/smaps"))?;
    let found = wasm_memories_in(&smaps);
    ensure!(
        !found.is_empty(),
        "no wasm linear memory found in /proc/{pid}/smaps (an rw-p mapping followed by a ---p \
         one, 8 GiB together): has V8's reservation changed?"
    );
    Ok(found)
}

/// The resident set size of process `pid` in bytes (`VmRSS`).
pub fn resident_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
7f79f5c20000-7f79f5c30000 rw-p 00000000 00:00 0
Size:                 64 kB
Rss:                  64 kB
7f79f5c30000-7f79f5d50000 rw-p 00000000 00:00 0
Size:               1152 kB
Rss:                 112 kB
7f79f5d50000-7f7bf5c30000 ---p 00000000 00:00 0
Size:            8387456 kB
Rss:                   0 kB
7f7bf5c30000-7f7bf5e30000 rw-p 00000000 00:00 0
Size:               2048 kB
Rss:                2048 kB
7f7bf5e30000-7f7df5c30000 ---p 00000000 00:00 0
Size:            8386560 kB
Rss:                   0 kB
55d0c0000000-55d0c0400000 ---p 00000000 00:00 0
Size:               4096 kB
Rss:                   0 kB
";

    #[test]
    fn finds_each_linear_memory_by_its_reservation() {
        assert_eq!(wasm_memories_in(SMAPS), vec![1152 * 1024, 2048 * 1024]);
        assert!(wasm_memories_in("").is_empty());
    }
}
