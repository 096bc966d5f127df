//! Throwaway moto servers (a local AWS API, used for DynamoDB).

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::HarnessError;
use crate::port::{free_port, unique_temp_dir};
use crate::util;

const PORT_ATTEMPTS: usize = 3;
const PID_FILE: &str = "moto.pid";
const LOG_FILE: &str = "moto.log";

/// A moto server (`python3 -m moto.server`) of its own on 127.0.0.1.
///
/// The command can be replaced with `ZETL_MOTO_SERVER` (split on
/// whitespace, e.g. `moto_server`); `-H 127.0.0.1 -p PORT` are appended.
/// Dropping the value kills the server and, for servers made by
/// [`MotoServer::start`], removes its directory (which holds `moto.log`);
/// with `ZETL_KEEP_SERVERS=1` both are left.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    remove_on_drop: bool,
}

impl MotoServer {
    /// Starts moto on a free port and waits until it answers HTTP.
    pub fn start() -> Result<MotoServer, HarnessError> {
        let dir = unique_temp_dir("moto");
        let result = Self::launch(&dir, true);
        if result.is_err() && !util::keep_servers() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    /// Like [`MotoServer::start`], with `moto.log` and `moto.pid` in `dir`
    /// (created if missing) and the server in a process group of its own.
    /// If `dir` names a running moto server already, that one is returned.
    /// Dropping the value kills the server but leaves `dir`; see
    /// [`MotoServer::detach`].
    pub fn start_in(dir: &Path) -> Result<MotoServer, HarnessError> {
        Self::launch(&util::absolute(dir)?, false)
    }

    /// Stops the moto server whose pid file is in `dir`, if it runs.
    pub fn stop_dir(dir: &Path) -> Result<(), HarnessError> {
        let dir = util::absolute(dir)?;
        if let Some((pid, _)) = running(&dir) {
            if !util::terminate(pid, Duration::from_secs(10)) {
                return Err(HarnessError::Other(format!("moto (pid {pid}) does not stop")));
            }
        }
        let _ = fs::remove_file(dir.join(PID_FILE));
        Ok(())
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL for AWS SDK clients.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Leaves the server running when this value goes away (for scripts:
    /// stop it with [`MotoServer::stop_dir`]).
    pub fn detach(mut self) {
        self.child = None;
        self.remove_on_drop = false;
        self.port = 0;
    }

    fn launch(dir: &Path, temp: bool) -> Result<MotoServer, HarnessError> {
        util::create_dir(dir)?;
        let mut server = MotoServer { port: 0, dir: dir.to_path_buf(), child: None, remove_on_drop: temp };
        if let Some((_, port)) = running(dir) {
            server.port = port;
            return Ok(server);
        }
        let log = dir.join(LOG_FILE);
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port();
            let offset = util::file_len(&log);
            let mut child = spawn(dir, server.port, !temp)?;
            let mut exited = None;
            let port = server.port;
            let ready = util::wait_until(util::start_timeout(), || {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some(status);
                    return true;
                }
                answers_http(port)
            });
            if ready && exited.is_none() {
                if !temp {
                    util::write_file(&dir.join(PID_FILE), &format!("{}\n{}\n", child.id(), server.port))?;
                }
                server.child = Some(child);
                return Ok(server);
            }
            let _ = child.kill();
            let _ = child.wait();
            let text = util::read_from(&log, offset);
            if util::is_port_clash(&text) && attempt < PORT_ATTEMPTS {
                continue;
            }
            let what = match exited {
                Some(status) if text.contains("No module named") => {
                    format!("moto server exited ({status}): is moto installed? (pip install 'moto[server]')")
                }
                Some(status) => format!("moto server exited during startup ({status})"),
                None => format!(
                    "moto server did not answer HTTP on port {} within {}s",
                    server.port,
                    util::start_timeout().as_secs()
                ),
            };
            return Err(HarnessError::Startup { what, log_tail: util::log_tail(&log, 40) });
        }
        unreachable!("the last attempt returns")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if self.port == 0 {
            return; // detached
        }
        if util::keep_servers() {
            eprintln!(
                "zetl-testkit: ZETL_KEEP_SERVERS set: leaving moto on port {} running, log in {}",
                self.port,
                self.dir.display()
            );
            return;
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        } else if let Some((pid, _)) = running(&self.dir) {
            util::signal(pid, "KILL");
        }
        let _ = fs::remove_file(self.dir.join(PID_FILE));
        if self.remove_on_drop {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn spawn(dir: &Path, port: u16, own_group: bool) -> Result<Child, HarnessError> {
    let command_line = std::env::var("ZETL_MOTO_SERVER")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "python3 -m moto.server".into());
    let mut words = command_line.split_whitespace();
    let program = words.next().unwrap_or("python3");
    let log = dir.join(LOG_FILE);
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| HarnessError::io(format!("open {}", log.display()), e))
    };
    let mut cmd = Command::new(program);
    cmd.args(words)
        .args(["-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .current_dir(dir)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?);
    if own_group {
        cmd.process_group(0);
    }
    let described = util::describe(&cmd);
    cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => HarnessError::NotFound {
            what: program.to_owned(),
            hint: "install Python 3 and moto (pip install 'moto[server]'), or set ZETL_MOTO_SERVER".into(),
        },
        _ => HarnessError::io(format!("cannot run {described}"), e),
    })
}

/// Whether something on `port` answers an HTTP request.
fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// The (pid, port) of the moto server recorded in `dir`, if it runs.
fn running(dir: &Path) -> Option<(u32, u16)> {
    let text = fs::read_to_string(dir.join(PID_FILE)).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let port: u16 = lines.next()?.trim().parse().ok()?;
    let cmdline = util::process_cmdline(pid)?;
    (util::process_alive(pid) && cmdline.contains("moto")).then_some((pid, port))
}
