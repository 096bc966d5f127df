//! Shared support for the end-to-end tests: a PostgreSQL server and a scratch directory per
//! test, the YAML config, the real `zetl` binary as a child process, waiting until the target
//! has committed everything the source wrote, and the whole-table comparison.
//!
//! Every wait is bounded ([`TIMEOUT`]) and panics with what it waited for. zetl's output goes
//! to `zetl.log` in the test's scratch directory; when a test fails, the directory is kept and
//! the log's tail is printed (by [`Scratch`]'s drop, after the panic message).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod config;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod mysql;
pub mod netns;
pub mod relay;
pub mod warehouse;

use config::{map, TestConfig};
use serde_yaml::Mapping;
use std::sync::atomic::{AtomicU64, Ordering};

pub use zetl_testkit::compare::assert_tables_equal;
pub use zetl_testkit::{PgOptions, PgServer};

/// How long any wait in these tests may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `zetl check`'s exit code when a check fails.
pub const EXIT_CHECK_CODE: i32 = 3;

/// The database every test replicates from.
pub const DB: &str = "zetl";

/// The `zetl` binary built for these tests.
pub fn zetl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_zetl")
}

/// A directory of its own for one test; removed when the test passes (unless `ZETL_TEST_KEEP`
/// is set), kept (with the tail of every `*.log` in it printed) when it fails.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("zetl-it-{test}-{}-{nanos:09}", std::process::id()));
        fs::create_dir_all(&path).expect("create the test's scratch directory");
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut logs: Vec<PathBuf> = fs::read_dir(&self.path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            logs.sort();
            for log in logs {
                eprintln!("{}", tail(&log, 60));
            }
            eprintln!("(test files kept in {})", self.path.display());
        } else if std::env::var_os("ZETL_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The last `lines` lines of a file, with a header naming it.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!("----- last {} lines of {} -----\n{}\n-----", all.len() - start, path.display(), all[start..].join("\n"))
}

/// A source server a test replicates from.
pub trait Server {
    /// The `source:` settings that reach it.
    fn source(&self) -> Mapping;

    /// Environment `zetl` needs to reach it (`(name, value)`; empty removes).
    fn zetl_env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

/// One test's world: its source server and scratch directory, the same for every source.
/// Field order matters: the server stops before the directory (and its log report) goes.
pub struct Env<S> {
    pub server: S,
    pub scratch: Scratch,
    /// Sentinels written so far (see `catch_up_and_stop` of MySQL and DynamoDB).
    sync: AtomicU64,
}

impl<S: Server> Env<S> {
    fn new(server: S, scratch: Scratch) -> Env<S> {
        Env { server, scratch, sync: AtomicU64::new(0) }
    }

    pub fn duckdb_path(&self) -> PathBuf {
        self.scratch.path.join("warehouse.duckdb")
    }

    pub fn log_path(&self) -> PathBuf {
        self.scratch.path.join("zetl.log")
    }

    /// Integration `name` from this server into the test's DuckDB file, 100 ms batches.
    pub fn base_config(&self, name: &str) -> TestConfig {
        TestConfig::new(&self.scratch.path, name, self.server.source(), &self.duckdb_path())
    }

    /// Starts `zetl run -c config`, its output appended to the test's `zetl.log`.
    pub fn run_zetl(&self, config: &Path) -> Zetl {
        Zetl::spawn_with(config, &self.log_path(), self.server.zetl_env())
    }

    /// Opens the target read-only (zetl must be stopped).
    pub fn duckdb(&self) -> duckdb::Connection {
        duckdb_read_only(&self.duckdb_path())
    }

    /// Changes the target as a user would between runs (zetl must not be running).
    pub fn target_sql(&self, sql: &str) {
        duckdb_exec(&self.duckdb_path(), sql);
    }

    /// One value from the target as text (NULL as `None`); zetl must be stopped.
    pub fn target_value(&self, sql: &str) -> Option<String> {
        duckdb_value(&self.duckdb_path(), sql)
    }

