//! Throwaway PostgreSQL servers: `initdb` + `pg_ctl`, run as the `postgres`
//! OS user when the harness runs as root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::HarnessError;
use crate::port::{free_port, port_is_free, unique_temp_dir};
use crate::util::{self, OsUser};

/// The file (in the data directory) holding the harness's settings; it is
/// included from `postgresql.conf` and rewritten on every start.
const CONF_FILE: &str = "zetl.conf";
/// The server log (in the data directory), written by `pg_ctl -l`.
const LOG_FILE: &str = "postgres.log";
/// Start attempts when another process takes the chosen port first.
const PORT_ATTEMPTS: usize = 3;
/// Longest path the kernel accepts for a unix socket, less `/.s.PGSQL.NNNNN`.
const MAX_SOCKET_DIR_LEN: usize = 107 - 15;

/// How to configure a [`PgServer`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `wal_level = logical` (the default); `false` gives `wal_level =
    /// replica`, for tests of what happens without logical decoding.
    pub logical: bool,
    /// More `postgresql.conf` settings, as (name, value). Values are written
    /// single-quoted unless they already start with a quote.
    pub extra_conf: Vec<(String, String)>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { logical: true, extra_conf: Vec::new() }
    }
}

/// A PostgreSQL server of its own: own data directory, own port on
/// 127.0.0.1, own unix socket (in the data directory).
///
/// Dropping it stops the server (`-m immediate`) and, for servers made by
/// [`PgServer::start`], removes the data directory; with
/// `ZETL_KEEP_SERVERS=1` in the environment both are left for inspection.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    data_dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<OsUser>,
    remove_on_drop: bool,
    detached: bool,
}

impl PgServer {
    /// Creates a cluster in a fresh directory under the system temp dir,
    /// starts it and waits until it accepts connections. The role `zetl`
    /// (password `zetl`, superuser, replication) and database `zetl` exist.
    pub fn start(opts: PgOptions) -> Result<PgServer, HarnessError> {
        let dir = unique_temp_dir("pg");
        match Self::launch(&dir, &opts, true) {
            Ok(server) => Ok(server),
            Err(e) => {
                if !util::keep_servers() {
                    let _ = fs::remove_dir_all(&dir);
                }
                Err(e)
            }
        }
    }

    /// Like [`PgServer::start`] with the data in `dir` (created if missing,
    /// or empty). If `dir` already holds a cluster it is started as it is
    /// (with the harness settings of `opts` rewritten, on its old port if
    /// that is free); if that cluster is running already, the returned value
    /// just refers to it. Dropping the value stops the server but leaves
    /// `dir`; see [`PgServer::detach`] to leave it running.
    pub fn start_in(dir: &Path, opts: PgOptions) -> Result<PgServer, HarnessError> {
        Self::launch(&util::absolute(dir)?, &opts, false)
    }

    /// Stops the server whose data is in `dir` (`pg_ctl stop -m fast`);
    /// does nothing if none runs there.
    pub fn stop_dir(dir: &Path) -> Result<(), HarnessError> {
        let dir = util::absolute(dir)?;
        if !dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let server = PgServer {
            port: 0,
            data_dir: dir,
            bin_dir: bin_dir()?.to_path_buf(),
            run_as: run_as()?,
            remove_on_drop: false,
            detached: true,
        };
        server.stop()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://zetl:zetl@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://zetl:zetl@127.0.0.1:{}/{db}", self.port)
    }

    /// The data directory, which also holds the unix socket and the server
    /// log `postgres.log`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of `initdb`, `pg_ctl`, `psql`, `pg_recvlogical`, ...
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Creates database `name`, owned by `zetl`.
    pub fn create_database(&self, name: &str) -> Result<(), HarnessError> {
        self.psql("postgres", &format!("CREATE DATABASE {} OWNER zetl", quote_ident(name))).map(drop)
    }

