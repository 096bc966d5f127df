//! Free TCP ports and unique directory names.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0`; a port is never handed out
/// twice by the same process, so servers started in parallel tests get
/// different ports. Another process may still take it before the server
/// binds it: the `start` functions retry with a new port when that happens.
pub fn free_port() -> u16 {
    let mut seen = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("cannot bind a TCP socket on 127.0.0.1");
        if seen.insert(port) {
            return port;
        }
    }
    panic!("free_port: the kernel keeps handing out ports already used by this process");
}

/// Whether `port` can be bound on 127.0.0.1 right now.
pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A fresh, not yet existing path `temp_dir()/zetl-KIND-PID-COUNTER-NANOS`.
pub(crate) fn unique_temp_dir(kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("zetl-{kind}-{}-{n}-{nanos:09}", std::process::id()));
        if !dir.exists() {
            return dir;
        }
    }
}
