//! `zetl`: run, check and watch one Zero-ETL integration.
//!
//! Exit codes (docs/operations.md): 0 success or clean stop, 1 replication error,
//! 2 configuration error, 3 a `check` failed.

mod check;
mod dead_letters;
mod drop;
mod failure;
mod http;
mod lake;
mod logging;
mod registry;
mod resync;
mod run;
mod status;
mod tty;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "zetl",
    version,
    about = "Zero-ETL replication: PostgreSQL and MySQL into DuckDB or PostgreSQL, exactly once"
)]
struct Cli {
    /// Log format: text for people, json for machines. Levels come from RUST_LOG.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Copy the matching tables, then stream every change until stopped (Ctrl-C / SIGTERM).
    Run(Target),
    /// Check the config, connectivity and server prerequisites without changing anything.
    Check(Target),
    /// Remove the integration's replication slot and publications from the source (asks first).
    Drop {
        #[command(flatten)]
        target: Target,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Copy tables again (schema.table …): at once when `zetl run` answers on metrics.listen,
    /// else at its next start. `--all` starts the whole integration over from a new snapshot.
    Resync {
        #[command(flatten)]
        target: Target,
        /// Copy everything again at the next start (zetl must be stopped); needed when the
        /// source no longer has the stored position.
        #[arg(long, conflicts_with = "tables")]
        all: bool,
        /// The tables, as schema.table.
        #[arg(required_unless_present = "all")]
        tables: Vec<String>,
    },
    /// Changes the target rejected (apply.on_error: dead_letter): list them, or apply them again.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Apache Iceberg targets: table maintenance.
    Lake {
        #[command(subcommand)]
        action: LakeAction,
    },
    /// Show phase, position, lag and per-table state.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Refresh every two seconds.
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Subcommand)]
enum LakeAction {
    /// Rewrite tables that have position deletes or several small files, expire old snapshots
    /// and remove files nothing refers to. A running `zetl run` waits meanwhile.
    Maintain {
        #[command(flatten)]
        target: Target,
        /// Keep snapshots, and files nothing refers to, younger than this (`1h`, `30m`, `0s`).
        #[arg(long, default_value = "1h")]
        older_than: String,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// One line each: id, table, key, operation, when, error.
    List(Target),
    /// Apply them again, after fixing what made the target reject them.
    Replay {
        #[command(flatten)]
        target: Target,
        /// Only these (ids from `list`); default: every one not yet replayed.
        ids: Vec<i64>,
    },
}

#[derive(clap::Args)]
struct Target {
    /// The YAML file declaring the integrations.
    #[arg(short, long, default_value = "zetl.yaml")]
    config: PathBuf,
    /// Which integration (may be left out when the file holds one).
    #[arg(short, long)]
    integration: Option<String>,
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
pub const EXIT_CHECK: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zetl: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run(t) => run::run(&t.config, t.integration.as_deref()).await,
            Command::Check(t) => check::check(&t.config, t.integration.as_deref()).await,
            Command::Resync { target, all: true, .. } => {
                resync::resync_all(&target.config, target.integration.as_deref()).await
            }
            Command::Resync { target, tables, .. } => {
                resync::resync(&target.config, target.integration.as_deref(), &tables).await
            }
            Command::DeadLetters { action: DeadLetterAction::List(t) } => {
                dead_letters::list(&t.config, t.integration.as_deref()).await
            }
            Command::DeadLetters { action: DeadLetterAction::Replay { target, ids } } => {
                dead_letters::replay(&target.config, target.integration.as_deref(), ids).await
            }
            Command::Lake { action: LakeAction::Maintain { target, older_than } } => {
                lake::maintain(&target.config, target.integration.as_deref(), &older_than).await
            }
            Command::Drop { target, yes } => drop::drop(&target.config, target.integration.as_deref(), yes).await,
            Command::Status { target, json, watch } => {
                status::status(&target.config, target.integration.as_deref(), json, watch).await
            }
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = if e.downcast_ref::<zetl_core::ConfigError>().is_some() { EXIT_CONFIG } else { EXIT_FAILED };
            match cli.log_format {
                LogFormat::Json => tracing::error!(error = %format!("{e:#}"), "zetl stopped"),
                LogFormat::Text => eprintln!("zetl: error: {e:#}"),
            }
            ExitCode::from(code)
        }
    }
}
