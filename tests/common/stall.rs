//! A TCP relay on 127.0.0.1 in front of a local server that can be made to stop answering
//! without closing anything: what a client sees behind a blackholing firewall or a server gone
//! without a reset. Servers that bind 127.0.0.1 only (moto) cannot sit behind the network
//! namespaces of `netns`; this stands in for them. A connection that was open during a stall
//! stays silent for good (its bytes are swallowed, nothing is closed) until the client gives up
//! on it; connections made after `resume` are relayed again.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    stalled: AtomicBool,
    closing: AtomicBool,
    /// Each connection's flag: set once the connection has been through a stall.
    dead: Mutex<Vec<Arc<AtomicBool>>>,
}

pub struct StallProxy {
    port: u16,
    state: Arc<State>,
}

impl StallProxy {
    /// Relays 127.0.0.1:(a free port) to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> StallProxy {
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
                let dead = Arc::new(AtomicBool::new(shared.stalled.load(Ordering::Relaxed)));
                shared.dead.lock().expect("relay state").push(dead.clone());
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (from, to) = (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
                    let (dead, state) = (dead.clone(), shared.clone());
                    std::thread::spawn(move || pump(from, to, &dead, &state));
                }
            }
        });
        StallProxy { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on nothing is relayed: open connections and new ones go silent.
    pub fn stall(&self) {
        self.state.stalled.store(true, Ordering::Relaxed);
        for dead in self.state.dead.lock().expect("relay state").iter() {
            dead.store(true, Ordering::Relaxed);
        }
    }

    /// New connections are relayed again (the silent ones stay silent).
    pub fn resume(&self) {
        self.state.stalled.store(false, Ordering::Relaxed);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.state.closing.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until either side closes; once `dead`, swallows what arrives and
/// holds both sockets open until the other side closes or the relay goes away.
fn pump(mut from: TcpStream, mut to: TcpStream, dead: &AtomicBool, state: &State) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16 * 1024];
    while !state.closing.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if !dead.load(Ordering::Relaxed) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    if !dead.load(Ordering::Relaxed) || state.closing.load(Ordering::Relaxed) {
        let _ = to.shutdown(Shutdown::Both);
    }
}