    /// `schema.table` of every table at the target outside `_zetl`, sorted.
    pub fn target_tables(&self) -> Vec<String> {
        let conn = self.duckdb();
        let mut stmt = conn
            .prepare(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables() \
                 WHERE schema_name <> '_zetl' AND NOT temporary ORDER BY 1",
            )
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("list target tables");
        rows.collect::<Result<Vec<_>, _>>().expect("list target tables")
    }

    /// Whether `count_sql` (a `SELECT count(*)` for a sentinel) counts 1 at the target and the
    /// target is past its initial copy: a copy cut off and started over may already hold the
    /// sentinel's table while other tables are still being copied.
    fn target_synced(&self, count_sql: &str) -> bool {
        let Ok(duck) = duckdb::Connection::open_with_flags(
            self.duckdb_path(),
            duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).expect("duckdb config"),
        ) else {
            return false;
        };
        let sql = format!(
            "SELECT ({count_sql}) = 1 AND NOT EXISTS (SELECT 1 FROM _zetl.checkpoints WHERE phase <> 'streaming')"
        );
        duck.query_row(&sql, [], |r| r.get::<_, bool>(0)).unwrap_or(false)
    }

    /// Whether zetl's last run started an initial copy (its `starting` line says phase `new` or
    /// `snapshotting`) that is not committed yet. A copy started over (after a stop or a crash
    /// in the middle of one) re-creates what the catch-up checks look at, so they wait for it.
    fn copy_in_progress(&self) -> bool {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let Some(start) = log.rfind(": starting phase=") else { return false };
        let run = &log[start..];
        let copying =
            run.lines().next().is_some_and(|l| l.contains("phase=\"new\"") || l.contains("phase=\"snapshotting\""));
        (copying && !run.contains("initial copy committed at the target")) || fill_in_progress(run)
    }

    /// The number of the next sentinel to write.
    pub fn next_sync(&self) -> u64 {
        self.sync.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// After a sentinel was written at the source: stops zetl and looks for it at the target
    /// (`synced`); until it is there, zetl runs again, for twice as long up to `max_wait`.
    /// Returns with zetl stopped and the target holding every change written before.
    fn stop_when_synced(
        &self,
        mut zetl: Zetl,
        config: &Path,
        (mut wait, max_wait): (Duration, Duration),
        synced: impl Fn() -> bool,
    ) {
        let started = Instant::now();
        loop {
            std::thread::sleep(wait);
            // A stop cuts an initial copy off (it starts over): let it end first.
            wait_for("the initial copy to be committed", &mut zetl, || !self.copy_in_progress());
            zetl.stop();
            if synced() {
                return;
            }
            assert!(started.elapsed() < TIMEOUT * 2, "zetl did not catch up with the source within {:?}", TIMEOUT * 2);
            wait = (wait * 2).min(max_wait);
            zetl = self.run_zetl(config);
        }
    }
}

impl Server for PgServer {
    fn source(&self) -> Mapping {
        map([("kind", "postgres".into()), ("url", self.url(DB).into()), ("table_discovery_secs", 1.into())])
    }
}

/// A test replicating from PostgreSQL.
pub type TestEnv = Env<PgServer>;

impl TestEnv {
    pub fn start(test: &str) -> TestEnv {
        Self::start_with(test, PgOptions::default())
    }

    pub fn start_with(test: &str, opts: PgOptions) -> TestEnv {
        let scratch = Scratch::new(test);
        let pg = PgServer::start(opts).unwrap_or_else(|e| panic!("start PostgreSQL: {e}"));
        Env::new(pg, scratch)
    }

    pub fn url(&self) -> String {
        self.server.url(DB)
    }

    /// Runs SQL at the source (psql as superuser) and returns its output; panics on errors.
    pub fn sql(&self, sql: &str) -> String {
        self.server.psql(DB, sql).unwrap_or_else(|e| panic!("SQL at the source failed: {e}\n--- SQL ---\n{sql}"))
    }

    /// One value from the source.
    pub fn sql_value(&self, sql: &str) -> String {
        self.sql(sql).trim().to_string()
    }

    /// `public.big` with `rows` rows of about 100 bytes, analysed: a copy that takes a while.
    pub fn big_table(&self, rows: u64) {
        self.sql(&format!(
            "CREATE TABLE big (id int PRIMARY KEY, pad text); \
             INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) g; ANALYZE big"
        ));
    }

