//! The metrics zetl exports, in Prometheus' text exposition format. Names and labels are
//! documented in docs/operations.md ("Metrics"); keep both in step.

use crate::event::Phase;
use crate::progress::{Progress, LATENCY_BUCKETS};
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub const LAG_SECONDS: &str = "zetl_lag_seconds";
pub const LAG_BYTES: &str = "zetl_lag_bytes";
pub const PHASE: &str = "zetl_phase";
pub const RETAINED_BYTES: &str = "zetl_source_retained_bytes";
pub const CHANGES_APPLIED: &str = "zetl_changes_applied_total";
pub const TRANSACTIONS_APPLIED: &str = "zetl_transactions_applied_total";
pub const BATCHES_COMMITTED: &str = "zetl_batches_committed_total";
pub const SNAPSHOT_ROWS: &str = "zetl_snapshot_rows_total";
pub const SNAPSHOT_ROWS_ESTIMATED: &str = "zetl_snapshot_rows_estimated";
pub const TABLE_COPYING: &str = "zetl_table_copying";
pub const SNAPSHOT_ROWS_PER_SECOND: &str = "zetl_snapshot_rows_per_second";
pub const APPLY_DURATION: &str = "zetl_apply_duration_seconds";
pub const LAST_TARGET_COMMIT: &str = "zetl_last_target_commit_timestamp_seconds";
pub const RECONNECTS: &str = "zetl_reconnects_total";
pub const RESYNCS: &str = "zetl_table_resyncs_required_total";
pub const ERRORS: &str = "zetl_errors_total";
pub const DEAD_LETTERS: &str = "zetl_dead_letters_total";