    /// Runs `sql` (any number of statements) in database `db` with
    /// `psql -X -q -At -v ON_ERROR_STOP=1` as superuser `postgres` over the
    /// unix socket, and returns its output (rows as `a|b`, one a line).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        util::run(&mut self.psql_command(db), Some(sql), None)
    }

    /// Lets clients from `cidr` (another network namespace's address) connect with a
    /// password, for SQL and replication; reloads the server's configuration.
    pub fn allow_clients_from(&self, cidr: &str) -> Result<(), HarnessError> {
        let path = self.data_dir.join("pg_hba.conf");
        let mut text =
            fs::read_to_string(&path).map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        text.push_str(&format!("host all all {cidr} scram-sha-256\nhost replication all {cidr} scram-sha-256\n"));
        self.write_owned("pg_hba.conf", &text)?;
        self.psql("postgres", "SELECT pg_reload_conf()").map(drop)
    }

    /// A session that stays open between statements (`psql` reading its standard input):
    /// an open transaction, a lock held while something else happens.
    pub fn session(&self, db: &str) -> Result<PsqlSession, HarnessError> {
        let mut cmd = self.psql_command(db);
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        let child = cmd.spawn().map_err(|e| HarnessError::Io { context: "starting psql".into(), source: e })?;
        Ok(PsqlSession { child })
    }

    fn psql_command(&self, db: &str) -> Command {
        let psql = self.bin_dir.join("psql");
        let mut cmd = Command::new(if psql.is_file() { psql } else { PathBuf::from("psql") });
        cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(if db.is_empty() { "postgres" } else { db })
            .args(["-f", "-"]);
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS", "PGSERVICE", "PGPASSWORD"] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// `pg_ctl restart -m fast -w`, on the same port.
    pub fn restart(&self) -> Result<(), HarnessError> {
        self.restart_mode("fast")
    }

    /// `pg_ctl restart -m immediate -w`: the server stops as if it crashed (no checkpoint, so
    /// replication slots come back as of the last one) and recovers at the start.
    pub fn crash_and_restart(&self) -> Result<(), HarnessError> {
        self.restart_mode("immediate")
    }

    fn restart_mode(&self, mode: &str) -> Result<(), HarnessError> {
        let log = self.log_file();
        let mut cmd = self.pg_ctl("restart");
        cmd.args(["-m", mode, "-l"]).arg(&log);
        util::run(&mut cmd, None, Some(util::start_timeout() + Duration::from_secs(30)))
            .map(drop)
            .map_err(|e| self.startup_error("restart", e))
    }

    /// `pg_ctl stop -m fast -w`. The value can be restarted with
    /// [`PgServer::restart`] afterwards.
    pub fn stop(&self) -> Result<(), HarnessError> {
        let mut cmd = self.pg_ctl("stop");
        cmd.args(["-m", "fast"]);
        util::run(&mut cmd, None, Some(util::start_timeout() + Duration::from_secs(30))).map(drop)
    }

    /// Leaves the server running and its directory in place when this value
    /// goes away (for scripts: stop it with [`PgServer::stop_dir`]).
    pub fn detach(mut self) {
        self.detached = true;
    }

    fn log_file(&self) -> PathBuf {
        self.data_dir.join(LOG_FILE)
    }

    /// `pg_ctl ACTION -D DIR -w -t SECS -s`, as the server's OS user.
    fn pg_ctl(&self, action: &str) -> Command {
        let mut cmd = self.as_owner(self.bin_dir.join("pg_ctl"));
        cmd.arg(action)
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-s", "-t"])
            .arg(util::start_timeout().as_secs().to_string());
        cmd
    }

    /// A command run as the data directory's owner, from that directory.
    fn as_owner(&self, program: PathBuf) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.data_dir).env_remove("PGDATA");
        if let Some(user) = &self.run_as {
            user.apply(&mut cmd);
        }
        cmd
    }

    fn startup_error(&self, what: &str, err: HarnessError) -> HarnessError {
        HarnessError::Startup {
            what: format!("PostgreSQL in {} failed to {what}: {err}", self.data_dir.display()),
            log_tail: util::log_tail(&self.log_file(), 40),
        }
    }

    fn launch(dir: &Path, opts: &PgOptions, temp: bool) -> Result<PgServer, HarnessError> {
        if dir.as_os_str().len() > MAX_SOCKET_DIR_LEN {
            return Err(HarnessError::Other(format!(
                "data directory path {} is too long to hold a unix socket (at most {MAX_SOCKET_DIR_LEN} bytes): use a shorter one",
                dir.display()
            )));
        }
        let mut server = PgServer {
            port: 0,
            data_dir: dir.to_path_buf(),
            bin_dir: bin_dir()?.to_path_buf(),
            run_as: run_as()?,
            remove_on_drop: temp,
            detached: true, // until it is fully started
        };

        let fresh = !dir.join("PG_VERSION").exists();
        if fresh {
            server.init()?;
        } else if let Some(port) = running_port(dir) {
            server.port = port;
            server.detached = false;
            return Ok(server);
        }

        server.port = match configured_port(dir) {
            Some(port) if port_is_free(port) => port,
            _ => free_port(),
        };
        let log = server.log_file();
        for attempt in 1..=PORT_ATTEMPTS {
            server.write_conf(opts)?;
            let offset = util::file_len(&log);
            let mut cmd = server.pg_ctl("start");
            cmd.arg("-l").arg(&log);
            let timeout = util::start_timeout() + Duration::from_secs(30);
            match util::run(&mut cmd, None, Some(timeout)) {
                Ok(_) => break,
                Err(e) => {
                    // pg_ctl gives up waiting but leaves the postmaster be.
                    let _ = util::run(&mut server.pg_ctl_stop_immediate(), None, Some(timeout));
                    let clash = util::is_port_clash(&util::read_from(&log, offset));
                    if clash && attempt < PORT_ATTEMPTS {
                        server.port = free_port();
                        continue;
                    }
                    return Err(server.startup_error("start", e));
                }
            }
        }
        server.detached = false;
        if fresh {
            server.psql(
                "postgres",
                "SET password_encryption = 'scram-sha-256';\n\
                 CREATE ROLE zetl SUPERUSER REPLICATION LOGIN PASSWORD 'zetl';\n\
                 CREATE DATABASE zetl OWNER zetl;\n",
            )?;
        }
        Ok(server)
    }

    fn pg_ctl_stop_immediate(&self) -> Command {
        let mut cmd = self.pg_ctl("stop");
        cmd.args(["-m", "immediate"]);
        cmd
    }

    /// `initdb` into the (missing or empty) data directory, and pg_hba.conf.
    fn init(&self) -> Result<(), HarnessError> {
        let dir = &self.data_dir;
        util::create_dir(dir)?;
        let not_empty =
            fs::read_dir(dir).map_err(|e| HarnessError::io(format!("read {}", dir.display()), e))?.next().is_some();
        if not_empty {
            return Err(HarnessError::Other(format!(
                "{} is neither empty nor a PostgreSQL data directory",
                dir.display()
            )));
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| HarnessError::io(format!("chmod {}", dir.display()), e))?;
        if let Some(user) = &self.run_as {
            user.chown(dir)?;
        }
        let mut cmd = self.as_owner(self.bin_dir.join("initdb"));
        cmd.arg("-D").arg(dir).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "-N"]);
        util::run(&mut cmd, None, Some(Duration::from_secs(300)))?;

        let conf = dir.join("postgresql.conf");
        let mut text =
            fs::read_to_string(&conf).map_err(|e| HarnessError::io(format!("read {}", conf.display()), e))?;
        text.push_str(&format!("\n# Added by zetl-testkit\ninclude_if_exists = '{CONF_FILE}'\n"));
        util::write_file(&conf, &text)?;
        self.write_owned(
            "pg_hba.conf",
            "# Written by zetl-testkit\n\
             local all all trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host replication all 127.0.0.1/32 scram-sha-256\n",
        )
    }

    /// Writes the harness settings (with the current port) to `zetl.conf`.
    fn write_conf(&self, opts: &PgOptions) -> Result<(), HarnessError> {
        let mut text = String::from("# Written by zetl-testkit on every start; edits are lost.\n");
        let mut set = |name: &str, value: &str| {
            let value =
                if value.starts_with('\'') { value.to_owned() } else { format!("'{}'", value.replace('\'', "''")) };
            text.push_str(&format!("{name} = {value}\n"));
        };
        set("listen_addresses", "127.0.0.1");
        set("port", &self.port.to_string());
        set("unix_socket_directories", &self.data_dir.to_string_lossy());
        set("wal_level", if opts.logical { "logical" } else { "replica" });
        set("max_replication_slots", "32");
        set("max_wal_senders", "32");
        set("fsync", "off");
        set("synchronous_commit", "off");
        set("full_page_writes", "off");
        set("shared_buffers", "128MB");
        set("max_connections", "200");
        set("password_encryption", "scram-sha-256");
        set("logging_collector", "off");
        set("log_destination", "stderr");
        set("log_line_prefix", "%m [%p] %q%u@%d ");
        for (name, value) in &opts.extra_conf {
            set(name, value);
        }
        self.write_owned(CONF_FILE, &text)
    }

    fn write_owned(&self, name: &str, text: &str) -> Result<(), HarnessError> {
        let path = self.data_dir.join(name);
        util::write_file(&path, text)?;
        if let Some(user) = &self.run_as {
            user.chown(&path)?;
        }
        Ok(())
    }
}

