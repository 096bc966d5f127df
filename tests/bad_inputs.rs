//! The bad-input catalogue: one test per mistake a user makes in the file or on the command
//! line. Each must give the documented exit code (2: the file or the command line is wrong;
//! 3: `zetl check` found a problem), a message that names what is wrong and where (file, line,
//! key), and never the password. Mistakes that need a server (wrong passwords, grants, server
//! settings) are in config_errors.rs, mysql_errors.rs, auth.rs and the source tests.

use crate::common;

use common::{zetl_command_with, Scratch};
use std::process::Output;
use std::time::Duration;

/// Every URL below carries it through `${ZETL_BAD_PW}`; no output may contain it.
const PASSWORD: &str = "Pa55-catalogue";
const PG: &str = "postgres://u:${ZETL_BAD_PW}@127.0.0.1:1/db";
const MY: &str = "mysql://u:${ZETL_BAD_PW}@127.0.0.1:1/db";

fn zetl(args: &[&str]) -> Output {
    let env = [("ZETL_BAD_PW", PASSWORD)];
    zetl_command_with(args, Duration::from_secs(30), &env).unwrap_or_else(|out| {
        panic!("zetl {args:?} did not exit within 30 s:\n{}", text(&out));
    })
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// An integration `a` reading `source` (a YAML flow mapping), then `rest` (more keys of the
/// integration, each line indented by four spaces).
fn integration(source: &str, rest: &str) -> String {
    format!("integrations:\n  - name: a\n    source: {source}\n{rest}")
}

fn pg(rest: &str) -> String {
    integration(&format!("{{ kind: postgres, url: \"{PG}\" }}"), rest)
}

/// Writes `yaml` as `<case>.yaml`, runs `zetl check` (and `zetl run` when the file itself is
/// wrong: the same refusal, before anything starts) and checks the exit code, that every
/// `wanted` text appears (`{file}` stands for the file's path) and that the password does not.
fn refused(case: &str, yaml: &str, code: i32, wanted: &[&str]) {
    let dir = Scratch::new(&format!("bad-{case}"));
    let path = dir.path.join(format!("{case}.yaml"));
    std::fs::write(&path, yaml).expect("write the config");
    let file = path.to_str().expect("utf-8 path");
    let verbs: &[&str] = if code == 2 { &["check", "run"] } else { &["check"] };
    for verb in verbs {
        let out = zetl(&[verb, "-c", file]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(code), "{case}: `zetl {verb}` exit code\n{all}");
        for want in wanted {
            let want = want.replace("{file}", file);
            assert!(all.contains(&want), "{case}: `zetl {verb}` should say `{want}`\n{all}");
        }
        assert!(!all.contains(PASSWORD), "{case}: `zetl {verb}` printed the password\n{all}");
    }
}

macro_rules! catalogue {
    ($($case:ident: $yaml:expr => $code:expr, [$($want:expr),+ $(,)?];)+) => {
        $(
            #[test]
            fn $case() {
                refused(stringify!($case), &$yaml, $code, &[$($want),+]);
            }
        )+
    };
}

catalogue! {
    empty_file: "" => 2, ["{file}:1:1", "missing field `integrations`"];
    tab_indentation: "integrations:\n  - name: a\n\tsource: x\n" => 2, ["{file}:3:1", "tab"];
    integrations_not_a_list: "integrations: 5\n" => 2, ["{file}:1:15", "expected a sequence"];
    no_integrations: "integrations: []\n" => 2, ["{file}", "`integrations` is empty"];
    misspelt_root_key: "integration:\n  - name: a\n" => 2, ["{file}:1", "integration"];
    name_with_spaces: pg("").replace("name: a", "name: My Integration") => 2, ["`My Integration`", "a-z, 0-9"];
    name_too_long: pg("").replace("name: a", &format!("name: {}", "n".repeat(41))) => 2, ["1-40 characters"];
    name_twice: format!("{}{}", pg(""), pg("").trim_start_matches("integrations:\n")) => 2, ["integration `a` is declared twice"];
    name_missing: pg("").replace("  - name: a\n    source", "  - source") => 2, ["{file}:2", "missing field `name`"];
    key_twice: pg("").replace("name: a\n", "name: a\n    name: b\n") => 2, ["duplicate field `name`"];
    source_missing: "integrations:\n  - name: a\n" => 2, ["{file}:2", "missing field `source`"];
    source_as_url_text: integration(&format!("\"{PG}\""), "") => 2, ["source: found the text", "expected a mapping with `kind:`"];
    source_kind_missing: integration(&format!("{{ url: \"{PG}\" }}"), "") => 2, ["source: missing `kind`", "`postgres`, `mysql`, `dynamodb`"];
    source_kind_unknown: integration("{ kind: oracle, url: \"oracle://h/db\" }", "") => 2, ["source.kind: unknown kind `oracle`"];
    source_key_unknown: integration(&format!("\n      kind: postgres\n      url: \"{PG}\"\n      slot_nam: x"), "") => 2, ["{file}:6", "source.slot_nam: unknown field `slot_nam`"];
    source_url_missing: integration("{ kind: postgres }", "") => 2, ["source: missing field `url`"];
    postgres_url_with_mysql_scheme: integration(&format!("{{ kind: postgres, url: \"{MY}\" }}"), "") => 2, ["source.url must start with postgres://"];
    mysql_url_with_postgres_scheme: integration(&format!("{{ kind: mysql, url: \"{PG}\" }}"), "") => 2, ["source.url must start with mysql:// or mariadb://"];
    undefined_variable: pg("").replace("${ZETL_BAD_PW}", "${ZETL_BAD_UNSET}") => 2, ["{file}:3", "environment variable `ZETL_BAD_UNSET` is not set"];
    parallelism_zero: integration(&format!("{{ kind: postgres, url: \"{PG}\", snapshot: {{ parallelism: 0 }} }}"), "") => 2, ["source.snapshot.parallelism must be between 1 and 64"];
    parallelism_too_high: integration(&format!("{{ kind: postgres, url: \"{PG}\", snapshot: {{ parallelism: 65 }} }}"), "") => 2, ["source.snapshot.parallelism must be between 1 and 64"];
    chunk_rows_negative: integration(&format!("{{ kind: postgres, url: \"{PG}\", snapshot: {{ chunk_rows: -5 }} }}"), "") => 2, ["source.snapshot.chunk_rows: invalid value: integer `-5`"];
    discovery_interval_as_text: integration(&format!("{{ kind: postgres, url: \"{PG}\", table_discovery_secs: soon }}"), "") => 2, ["source.table_discovery_secs: invalid type: string \"soon\""];
    mysql_server_id_zero: integration(&format!("{{ kind: mysql, url: \"{MY}\", server_id: 0 }}"), "") => 2, ["source.server_id must not be 0"];
    target_kind_unknown: pg("    target: { kind: snowflake }\n") => 2, ["target.kind: unknown kind `snowflake`", "`duckdb`, `postgres`"];
    target_key_unknown: pg("    target: { kind: duckdb, file: w.duckdb }\n") => 2, ["target.file: unknown field `file`"];
    postgres_target_url_with_mysql_scheme: pg(&format!("    target: {{ kind: postgres, url: \"{MY}\" }}\n")) => 2, ["target.url must start with postgres://"];
    batch_key_unknown: pg("    batch:\n      max_wait_ms: 100\n      max_wiat: 3\n") => 2, ["{file}:6", "max_wiat"];
    batch_wait_as_text: pg("    batch: { max_wait_ms: fast }\n") => 2, ["{file}:4", "batch.max_wait_ms: invalid type: string \"fast\""];
    batch_bytes_zero: pg("    batch: { max_bytes: 0 }\n") => 2, ["batch.max_bytes must be at least 1"];
    metrics_listen_without_port: pg("    metrics: { listen: localhost }\n") => 2, ["metrics.listen `localhost` is not HOST:PORT or `off`"];
    metrics_token_with_space: pg("    metrics: { token: \"a b\" }\n") => 2, ["metrics.token must be non-empty"];
    metrics_negative_lag: pg("    metrics: { ready_max_lag_seconds: -1 }\n") => 2, ["metrics.ready_max_lag_seconds must be 0 or more"];
    metrics_key_unknown: pg("    metrics: { port: 9187 }\n") => 2, ["unknown field `port`"];
    tables_key_unknown: pg("    tables:\n      include: [\"public.*\"]\n      exlude: [x]\n") => 2, ["{file}:6", "exlude"];
    tables_include_not_a_list: pg("    tables: { include: public.orders }\n") => 2, ["tables.include", "expected a sequence"];
    pattern_with_two_dots: pg("    tables: { include: [a.b.c] }\n") => 2, ["pattern `a.b.c` must be `table` or `schema.table`"];
    pattern_empty: pg("    tables: { exclude: [\"\"] }\n") => 2, ["tables: empty table pattern"];
    pattern_without_table: pg("    tables: { include: [\"public.\"] }\n") => 2, ["pattern `public.` must be"];
    snapshot_mode_unknown: pg("    tables: { snapshot: { shop.log: sometimes } }\n") => 2, ["snapshot: `shop.log` must be one of `initial`, `never`, `resync`"];
    snapshot_mode_bad_pattern: pg("    tables: { snapshot: { a.b.c: never } }\n") => 2, ["pattern `a.b.c`"];
    apply_delete_mode_unknown: pg("    apply: { deletes: gentle }\n") => 2, ["apply.deletes: unknown variant `gentle`, expected `hard` or `soft`"];
    apply_on_error_unknown: pg("    apply: { on_error: skip }\n") => 2, ["apply.on_error: unknown variant `skip`"];
    apply_truncate_unknown: pg("    apply: { truncate: maybe }\n") => 2, ["apply.truncate: unknown variant `maybe`"];
    apply_resync_unknown: pg("    apply: { tables: { shop.orders: { resync: swap } } }\n") => 2, ["apply.tables.shop.orders.resync: unknown variant `swap`, expected `replace` or `in_place`"];
    apply_table_not_qualified: pg("    apply: { tables: { audit: { deletes: soft } } }\n") => 2, ["apply.tables: `audit` is not schema.table"];
    integration_key_unknown: pg("    colour: blue\n") => 2, ["{file}:4", "colour"];
    sslmode_unknown: pg("").replace("/db", "/db?sslmode=maybe") => 3, ["✗ source", "sslmode `maybe` is not one of"];
    port_out_of_range: pg("").replace("127.0.0.1:1", "127.0.0.1:99999") => 3, ["✗ source", "invalid PostgreSQL url"];
    iceberg_catalog_with_mysql_scheme: pg(&lake(&format!("url: \"{MY}\""), "")) => 2, ["catalog.url must be sqlite:///absolute/path/catalog.db or postgres://"];
    iceberg_catalog_relative_sqlite: pg(&lake("url: sqlite://lake/catalog.db", "")) => 2, ["catalog.url must be sqlite:///absolute/path"];
    iceberg_catalog_kind_unknown: pg(&lake("url: sqlite:///l/c.db", "").replace("kind: sql", "kind: glue")) => 2, ["unknown variant `glue`, expected `sql`"];
    iceberg_warehouse_relative: pg(&lake("url: sqlite:///l/c.db", "").replace("file:///l", "lake")) => 2, ["warehouse must be file:///absolute/path or s3://bucket/prefix"];
    iceberg_warehouse_s3_without_bucket: pg(&lake("url: sqlite:///l/c.db", "").replace("file:///l", "s3:///lake")) => 2, ["warehouse must name a bucket: s3://bucket/prefix"];
    iceberg_region_on_local_warehouse: pg(&lake("url: sqlite:///l/c.db", ", region: eu-west-1")) => 2, ["region applies to an s3:// warehouse only"];
    iceberg_s3_endpoint_without_scheme: pg(&lake("url: sqlite:///l/c.db", ", endpoint_url: minio:9000").replace("file:///l", "s3://lake")) => 2, ["endpoint_url must start with http:// or https://"];
    iceberg_commit_every_as_words: pg(&lake("url: sqlite:///l/c.db", ", commit_every: soon")) => 2, ["`soon` is not a duration (write 60s, 5m or 1h)"];
    iceberg_file_size_too_small: pg(&lake("url: sqlite:///l/c.db", ", target_file_size: 1000")) => 2, ["target_file_size must be at least 1048576 bytes"];
    iceberg_mode_unknown: pg(&lake("url: sqlite:///l/c.db", ", mode: append")) => 2, ["unknown variant `append`, expected `mirror` or `changelog`"];
    iceberg_soft_deletes: pg(&format!("{}    apply: {{ deletes: soft }}\n", lake("url: sqlite:///l/c.db", ""))) => 2, ["integration `a`: apply.deletes: soft is not available on an Iceberg target yet"];
    iceberg_changelog_dead_letters: pg(&format!("{}    apply: {{ tables: {{ s.t: {{ on_error: dead_letter }} }} }}\n", lake("url: sqlite:///l/c.db", ", mode: changelog"))) => 2, ["apply.on_error: dead_letter: a changelog keeps every change in source order"];
    iceberg_catalog_unreachable: pg(&lake(&format!("url: \"{PG}\""), "")) => 3, ["✗ target", "catalog postgres://u:***@127.0.0.1:1/db", "cannot connect to PostgreSQL at 127.0.0.1:1"];
}

/// An Iceberg target (`file:///l`) whose catalog is `catalog` (flow-mapping entries), with
/// `more` target settings.
fn lake(catalog: &str, more: &str) -> String {
    format!("    target: {{ kind: iceberg, warehouse: file:///l, catalog: {{ kind: sql, {catalog} }}{more} }}\n")
}

/// Command-line mistakes: exit code 2 and a message that says what to do.
#[test]
fn command_line_mistakes() {
    let dir = Scratch::new("bad-cli");
    let path = dir.path.join("z.yaml");
    std::fs::write(&path, pg("")).expect("write");
    let file = path.to_str().expect("utf-8 path");
    let missing = dir.path.join("nope.yaml");
    let cases: [(&[&str], &str); 6] = [
        (&["check", "-c", missing.to_str().expect("utf-8")], "cannot read config file"),
        (&["check", "-c", dir.path.to_str().expect("utf-8")], "Is a directory"),
        (&["check", "-c", file, "-i", "nope"], "no integration named `nope` (declared: a)"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&["resync", "-c", file], "the following required arguments were not provided"),
        (&["run"], "cannot read config file zetl.yaml"),
    ];
    for (args, want) in cases {
        let out = zetl(args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "zetl {args:?}: exit code\n{all}");
        assert!(all.contains(want), "zetl {args:?} should say `{want}`\n{all}");
        assert!(!all.contains(PASSWORD), "zetl {args:?} printed the password\n{all}");
    }
}
