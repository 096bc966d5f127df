//! Throwaway MariaDB servers: `mariadb-install-db` + `mariadbd`.
//!
//! Layout of the server directory: `my.cnf` (rewritten on every start),
//! `data/`, `mariadb.sock`, `mariadb.pid` and the log `mariadb.log`.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::error::HarnessError;
use crate::port::{free_port, port_is_free, unique_temp_dir};
use crate::util;

const PORT_ATTEMPTS: usize = 3;

/// How to configure a [`MariaDbServer`].
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    /// Binary logging (`log_bin`, the default); `false` starts the server
    /// without it, for tests of what happens when it is off.
    pub binlog: bool,
    /// More `mariadbd` command-line options, e.g. `--binlog-row-image=MINIMAL`.
    pub extra_args: Vec<String>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions { binlog: true, extra_args: Vec::new() }
    }
}

/// A MariaDB server of its own on 127.0.0.1, with row-based binary logging
/// (`binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`,
/// `server_id=1`, `gtid_strict_mode=1`) and a user `zetl`/`zetl` with all
/// privileges from 127.0.0.1 and localhost, and a database `zetl`.
///
/// Dropping it kills the server and, for servers made by
/// [`MariaDbServer::start`], removes its directory; with
/// `ZETL_KEEP_SERVERS=1` both are left for inspection.
#[derive(Debug)]
pub struct MariaDbServer {
    port: u16,
    dir: PathBuf,
    data_dir: PathBuf,
    opts: MariaDbOptions,
    child: Mutex<Option<Child>>,
    own_group: bool,
    remove_on_drop: bool,
    detached: bool,
}