/// See [`PgServer::session`]. Dropping it ends the session (an open transaction rolls back).
pub struct PsqlSession {
    child: Child,
}

impl PsqlSession {
    /// Sends statements; they run as psql reads them, so this does not wait for them.
    pub fn send(&mut self, sql: &str) -> Result<(), HarnessError> {
        let io = |e| HarnessError::Io { context: "writing to psql".into(), source: e };
        let stdin = self.child.stdin.as_mut().ok_or_else(|| io(std::io::ErrorKind::BrokenPipe.into()))?;
        stdin.write_all(sql.as_bytes()).and_then(|()| stdin.write_all(b"\n")).and_then(|()| stdin.flush()).map_err(io)
    }

    /// Ends the input and waits for psql to run what it has and exit.
    pub fn finish(mut self) -> Result<(), HarnessError> {
        drop(self.child.stdin.take());
        let status =
            self.child.wait().map_err(|e| HarnessError::Io { context: "waiting for psql".into(), source: e })?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::Command {
                command: "psql (session)".into(),
                status: status.to_string(),
                stdout: String::new(),
                stderr: String::new(),
            })
        }
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if util::keep_servers() {
            eprintln!(
                "zetl-testkit: ZETL_KEEP_SERVERS set: leaving PostgreSQL on port {} running, data in {}",
                self.port,
                self.data_dir.display()
            );
            return;
        }
        if self.data_dir.join("postmaster.pid").exists() {
            let _ = util::run(&mut self.pg_ctl_stop_immediate(), None, Some(Duration::from_secs(60)));
        }
        if self.remove_on_drop {
            let _ = fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// The OS user to run the server as: `postgres` when we are root.
fn run_as() -> Result<Option<OsUser>, HarnessError> {
    if util::is_root() {
        OsUser::lookup("postgres").map(Some)
    } else {
        Ok(None)
    }
}

/// The directory with `initdb`, `pg_ctl` and `postgres`: `$ZETL_PG_BINDIR`,
/// else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
pub(crate) fn bin_dir() -> Result<&'static Path, HarnessError> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = DIR.get_or_init(|| {
        let usable = |d: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| d.join(b).is_file());
        if let Some(d) = std::env::var_os("ZETL_PG_BINDIR") {
            return Some(PathBuf::from(d));
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && usable(&d) {
                return Some(d);
            }
        }
        let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                let d = e.path().join("bin");
                usable(&d).then_some((version, d))
            })
            .collect();
        candidates.sort();
        candidates.pop().map(|(_, d)| d)
    });
    found.as_deref().ok_or_else(|| HarnessError::NotFound {
        what: "PostgreSQL server binaries (initdb, pg_ctl, postgres)".into(),
        hint: "install them (Debian: apt-get install postgresql-15) or set ZETL_PG_BINDIR".into(),
    })
}

/// The port of the postmaster running in `dir`, if one is.
fn running_port(dir: &Path) -> Option<u16> {
    let pid_file = fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    let mut lines = pid_file.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let port = lines.nth(2)?.trim().parse().ok()?;
    util::process_alive(pid).then_some(port)
}

/// The port last written to `zetl.conf` in `dir`.
fn configured_port(dir: &Path) -> Option<u16> {
    let text = fs::read_to_string(dir.join(CONF_FILE)).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix("port = ")?;
        value.trim().trim_matches('\'').parse().ok()
    })
}

/// `name` as a double-quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
