//! Read-only prerequisite checks for `zetl check`: one verdict per line, with the fix.

use crate::catalog;
use crate::position::BinlogPos;
use crate::source::MySource;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use zetl_core::check::Verdict;

/// Below this, a stopped integration soon finds its position purged.
const MIN_RETENTION_SECS: u64 = 24 * 3600;

/// `stored`: the position the target holds, when it could be read, to tell whether the server
/// still has the binlog from there.
pub(crate) async fn check(source: &MySource, stored: Option<&str>) -> Vec<Verdict> {
    let mut out = Vec::new();
    let info = source.conn_info();
    let mut conn = match info.connect().await {
        Ok(c) => {
            out.push(Verdict::pass("source connection".into(), format!("{} as {}", info.addr, info.user)));
            c
        }
        Err(e) => {
            out.push(Verdict::fail("source connection".into(), e.to_string()));
            return out;
        }
    };
    match catalog::server_info(&mut conn).await {
        Ok(server) => {
            out.push(Verdict::pass("server".into(), server.version.clone()));
            let setting = |name: &str, value: &str, ok: bool, fix: &str| -> Verdict {
                let detail = if ok { value.to_string() } else { format!("{value}; {fix}") };
                Verdict::new(ok, name.to_string(), detail)
            };
            let on = if server.log_bin { "ON" } else { "OFF" };
            out.push(setting(
                "log_bin",
                on,
                server.log_bin,
                "start the server with log_bin (e.g. `log_bin = mysql-bin` in my.cnf)",
            ));
            for (name, value) in
                [("binlog_format", &server.binlog_format), ("binlog_row_image", &server.binlog_row_image)]
            {
                let want = if name == "binlog_format" { "ROW" } else { "FULL" };
                out.push(setting(
                    name,
                    value,
                    value == want,
                    &format!("SET GLOBAL {name} = '{want}' and set it in my.cnf"),
                ));
            }
            out.push(setting(
                "binlog_row_metadata",
                &server.binlog_row_metadata,
                server.binlog_row_metadata == "FULL",
                "SET GLOBAL binlog_row_metadata = 'FULL' and set it in my.cnf (zetl reads column names from the binlog)",
            ));
            if server.flavor == crate::flavor::Flavor::MariaDb {
                out.push(setting(
                    "log_bin_compress",
                    if server.log_bin_compress { "ON" } else { "OFF" },
                    !server.log_bin_compress,
                    "SET GLOBAL log_bin_compress = OFF and set it in my.cnf (zetl cannot read compressed binlog events)",
                ));
            }
            out.push(setting(
                "server_id",
                &server.server_id.to_string(),
                server.server_id != 0,
                "set a non-zero server_id in my.cnf",
            ));
            out.push(Verdict::pass("replica server id".into(), format!("{} (source.server_id)", source.server_id())));
            if let Some(signal) = source.signal() {
                out.extend(signal.check(&mut conn, server.flavor).await);
            } else if server.flavor != crate::flavor::Flavor::MariaDb {
                out.push(Verdict::warn(
                    "signal table".into(),
                    "not set: tables copied while streaming (new tables, `zetl resync`) are copied in one piece \
                     while the binlog waits; set source.signal_table to fill them in chunks beside the stream"
                        .into(),
                ));
            }
            if server.log_bin {
                out.push(retention(&mut conn).await);
                if let Some(stored) = stored.and_then(BinlogPos::parse) {
                    out.push(stored_position(&mut conn, &stored).await);
                }
            }
        }
        Err(e) => out.push(Verdict::fail("server settings".into(), e.to_string())),
    }
    out.push(grants(&mut conn).await);
    match catalog::list_tables(&mut conn, &source.filter).await {
        Ok(tables) => {
            out.push(Verdict::new(!tables.is_empty(), "tables".into(), format!("{} match the filters", tables.len())));
            let mut keyless = Vec::new();
            for t in &tables {
                if let Ok(Some(table)) = catalog::table(&mut conn, &t.id).await {
                    if table.key.is_empty() {
                        keyless.push(t.id.to_string());
                    }
                }
            }
            if !keyless.is_empty() {
                out.push(Verdict::warn(
                    "primary keys".into(),
                    format!(
                        "{} without a primary key (updates and deletes then match whole rows; add a key): {}",
                        keyless.len(),
                        keyless.join(", ")
                    ),
                ));
            }
        }
        Err(e) => out.push(Verdict::fail("tables".into(), e.to_string())),
    }
    out
}

/// Whether the binlog the integration resumes from is still there, and how close it is to
/// being purged.
async fn stored_position(conn: &mut Conn, stored: &BinlogPos) -> Verdict {
    let files: Vec<(String, u64)> = match conn.query::<mysql_async::Row, _>("SHOW BINARY LOGS").await {
        Ok(rows) => rows.into_iter().filter_map(|r| Some((r.get(0)?, r.get(1)?))).collect(),
        Err(e) => return Verdict::warn("stored position".into(), format!("cannot list binary logs: {e}")),
    };
    let what = "stored position".to_string();
    match files.iter().position(|(f, _)| f == &stored.file) {
        None => Verdict::fail(
            what,
            format!("{stored} is no longer on the server: run `zetl resync --all`, then `zetl run`"),
        ),
        Some(i) => {
            let behind: u64 = files[i..].iter().map(|(_, size)| size).sum::<u64>().saturating_sub(stored.pos);
            let detail = format!("{stored}, {behind} bytes of binlog behind the server");
            if i == 0 && files.len() > 1 {
                Verdict::warn(what, format!("{detail}; it is in the oldest binlog, which expires first"))
            } else {
                Verdict::pass(what, detail)
            }
        }
    }
}

async fn retention(conn: &mut Conn) -> Verdict {
    let vars: Vec<(String, String)> = conn
        .query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_expire_logs_seconds', 'expire_logs_days')")
        .await
        .unwrap_or_default();
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.parse::<f64>().ok());
    let secs = match (get("binlog_expire_logs_seconds"), get("expire_logs_days")) {
        (Some(s), _) if s > 0.0 => s as u64,
        (_, Some(d)) if d > 0.0 => (d * 86_400.0) as u64,
        _ => 0,
    };
    match secs {
        0 => Verdict::pass("binlog retention".into(), "binlogs are never expired".into()),
        s if s < MIN_RETENTION_SECS => Verdict::warn(
            "binlog retention".into(),
            format!("{:.1} h: an integration stopped longer than that must be copied again; raise binlog_expire_logs_seconds", s as f64 / 3600.0),
        ),
        s => Verdict::pass("binlog retention".into(), format!("{:.1} days (keep lag well below it)", s as f64 / 86_400.0)),
    }
}

async fn grants(conn: &mut Conn) -> Verdict {
    match catalog::missing_grants(conn).await {
        Err(e) => Verdict::fail("grants".into(), format!("cannot read them: {e}")),
        Ok(missing) if missing.is_empty() => {
            Verdict::pass("grants".into(), "REPLICATION SLAVE, REPLICATION CLIENT, SELECT".into())
        }
        Ok(missing) => Verdict::fail("grants".into(), catalog::grant_fix(&missing)),
    }
}
