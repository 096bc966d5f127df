//! `zetl-harness`: start and stop throwaway servers from shell scripts.
//!
//! ```text
//! zetl-harness pg start DIR        # prints export ZETL_PG_PORT=... ZETL_PG_URL=...
//! zetl-harness pg stop DIR
//! zetl-harness mariadb start DIR   # prints export ZETL_MYSQL_PORT=... ZETL_MYSQL_URL=...
//! zetl-harness mariadb stop DIR
//! zetl-harness moto start DIR      # prints export ZETL_MOTO_PORT=... ZETL_MOTO_URL=...
//! zetl-harness moto stop DIR
//! ```
//!
//! `start` leaves the server running (use it as `eval "$(zetl-harness pg
//! start DIR)"`); run on a directory whose server is stopped it starts it
//! again, and on one whose server runs it just prints its settings.

use std::path::Path;
use std::process::ExitCode;

use zetl_testkit::{HarnessError, MariaDbOptions, MariaDbServer, MotoServer, PgOptions, PgServer};

const USAGE: &str = "usage: zetl-harness <pg|mariadb|moto> <start|stop> DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let [kind, action, dir] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let dir = Path::new(dir);
    let result = match (kind.as_str(), action.as_str()) {
        ("pg" | "postgres" | "postgresql", "start") => start_pg(dir),
        ("pg" | "postgres" | "postgresql", "stop") => PgServer::stop_dir(dir),
        ("mariadb" | "mysql", "start") => start_mariadb(dir),
        ("mariadb" | "mysql", "stop") => MariaDbServer::stop_dir(dir),
        ("moto", "start") => start_moto(dir),
        ("moto", "stop") => MotoServer::stop_dir(dir),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zetl-harness {kind} {action}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start_pg(dir: &Path) -> Result<(), HarnessError> {
    let server = PgServer::start_in(dir, PgOptions::default())?;
    println!("export ZETL_PG_PORT={}", server.port());
    println!("export ZETL_PG_URL={}", server.url("zetl"));
    server.detach();
    Ok(())
}

fn start_mariadb(dir: &Path) -> Result<(), HarnessError> {
    let server = MariaDbServer::start_in(dir, MariaDbOptions::default())?;
    println!("export ZETL_MYSQL_PORT={}", server.port());
    println!("export ZETL_MYSQL_URL={}", server.url("zetl"));
    server.detach();
    Ok(())
}

fn start_moto(dir: &Path) -> Result<(), HarnessError> {
    let server = MotoServer::start_in(dir)?;
    println!("export ZETL_MOTO_PORT={}", server.port());
    println!("export ZETL_MOTO_URL={}", server.endpoint_url());
    server.detach();
    Ok(())
}
