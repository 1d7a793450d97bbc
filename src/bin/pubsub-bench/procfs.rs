//! Figures about a process from /proc (Linux): CPU time, resident memory, the file limit, and
//! which process listens on a port.

use std::collections::BTreeSet;
use std::time::Duration;

/// User plus system CPU time of a process (`self` or a PID), from fields 14 and 15 of
/// `/proc/PID/stat`.
pub fn cpu_time(pid: &str) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is index 11 and stime (15) 12.
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("{path}: unexpected format"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(
        total as f64 / clock_ticks_per_second(),
    ))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 when the value is unknown.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Resident set size in bytes, from `VmRSS` in `/proc/PID/status`.
pub fn rss_bytes(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// CPU time of several processes together (none: zero).
pub fn cpu_time_of(pids: &[u32]) -> Result<Duration, String> {
    pids.iter().map(|p| cpu_time(&p.to_string())).sum()
}

/// Resident memory of several processes together.
pub fn rss_bytes_of(pids: &[u32]) -> Result<u64, String> {
    pids.iter().map(|p| rss_bytes(&p.to_string())).sum()
}

/// The processes with a TCP socket listening on `port` (any local address), found through the
/// socket's inode: `/proc/net/tcp{,6}` lists listening sockets, `/proc/PID/fd` links name them.
/// Processes this user may not inspect are skipped.
pub fn pids_listening_on(port: u16) -> Result<Vec<u32>, String> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // tcp6 is missing when IPv6 is off.
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        inodes.extend(listening_inodes(&text, port));
    }
    if inodes.is_empty() {
        return Ok(Vec::new());
    }
    let proc_dir = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    let mut pids = BTreeSet::new();
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if inode.is_some_and(|i| inodes.contains(&i)) {
                pids.insert(pid);
                break;
            }
        }
    }
    Ok(pids.into_iter().collect())
}

/// Inodes of the sockets in LISTEN state (`0A`) on `port` in one `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let listening = *fields.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// Raises this process's soft limit on open files to the hard limit, so one run can hold
/// thousands of connections. Returns the soft limit in force afterwards. The same call the
/// server makes at start-up.
pub fn raise_nofile_limit() -> Result<u64, String> {
    rlimit::increase_nofile_limit(u64::MAX).map_err(|e| format!("raising RLIMIT_NOFILE: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_figures() {
        assert!(rss_bytes("self").unwrap() > 0);
        assert!(cpu_time("self").is_ok());
        assert!(cpu_time("0").is_err());
        let me = std::process::id();
        assert!(rss_bytes_of(&[me]).unwrap() > 0);
        assert!(rss_bytes_of(&[me, u32::MAX]).is_err());
        assert_eq!(cpu_time_of(&[]).unwrap(), Duration::ZERO);
    }

    #[test]
    fn finds_the_listening_process_by_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pids_listening_on(port).unwrap(), [std::process::id()]);
        drop(listener);
        assert!(pids_listening_on(port).unwrap().is_empty());
    }

    #[test]
    fn parses_the_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 100 0 0 10 0\n   \
            1: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8000), [12345]);
        assert!(listening_inodes(table, 8001).is_empty());
    }
}