    /// Integration `name` replicating `tables` (patterns for `tables.include`), table
    /// discovery every second.
    pub fn config(&self, name: &str, tables: &[&str]) -> TestConfig {
        self.base_config(name).include(tables)
    }

    /// The name zetl gives the integration's replication slot.
    pub fn slot_name(integration: &str) -> String {
        format!("zetl_{}", integration.replace('-', "_"))
    }

    /// Waits until the target has committed everything the source wrote so far: the slot's
    /// `confirmed_flush_lsn` (which zetl only advances for what the target committed, in the
    /// streaming phase) reaches a WAL position written after this call started. Works as well
    /// right after zetl started (it then also waits for the initial copy).
    pub fn wait_caught_up(&self, zetl: &mut Zetl, integration: &str) {
        self.wait_caught_up_within(zetl, integration, TIMEOUT)
    }

    /// [`TestEnv::wait_caught_up`] with another timeout.
    pub fn wait_caught_up_within(&self, zetl: &mut Zetl, integration: &str, timeout: Duration) {
        let slot = Self::slot_name(integration);
        let exists = format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'");
        wait_for(&format!("replication slot {slot} to exist"), zetl, || self.sql_value(&exists) == "1");
        // A WAL record after everything so far (and after the slot's consistent point). The
        // harness runs with synchronous_commit=off, so pg_current_wal_lsn() (the *write*
        // position) can still be before the last commits: the insert position is what counts.
        let lsn = self.sql_value(
            "SELECT pg_logical_emit_message(false, 'zetl-test', 'sync');\n\
             SELECT pg_current_wal_insert_lsn()",
        );
        let lsn = lsn.lines().last().unwrap_or_default().to_string();
        let query = format!(
            "SELECT coalesce(confirmed_flush_lsn >= '{lsn}'::pg_lsn, false) || '|' || \
                    coalesce(confirmed_flush_lsn::text, '-') \
             FROM pg_replication_slots WHERE slot_name = '{slot}'"
        );
        let mut last = String::new();
        let done = poll(timeout, || {
            if let Some(status) = zetl.try_exit() {
                panic!("zetl exited ({status}) while the test waited for it to catch up with {lsn}");
            }
            last = self.sql_value(&query);
            // A slot created again (an initial copy started over) begins past `lsn`: the copy
            // must also be committed.
            last.starts_with("true|") && !self.copy_in_progress()
        });
        if !done {
            panic!(
                "zetl did not catch up with source LSN {lsn} within {timeout:?}: slot {slot} is at {}",
                last.split('|').nth(1).unwrap_or("(no slot)")
            );
        }
    }