/// Renders every metric of one integration.
pub fn render(integration: &str, p: &Progress, now_us: i64) -> String {
    let mut out = String::with_capacity(4096);
    let it = escape(integration);
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed).to_string();
    // (name, help, type, value) of the integration-wide series.
    let series: [(&str, &str, &str, String); 10] = [
        (
            LAG_SECONDS,
            "Seconds since the source commit of the oldest change not yet committed at the target (0 when caught up).",
            "gauge",
            format!("{}", p.lag_seconds(now_us)),
        ),
        (
            LAG_BYTES,
            "Bytes of source log received or announced but not yet committed at the target.",
            "gauge",
            p.lag_bytes().to_string(),
        ),
        (
            RETAINED_BYTES,
            "Source log the server retains for this integration (PostgreSQL: WAL held by the slot).",
            "gauge",
            load(&p.retained_log_bytes),
        ),
        (
            TRANSACTIONS_APPLIED,
            "Source transactions committed at the target.",
            "counter",
            load(&p.transactions_applied),
        ),
        (BATCHES_COMMITTED, "Target transactions committed.", "counter", load(&p.batches_committed)),
        (
            LAST_TARGET_COMMIT,
            "Unix time of the last target commit.",
            "gauge",
            format!("{}", p.last_target_commit_us.load(Ordering::Relaxed) as f64 / 1e6),
        ),
        (RECONNECTS, "Restarts of the pipeline after a lost connection.", "counter", load(&p.reconnects)),
        (
            RESYNCS,
            "Tables zetl marked to copy again by itself because the stream could not carry a change (see the log for which and why).",
            "counter",
            load(&p.resyncs_required),
        ),
        (ERRORS, "Errors that stopped the pipeline (retried or fatal).", "counter", load(&p.errors)),
        (
            DEAD_LETTERS,
            "Changes the target rejected, kept in _zetl.dead_letters (apply.on_error: dead_letter).",
            "counter",
            load(&p.dead_letters),
        ),
    ];
    for (name, help, kind, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{integration=\"{it}\"}} {value}");
    }

    let _ = writeln!(out, "# HELP {PHASE} 1 for the phase the integration is in.\n# TYPE {PHASE} gauge");
    for phase in Phase::ALL {
        let (name, on) = (phase.as_str(), u8::from(p.phase.is(phase)));
        let _ = writeln!(out, "{PHASE}{{integration=\"{it}\",phase=\"{name}\"}} {on}");
    }

    let tables = p.tables.lock().map(|t| t.clone()).unwrap_or_default();
    let _ = writeln!(
        out,
        "# HELP {CHANGES_APPLIED} Source changes applied, per table and operation.\n# TYPE {CHANGES_APPLIED} counter"
    );
    for (table, c) in &tables {
        let t = escape(table);
        for (op, n) in [("insert", c.inserts), ("update", c.updates), ("delete", c.deletes), ("truncate", c.truncates)]
        {
            let _ = writeln!(out, "{CHANGES_APPLIED}{{integration=\"{it}\",table=\"{t}\",op=\"{op}\"}} {n}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP {SNAPSHOT_ROWS} Rows copied by initial copies, per table.\n# TYPE {SNAPSHOT_ROWS} counter"
    );
    for (table, c) in &tables {
        let _ = writeln!(out, "{SNAPSHOT_ROWS}{{integration=\"{it}\",table=\"{}\"}} {}", escape(table), c.rows_copied);
    }
    let _ = writeln!(out, "# HELP {SNAPSHOT_ROWS_ESTIMATED} The source's row estimate for tables being copied.\n# TYPE {SNAPSHOT_ROWS_ESTIMATED} gauge");
    for (table, c) in tables.iter().filter(|(_, c)| c.rows_estimated > 0) {
        let _ = writeln!(
            out,
            "{SNAPSHOT_ROWS_ESTIMATED}{{integration=\"{it}\",table=\"{}\"}} {}",
            escape(table),
            c.rows_estimated
        );
    }

    let _ =
        writeln!(out, "# HELP {TABLE_COPYING} 1 for each table whose copy is under way.\n# TYPE {TABLE_COPYING} gauge");
    for (table, _) in tables.iter().filter(|(_, c)| c.copying) {
        let _ = writeln!(out, "{TABLE_COPYING}{{integration=\"{it}\",table=\"{}\"}} 1", escape(table));
    }
    let _ = writeln!(
        out,
        "# HELP {SNAPSHOT_ROWS_PER_SECOND} Rows per second of each copy under way, since it began in this run.\n# TYPE {SNAPSHOT_ROWS_PER_SECOND} gauge"
    );
    for (table, rate) in tables.iter().filter_map(|(t, c)| Some((t, c.copy_rate()?))) {
        let _ =
            writeln!(out, "{SNAPSHOT_ROWS_PER_SECOND}{{integration=\"{it}\",table=\"{}\"}} {rate:.0}", escape(table));
    }

    let h = p.apply_latency.lock().map(|h| h.clone()).unwrap_or_default();
    let _ = writeln!(
        out,
        "# HELP {APPLY_DURATION} Time to apply and commit one target transaction.\n# TYPE {APPLY_DURATION} histogram"
    );
    for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets.iter()) {
        let _ = writeln!(out, "{APPLY_DURATION}_bucket{{integration=\"{it}\",le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{APPLY_DURATION}_bucket{{integration=\"{it}\",le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{APPLY_DURATION}_sum{{integration=\"{it}\"}} {}", h.sum);
    let _ = writeln!(out, "{APPLY_DURATION}_count{{integration=\"{it}\"}} {}", h.count);
    out
}

/// Label values escape `\`, `"` and newlines.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let p = Progress::default();
        p.add_copied("public.items", 10);
        p.transactions_applied.store(3, Ordering::Relaxed);
        p.observe_apply(0.02);
        let text = render("shop", &p, 0);
        assert!(text.contains("zetl_snapshot_rows_total{integration=\"shop\",table=\"public.items\"} 10"), "{text}");
        assert!(text.contains("zetl_transactions_applied_total{integration=\"shop\"} 3"), "{text}");
        assert!(text.contains("zetl_apply_duration_seconds_bucket{integration=\"shop\",le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("zetl_lag_seconds{integration=\"shop\"} 0"), "{text}");
    }
}
