//! Running programs with a deadline, OS users, pids and log files.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::HarnessError;

/// How long a server may take to start (or stop) before we give up.
/// `ZETL_SERVER_START_TIMEOUT` (seconds) overrides the default of 90.
pub(crate) fn start_timeout() -> Duration {
    let secs = std::env::var("ZETL_SERVER_START_TIMEOUT").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(90);
    Duration::from_secs(secs.max(1))
}

/// `ZETL_KEEP_SERVERS=1`: leave servers running and their directories in
/// place when they are dropped, for inspection.
pub(crate) fn keep_servers() -> bool {
    matches!(std::env::var("ZETL_KEEP_SERVERS").as_deref(), Ok("1") | Ok("true") | Ok("yes"))
}

/// The command line of `cmd`, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut out = quote(cmd.get_program());
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    out
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = s.len() - max;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = format!("[... {cut} bytes cut ...]\n{}", &s[cut..]);
    }
    s
}

/// Runs `cmd` to completion, feeding it `stdin`, and returns its standard
/// output. A non-zero exit, or running past `timeout`, is an error that
/// carries the command line and its standard error.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>, timeout: Option<Duration>) -> Result<String, HarnessError> {
    let command = describe(cmd);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| HarnessError::io(format!("cannot run {command}"), e))?;

    let writer = child.stdin.take().map(|mut pipe| {
        let input = stdin.unwrap_or_default().to_owned();
        thread::spawn(move || {
            // A program that exits early closes the pipe: not our error.
            let _ = pipe.write_all(input.as_bytes());
        })
    });
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });

    let status = wait_child(&mut child, timeout).map_err(|e| HarnessError::io(format!("waiting for {command}"), e))?;
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    match status {
        Some(st) if st.success() => Ok(stdout),
        other => Err(HarnessError::Command {
            command,
            status: match other {
                Some(st) => st.to_string(),
                None => format!("killed after {}s", timeout.unwrap_or_default().as_secs_f32()),
            },
            stdout: truncate(stdout, 8000),
            stderr: truncate(stderr, 8000),
        }),
    }
}

/// Waits for `child`; past `timeout` kills it and returns `None`.
fn wait_child(child: &mut Child, timeout: Option<Duration>) -> std::io::Result<Option<ExitStatus>> {
    let Some(timeout) = timeout else {
        return child.wait().map(Some);
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// An OS account to run a program as.
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl OsUser {
    /// Looks `name` up in /etc/passwd, falling back to `id`.
    pub fn lookup(name: &str) -> Result<OsUser, HarnessError> {
        if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
            for line in passwd.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() >= 6 && f[0] == name {
                    if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                        return Ok(OsUser { name: name.to_owned(), uid, gid, home: PathBuf::from(f[5]) });
                    }
                }
            }
        }
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, name]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        match (id("-u"), id("-g")) {
            (Some(uid), Some(gid)) => Ok(OsUser {
                name: name.to_owned(),
                uid,
                gid,
                home: PathBuf::from("/"),
            }),
            _ => Err(HarnessError::NotFound {
                what: format!("OS user `{name}`"),
                hint: format!("create it (e.g. `useradd --system {name}`); the harness runs the server as that user when it runs as root"),
            }),
        }
    }

    /// Makes `cmd` run as this user.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid).env("USER", &self.name).env("LOGNAME", &self.name).env("HOME", &self.home);
    }

    /// Gives `path` (not recursively) to this user.
    pub fn chown(&self, path: &Path) -> Result<(), HarnessError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| HarnessError::io(format!("chown {}", path.display()), e))
    }
}

/// Whether process `pid` exists and is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// The command line of process `pid`, with NULs turned into spaces.
pub(crate) fn process_cmdline(pid: u32) -> Option<String> {
    fs::read(format!("/proc/{pid}/cmdline")).ok().map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
}

/// Sends `signal` (e.g. "TERM", "KILL") to `pid` with kill(1).
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends TERM to `pid` and waits up to `grace` for it to go, then KILLs it.
/// Returns whether the process is gone.
pub(crate) fn terminate(pid: u32, grace: Duration) -> bool {
    signal(pid, "TERM");
    if wait_until(grace, || !process_alive(pid)) {
        return true;
    }
    signal(pid, "KILL");
    wait_until(Duration::from_secs(10), || !process_alive(pid))
}

/// Polls `ready` every 50-200 ms until it is true or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The size of `path` (0 if missing): where the next attempt's log starts.
pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The text of `path` from byte `offset` on (empty if missing).
pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `lines` lines of `path`, with a header naming the file.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = read_from(path, file_len(path).saturating_sub(64 * 1024));
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!("({})\n{}", path.display(), all[start..].join("\n"))
}

/// Whether a server log says the port was taken.
pub(crate) fn is_port_clash(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not bind") || log.contains("Bind on TCP/IP port")
}

/// Creates `dir` (and its parents).
pub(crate) fn create_dir(dir: &Path) -> Result<(), HarnessError> {
    fs::create_dir_all(dir).map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))
}

/// Writes `text` to `path`.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), HarnessError> {
    fs::write(path, text).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// Makes `dir` absolute (relative to the current directory).
pub(crate) fn absolute(dir: &Path) -> Result<PathBuf, HarnessError> {
    std::path::absolute(dir).map_err(|e| HarnessError::io(format!("resolve {}", dir.display()), e))
}

/// Finds `name` on PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