    /// Compares the listed tables (`schema.table`) between the source and the target; zetl must
    /// be stopped.
    pub fn assert_equal(&self, tables: &[&str]) {
        assert_tables_equal(&self.url(), &self.duckdb_path(), tables);
    }
}

/// The DuckDB target file opened read-only (zetl may hold it for writing).
pub fn duckdb_read_only(path: &Path) -> duckdb::Connection {
    let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).expect("duckdb config");
    duckdb::Connection::open_with_flags(path, config).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The one value `sql` selects from the DuckDB target, as text; `None` for NULL.
pub fn duckdb_value(path: &Path, sql: &str) -> Option<String> {
    duckdb_read_only(path)
        .query_row(&format!("SELECT CAST(({sql}) AS VARCHAR)"), [], |r| r.get::<_, Option<String>>(0))
        .unwrap_or_else(|e| panic!("target query failed: {e}\n{sql}"))
}

/// Runs `sql` on the DuckDB target as a user would between runs (zetl must not be running).
pub fn duckdb_exec(path: &Path, sql: &str) {
    let conn = duckdb::Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.execute_batch(sql).unwrap_or_else(|e| panic!("target SQL failed: {e}\n{sql}"));
}

/// Polls `ready` every 100 ms until it holds or `timeout` passes.
pub fn poll(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to [`TIMEOUT`] for `ready`, failing early if zetl exits meanwhile.
pub fn wait_for(what: &str, zetl: &mut Zetl, mut ready: impl FnMut() -> bool) {
    let done = poll(TIMEOUT, || {
        if let Some(status) = zetl.try_exit() {
            panic!("zetl exited ({status}) while the test waited for {what}");
        }
        ready()
    });
    assert!(done, "timed out after {TIMEOUT:?} waiting for {what}");
}

/// A running `zetl run`. Dropping it kills the process (SIGKILL) if it still runs.
pub struct Zetl {
    child: Child,
    exited: Option<ExitStatus>,
}

impl Zetl {
    /// With extra environment variables (`(name, value)`; an empty value removes it).
    pub fn spawn_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Zetl {
        Self::spawn_wrapped(&[], config, log, env)
    }

    /// `zetl run` started by `wrapper` (e.g. `ip netns exec NS`), which must exec it.
    pub fn spawn_wrapped(wrapper: &[&str], config: &Path, log: &Path, env: &[(&str, &str)]) -> Zetl {
        let mut file = OpenOptions::new().create(true).append(true).open(log).expect("open zetl.log");
        let _ = writeln!(file, "===== zetl run -c {} =====", config.display());
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(zetl_bin());
                c
            }
            None => Command::new(zetl_bin()),
        };
        command
            .args(["run", "-c"])
            .arg(config)
            .env("RUST_LOG", std::env::var("ZETL_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file);
        with_env(&mut command, env);
        let child = command.spawn().expect("spawn zetl");
        Zetl { child, exited: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait on zetl");
        }
        self.exited
    }

    /// SIGTERM, then waits for a clean exit (status 0); panics with the log's tail otherwise.
    pub fn stop(mut self) {
        if let Some(status) = self.try_exit() {
            panic!("zetl had already exited ({status}) when the test stopped it");
        }
        signal(self.pid(), "TERM");
        let exited = poll(TIMEOUT, || self.try_exit().is_some());
        if !exited {
            panic!("zetl did not exit within {TIMEOUT:?} of SIGTERM");
        }
        let status = self.exited.expect("exited");
        assert!(status.success(), "zetl exited with {status} after SIGTERM (expected 0)");
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_term(&self) {
        signal(self.pid(), "TERM");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(mut self) {
        if let Some(status) = self.try_exit() {
            panic!("zetl had already exited ({status}) when the test killed it");
        }
        signal(self.pid(), "KILL");
        self.exited = Some(self.child.wait().expect("wait for zetl"));
    }
}

impl Drop for Zetl {
    fn drop(&mut self) {
        if self.exited.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Runs `zetl ARGS` to completion (bounded by [`TIMEOUT`]) and returns its output.
pub fn zetl_command(args: &[&str]) -> Output {
    zetl_command_timeout(args, TIMEOUT).unwrap_or_else(|out| {
        panic!(
            "`zetl {}` did not finish within {TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `zetl ARGS`; `Err` holds what it printed when it had to be killed after `timeout`.
pub fn zetl_command_timeout(args: &[&str], timeout: Duration) -> Result<Output, Output> {
    zetl_command_with(args, timeout, &[])
}

/// `zetl ARGS` with extra environment variables (an empty value removes one).
pub fn zetl_command_with(args: &[&str], timeout: Duration, env: &[(&str, &str)]) -> Result<Output, Output> {
    let dir = Scratch::new("cmd");
    let (out_path, err_path) = (dir.path.join("stdout"), dir.path.join("stderr"));
    let mut command = Command::new(zetl_bin());
    command
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"));
    with_env(&mut command, env);
    let mut child = command.spawn().expect("spawn zetl");
    let mut status = None;
    poll(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let killed = status.is_none();
    if killed {
        let _ = child.kill();
        status = Some(child.wait().expect("wait"));
    }
    let out = Output {
        status: status.expect("status"),
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    };
    if killed {
        Err(out)
    } else {
        Ok(out)
    }
}

/// A small deterministic PRNG (xorshift64*), seeded from the clock unless `ZETL_TEST_SEED` is
/// set; tests print the seed so that a failure can be replayed.
fn with_env(command: &mut Command, env: &[(&str, &str)]) {
    for (name, value) in env {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
}

pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_clock() -> Rng {
        let seed = std::env::var("ZETL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(42));
        eprintln!("random seed: ZETL_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// `GET path` from zetl's HTTP endpoint on `port`: status and body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of the metrics sample whose line starts with `series` (name and labels).
pub fn metric_sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

impl<S: Server> Env<S> {
    /// Runs zetl three times, killing it (SIGKILL) once `copied` (rows, from its metrics) is at
    /// 30, 60 and 90 % of `total`; from the second run on, the log must say `continued` once
    /// more each time.
    pub fn kill_9_at_30_60_and_90_percent(&self, config: &Path, total: f64, continued: &str, copied: impl Fn() -> f64) {
        for (run, percent) in [30.0, 60.0, 90.0].into_iter().enumerate() {
            let mut zetl = self.run_zetl(config);
            wait_for(&format!("{percent}% of the rows copied"), &mut zetl, || copied() >= total * percent / 100.0);
            zetl.kill9();
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let times = log.matches(continued).count();
            assert!(times >= run, "run {} continued {times} copies:\n{log}", run + 1);
        }
    }
}

/// Rows of copies the running zetl has surely committed at the target: [`copied_rows`] as it
/// was when a later target commit was seen. (The writer counts rows as it batches them, and
/// batches or commits, one at a time, so a commit that ends after a reading holds the rows
/// counted in it.) Starts again from 0 when the process restarts.
pub struct CommittedRows {
    port: u16,
    integration: String,
    /// Rows and commits at the last reading, and the rows known committed.
    seen: std::cell::Cell<(f64, f64, f64)>,
}

impl CommittedRows {
    pub fn new(port: u16, integration: &str) -> Self {
        Self { port, integration: integration.into(), seen: Default::default() }
    }

    pub fn read(&self) -> f64 {
        let rows = copied_rows(self.port, &self.integration);
        let series = format!("zetl_batches_committed_total{{integration=\"{}\"", self.integration);
        let commits = sum_of_series(self.port, &series);
        let (rows_then, commits_then, committed) = self.seen.get();
        let committed = match commits {
            c if c < commits_then => 0.0,
            c if c > commits_then => rows_then,
            _ => committed,
        };
        self.seen.set((rows, commits, committed));
        committed
    }
}

/// Rows the running zetl has copied so far (committed or about to be), from its metrics on
/// `port`; 0 while the endpoint is not up.
pub fn copied_rows(port: u16, integration: &str) -> f64 {
    sum_of_series(port, &format!("zetl_snapshot_rows_total{{integration=\"{integration}\""))
}

/// [`copied_rows`] of one table.
pub fn copied_rows_of_table(port: u16, integration: &str, table: &str) -> f64 {
    sum_of_series(port, &format!("zetl_snapshot_rows_total{{integration=\"{integration}\",table=\"{table}\"}}"))
}

fn sum_of_series(port: u16, series: &str) -> f64 {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .map(|_| http_get(port, "/metrics").1)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `program` with python3; its stdout. Panics with its stderr when it fails.
pub fn python(program: &str) -> String {
    let out = std::process::Command::new("python3").arg("-c").arg(program).output().expect("run python3");
    assert!(
        out.status.success(),
        "python failed: {}\n--- program ---\n{program}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Whether a run's log holds a copy made while streaming that began (or went on after a
/// restart) and has not ended: caught up with the stream is not the end of such a copy, which
/// runs between the stream's transactions.
fn fill_in_progress(run: &str) -> bool {
    let table = |line: &str| line.split("table=").nth(1).and_then(|t| t.split_whitespace().next()).map(str::to_string);
    let mut open = std::collections::HashSet::new();
    for line in run.lines() {
        if line.contains("copying the table while streaming")
            || line.contains("the copy made while streaming continues")
        {
            open.extend(table(line));
        } else if line.contains("table copied while streaming") || line.contains("its copy stops") {
            if let Some(t) = table(line) {
                open.remove(&t);
            }
        }
    }
    !open.is_empty()
}

/// Sets the flag when dropped: a failed assertion inside `thread::scope` ends the workload
/// thread too, instead of leaving the scope waiting for it.
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The peak resident memory of a running process, in KiB (0 if it is gone).
pub fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}
