//! A TCP relay on 127.0.0.1 in front of a local server, for network faults the kernel's tools
//! cannot make here:
//!   - a fixed delay each way (this kernel has no `netem` queueing discipline);
//!   - a server that stops answering without closing anything, as behind a blackholing
//!     firewall, for servers that bind 127.0.0.1 only (moto), which the network namespaces of
//!     `netns` cannot reach. A connection open during a stall stays silent for good (its bytes
//!     are swallowed, nothing is closed) until the client gives up on it; connections made
//!     after `resume` are relayed again.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    stalled: AtomicBool,
    closing: AtomicBool,
    /// Added to every chunk's trip, each way.
    delay_ms: AtomicU64,
    /// Each connection's flag: set once the connection has been through a stall.
    dead: Mutex<Vec<Arc<AtomicBool>>>,
}

pub struct Relay {
    port: u16,
    state: Arc<State>,
}

impl Relay {
    /// Relays 127.0.0.1:(a free port) to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.closing.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let dead = Arc::new(AtomicBool::new(shared.stalled.load(Ordering::Relaxed)));
                shared.dead.lock().expect("relay state").push(dead.clone());
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (from, to) = (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
                    let (dead, state) = (dead.clone(), shared.clone());
                    std::thread::spawn(move || pump(from, to, &dead, &state));
                }
            }
        });
        Relay { port, state }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))] // the DynamoDB test's only
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every chunk arrives `delay` later than it was sent, each way (new and open connections).
    pub fn delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// From now on nothing is relayed: open connections and new ones go silent.
    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))] // the DynamoDB test's only
    pub fn stall(&self) {
        self.state.stalled.store(true, Ordering::Relaxed);
        for dead in self.state.dead.lock().expect("relay state").iter() {
            dead.store(true, Ordering::Relaxed);
        }
    }

    /// New connections are relayed again (the silent ones stay silent).
    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))] // the DynamoDB test's only
    pub fn resume(&self) {
        self.state.stalled.store(false, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.closing.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to`, each chunk held for the relay's delay (a second thread writes, so
/// that reading goes on meanwhile: a delay, not a narrower link), until either side closes;
/// once `dead`, swallows what arrives and holds both sockets open until the other side closes
/// or the relay goes away.
fn pump(mut from: TcpStream, to: TcpStream, dead: &AtomicBool, state: &Arc<State>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(500)));
    let (send, chunks) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = {
        let (mut to, state) = (to.try_clone().expect("clone"), state.clone());
        std::thread::spawn(move || {
            for (due, chunk) in chunks {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                if state.closing.load(Ordering::Relaxed) || to.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    };
    let mut buf = [0u8; 16 * 1024];
    while !state.closing.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if !dead.load(Ordering::Relaxed) => {
                let due = Instant::now() + Duration::from_millis(state.delay_ms.load(Ordering::Relaxed));
                if send.send((due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    drop(send);
    let _ = writer.join();
    if !dead.load(Ordering::Relaxed) || state.closing.load(Ordering::Relaxed) {
        let _ = to.shutdown(Shutdown::Both);
    }
}
