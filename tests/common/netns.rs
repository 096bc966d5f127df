//! A network namespace joined to this one by a veth pair, for network faults with the
//! kernel's own tools: zetl runs inside it and reaches its servers over the pair, which the
//! test cuts (`ip link set … down`), slows (`tc`), or filters (nftables: random loss,
//! one server's port blackholed). Only addresses inside the pair's
//! own /30 are used; nothing leaves the machine. Needs root (CAP_NET_ADMIN). This machine's
//! kernel has no `netem` queueing discipline: random loss is made with nftables inside the
//! namespace instead, and a fixed delay is not available (a slow `tbf` queue delays packets
//! as it fills).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
    /// The pair's end in this namespace, and its address (servers listen on it).
    host_link: String,
    pub host_ip: String,
    /// The end inside the namespace, and its address (zetl's, as the servers see it).
    inner_link: String,
    pub inner_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "`ip {}` failed (network fault tests need root and iproute2): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tc(args: &[&str]) {
    let out = Command::new("tc").args(args).output().expect("run tc (iproute2)");
    assert!(out.status.success(), "`tc {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    pub fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        // A /30 of its own per process and namespace: 10.(100 + pid % 100).(n * 4 % 256).
        let (b, c) = (100 + pid % 100, (n * 4) % 256);
        let ns = Netns {
            name: format!("zetl{tag}"),
            host_link: format!("zh{tag}"),
            host_ip: format!("10.{b}.{c}.1"),
            inner_link: format!("zn{tag}"),
            inner_ip: format!("10.{b}.{c}.2"),
        };
        ip(&["netns", "add", &ns.name]);
        ip(&["link", "add", &ns.host_link, "type", "veth", "peer", "name", &ns.inner_link]);
        ip(&["link", "set", &ns.inner_link, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{}/30", ns.host_ip), "dev", &ns.host_link]);
        ip(&["link", "set", &ns.host_link, "up"]);
        ns.inside(&["ip", "addr", "add", &format!("{}/30", ns.inner_ip), "dev", &ns.inner_link]);
        ns.inside(&["ip", "link", "set", &ns.inner_link, "up"]);
        ns.inside(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; panics when it fails.
    pub fn inside(&self, command: &[&str]) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(command);
        ip(&args);
    }

    /// What starts a program inside the namespace (see `Zetl::spawn_wrapped`).
    pub fn wrapper(&self) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.name]
    }

    /// Cuts the link: packets are dropped silently, no connection is told.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_link, "down"]);
    }

    pub fn heal(&self) {
        ip(&["link", "set", &self.host_link, "up"]);
    }

    /// Shapes traffic into the namespace (servers → zetl) with a `tc` queueing discipline
    /// (e.g. `tbf rate 20mbit burst 32kbit latency 400ms`).
    pub fn impair(&self, qdisc: &str) {
        let mut command = vec!["qdisc", "replace", "dev", &self.host_link, "root"];
        command.extend(qdisc.split_whitespace());
        tc(&command);
    }

    /// Drops `percent` % of the packets each way at random (nftables inside the namespace).
    pub fn lose(&self, percent: u32) {
        let rule = format!("numgen random mod 100 < {percent} drop");
        self.filter("zetl_loss", &rule, &rule);
    }

    pub fn stop_losing(&self) {
        self.inside(&["nft", "delete", "table", "inet", "zetl_loss"]);
    }

    /// Drops every packet to and from the server at `port` (a blackholing firewall): other
    /// connections over the link go on.
    pub fn blackhole(&self, port: u16) {
        self.filter("zetl_hole", &format!("tcp sport {port} drop"), &format!("tcp dport {port} drop"));
    }

    pub fn unblackhole(&self) {
        self.inside(&["nft", "delete", "table", "inet", "zetl_hole"]);
    }

    /// Loads nftables table `table` inside the namespace: rule `inbound` on packets coming in,
    /// `outbound` on those going out.
    fn filter(&self, table: &str, inbound: &str, outbound: &str) {
        let rules = format!(
            "table inet {table} {{\n\
             chain in {{ type filter hook input priority 0; {inbound}; }}\n\
             chain out {{ type filter hook output priority 0; {outbound}; }}\n}}\n"
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run nft (nftables)");
        let mut stdin = nft.stdin.take().expect("nft's stdin");
        std::io::Write::write_all(&mut stdin, rules.as_bytes()).expect("write the rules");
        drop(stdin);
        assert!(nft.wait().expect("nft").success(), "nft could not load the rules of {table}");
    }

    pub fn unimpair(&self) {
        tc(&["qdisc", "del", "dev", &self.host_link, "root"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the other end.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