impl MariaDbServer {
    /// Creates a server in a fresh directory under the system temp dir,
    /// starts it and waits until it accepts connections.
    pub fn start(opts: MariaDbOptions) -> Result<MariaDbServer, HarnessError> {
        let dir = unique_temp_dir("mariadb");
        let result = Self::launch(&dir, opts, true);
        if result.is_err() && !util::keep_servers() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    /// Like [`MariaDbServer::start`] in `dir` (created if missing). A server
    /// already set up there is started as it is (on its old port if that is
    /// free); one already running there is just referred to. The server runs
    /// in a process group of its own. Dropping the value stops the server
    /// but leaves `dir`; see [`MariaDbServer::detach`].
    pub fn start_in(dir: &Path, opts: MariaDbOptions) -> Result<MariaDbServer, HarnessError> {
        Self::launch(&util::absolute(dir)?, opts, false)
    }

    /// Stops the server running in `dir`, if any (TERM, then KILL after the
    /// start timeout).
    pub fn stop_dir(dir: &Path) -> Result<(), HarnessError> {
        let dir = util::absolute(dir)?;
        match running_pid(&dir) {
            Some(pid) if !util::terminate(pid, util::start_timeout()) => {
                Err(HarnessError::Other(format!("mariadbd (pid {pid}) in {} does not stop", dir.display())))
            }
            _ => Ok(()),
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://zetl:zetl@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://zetl:zetl@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's data directory (`datadir`; binlogs are `mysql-bin.*`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server directory: `my.cnf`, `data/`, socket, pid file and log
    /// `mariadb.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `sql` (any number of `;`-terminated statements) in database `db`
    /// (none if empty) with the `mariadb` client in batch mode (`-N -B`) as
    /// `root` over the unix socket, and returns the output (tab-separated).
    pub fn sql(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        let mut cmd = self.client(db);
        util::run(&mut cmd, Some(sql), None)
    }

    /// Creates database `name`.
    pub fn create_database(&self, name: &str) -> Result<(), HarnessError> {
        let quoted = format!("`{}`", name.replace('`', "``"));
        self.sql("", &format!("CREATE DATABASE {quoted};")).map(drop)
    }

    /// Stops the server (TERM, waiting for a clean shutdown).
    pub fn stop(&self) -> Result<(), HarnessError> {
        self.stop_by("TERM")
    }

    /// Stops the server by `signal` (`TERM`: a clean shutdown; `KILL`: a crash).
    fn stop_by(&self, signal: &str) -> Result<(), HarnessError> {
        let mut child = self.child();
        let pid = match child.as_ref() {
            Some(c) => Some(c.id()),
            None => running_pid(&self.dir),
        };
        if let Some(pid) = pid {
            util::signal(pid, signal);
            let gone = util::wait_until(util::start_timeout(), || match child.as_mut() {
                Some(c) => matches!(c.try_wait(), Ok(Some(_)) | Err(_)),
                None => !util::process_alive(pid),
            });
            if !gone {
                return Err(HarnessError::Startup {
                    what: format!("mariadbd (pid {pid}) did not stop in time"),
                    log_tail: util::log_tail(&self.log_file(), 40),
                });
            }
        }
        *child = None;
        Ok(())
    }

    /// Stops the server and starts it again on the same port.
    pub fn restart(&self) -> Result<(), HarnessError> {
        self.restart_after("TERM")
    }

    /// Kills the server (SIGKILL: a crash, InnoDB recovers at the start) and starts it again.
    pub fn crash_and_restart(&self) -> Result<(), HarnessError> {
        self.restart_after("KILL")
    }

    fn restart_after(&self, signal: &str) -> Result<(), HarnessError> {
        self.stop_by(signal)?;
        let offset = util::file_len(&self.log_file());
        let child = self.spawn()?;
        *self.child() = Some(child);
        self.wait_ready(offset).map_err(|(_, e)| e)
    }

    /// Leaves the server running and its directory in place when this value
    /// goes away (for scripts: stop it with [`MariaDbServer::stop_dir`]).
    pub fn detach(mut self) {
        self.detached = true;
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("mariadb.sock")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("mariadb.log")
    }

    fn client(&self, db: &str) -> Command {
        let mut cmd = Command::new(find_program(&["mariadb", "mysql"]).unwrap_or_else(|| "mariadb".into()));
        cmd.args(["--no-defaults", "--protocol=socket", "-S"]).arg(self.socket()).args([
            "-u",
            "root",
            "-N",
            "-B",
            "--default-character-set=utf8mb4",
            // Room for the large values some tests read back whole.
            "--max-allowed-packet=1G",
        ]);
        if !db.is_empty() {
            cmd.arg(format!("--database={db}"));
        }
        cmd
    }

    fn launch(dir: &Path, opts: MariaDbOptions, temp: bool) -> Result<MariaDbServer, HarnessError> {
        let mut server = MariaDbServer {
            port: 0,
            dir: dir.to_path_buf(),
            data_dir: dir.join("data"),
            opts,
            child: Mutex::new(None),
            own_group: !temp,
            remove_on_drop: temp,
            detached: true, // until it is fully started
        };
        if dir.join("mariadb.sock").as_os_str().len() > 107 {
            return Err(HarnessError::Other(format!(
                "directory path {} is too long to hold a unix socket: use a shorter one",
                dir.display()
            )));
        }
        let fresh = !dir.join("data").join("mysql").exists();
        if fresh {
            server.install()?;
        } else if running_pid(dir).is_some() {
            server.port = configured_port(dir).unwrap_or(0);
            server.detached = false;
            return Ok(server);
        }
        server.port = match configured_port(dir) {
            Some(port) if port_is_free(port) => port,
            _ => free_port(),
        };
        for attempt in 1..=PORT_ATTEMPTS {
            let offset = util::file_len(&server.log_file());
            let child = server.spawn()?;
            *server.child() = Some(child);
            match server.wait_ready(offset) {
                Ok(()) => break,
                Err((clash, e)) => {
                    if let Some(mut c) = server.child().take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    if clash && attempt < PORT_ATTEMPTS {
                        server.port = free_port();
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        server.detached = false;
        if fresh {
            server.sql(
                "",
                "SET sql_log_bin = 0;\n\
                 CREATE USER IF NOT EXISTS 'zetl'@'127.0.0.1' IDENTIFIED BY 'zetl';\n\
                 GRANT ALL PRIVILEGES ON *.* TO 'zetl'@'127.0.0.1' WITH GRANT OPTION;\n\
                 CREATE USER IF NOT EXISTS 'zetl'@'localhost' IDENTIFIED BY 'zetl';\n\
                 GRANT ALL PRIVILEGES ON *.* TO 'zetl'@'localhost' WITH GRANT OPTION;\n\
                 CREATE DATABASE IF NOT EXISTS zetl;\n",
            )?;
        }
        Ok(server)
    }

    /// `mariadb-install-db` into `DIR/data`.
    fn install(&self) -> Result<(), HarnessError> {
        util::create_dir(&self.dir)?;
        let data = &self.data_dir;
        if data.exists() && fs::read_dir(data).map(|mut d| d.next().is_some()).unwrap_or(true) {
            return Err(HarnessError::Other(format!(
                "{} is neither empty nor a MariaDB data directory",
                data.display()
            )));
        }
        let program =
            find_program(&["mariadb-install-db", "mysql_install_db"]).ok_or_else(|| HarnessError::NotFound {
                what: "mariadb-install-db".into(),
                hint: "install MariaDB (Debian: apt-get install mariadb-server)".into(),
            })?;
        // A tmpdir of its own: bootstraps running side by side in the shared /tmp have been
        // seen to fail on each other's temporary tables ("Error on delete of '/tmp/#sql-…'").
        let tmp = self.dir.join("tmp");
        util::create_dir(&tmp)?;
        let mut cmd = Command::new(program);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .current_dir(&self.dir);
        if util::is_root() {
            cmd.arg("--user=root");
        }
        util::run(&mut cmd, None, Some(Duration::from_secs(300))).map(drop)
    }

    /// Writes `my.cnf` (with the current port) and spawns `mariadbd`.
    fn spawn(&self) -> Result<Child, HarnessError> {
        let d = |name: &str| self.dir.join(name).display().to_string();
        util::create_dir(&self.dir.join("tmp"))?;
        let mut conf = format!(
            "# Written by zetl-testkit on every start; edits are lost.\n\
             [mariadbd]\n\
             datadir = {data}\n\
             tmpdir = {tmp}\n\
             socket = {sock}\n\
             pid-file = {pid}\n\
             log-error = {log}\n\
             port = {port}\n\
             bind-address = 127.0.0.1\n\
             skip-name-resolve\n\
             server_id = 1\n\
             binlog_format = ROW\n\
             binlog_row_image = FULL\n\
             binlog_row_metadata = FULL\n\
             gtid_strict_mode = 1\n\
             max_connections = 200\n\
             max_allowed_packet = 64M\n\
             innodb_buffer_pool_size = 128M\n\
             innodb_flush_log_at_trx_commit = 2\n\
             sync_binlog = 0\n\
             performance_schema = OFF\n\
             character-set-server = utf8mb4\n",
            data = self.data_dir.display(),
            tmp = d("tmp"),
            sock = d("mariadb.sock"),
            pid = d("mariadb.pid"),
            log = d("mariadb.log"),
            port = self.port,
        );
        if self.opts.binlog {
            conf.push_str("log_bin = mysql-bin\n");
        }
        if util::is_root() {
            conf.push_str("user = root\n");
        }
        let cnf = self.dir.join("my.cnf");
        util::write_file(&cnf, &conf)?;

        let program = find_program(&["mariadbd", "mysqld"]).ok_or_else(|| HarnessError::NotFound {
            what: "mariadbd".into(),
            hint: "install MariaDB (Debian: apt-get install mariadb-server)".into(),
        })?;
        let log = self.log_file();
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| HarnessError::io(format!("open {}", log.display()), e))
        };
        let mut cmd = Command::new(program);
        cmd.arg(format!("--defaults-file={}", cnf.display()))
            .args(&self.opts.extra_args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?);
        if self.own_group {
            cmd.process_group(0);
        }
        let command = util::describe(&cmd);
        cmd.spawn().map_err(|e| HarnessError::io(format!("cannot run {command}"), e))
    }

    /// Waits until the server answers on its socket. On failure, also tells
    /// whether the log (from `offset` on) says the port was taken.
    fn wait_ready(&self, offset: u64) -> Result<(), (bool, HarnessError)> {
        let log = self.log_file();
        let mut exited = None;
        let ready = util::wait_until(util::start_timeout(), || {
            if let Some(c) = self.child().as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    exited = Some(status);
                    return true;
                }
            }
            self.socket().exists() && {
                let mut probe = self.client("");
                probe.arg("--connect-timeout=2");
                util::run(&mut probe, Some("SELECT 1;"), Some(Duration::from_secs(10))).is_ok()
            }
        });
        let what = match (ready, exited) {
            (true, None) => return Ok(()),
            (_, Some(status)) => format!("mariadbd in {} exited during startup ({status})", self.dir.display()),
            (false, None) => format!(
                "mariadbd in {} did not accept connections within {}s",
                self.dir.display(),
                util::start_timeout().as_secs()
            ),
        };
        let clash = util::is_port_clash(&util::read_from(&log, offset));
        Err((clash, HarnessError::Startup { what, log_tail: util::log_tail(&log, 40) }))
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if util::keep_servers() {
            eprintln!(
                "zetl-testkit: ZETL_KEEP_SERVERS set: leaving MariaDB on port {} running, files in {}",
                self.port,
                self.dir.display()
            );
            return;
        }
        if let Some(mut c) = self.child().take() {
            let _ = c.kill();
            let _ = c.wait();
        } else if let Some(pid) = running_pid(&self.dir) {
            util::terminate(pid, Duration::from_secs(30));
        }
        if self.remove_on_drop {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The first of `names` on PATH or in /usr/sbin.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|n| util::which(n).or_else(|| Some(Path::new("/usr/sbin").join(n)).filter(|p| p.is_file())))
}

/// The pid of the mariadbd running in `dir`, if one is.
fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(dir.join("mariadb.pid")).ok()?.trim().parse().ok()?;
    let cmdline = util::process_cmdline(pid)?;
    (util::process_alive(pid) && (cmdline.contains("mariadbd") || cmdline.contains("mysqld"))).then_some(pid)
}

/// The port last written to `DIR/my.cnf`.
fn configured_port(dir: &Path) -> Option<u16> {
    let text = fs::read_to_string(dir.join("my.cnf")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("port = ")?.trim().parse().ok())
}
