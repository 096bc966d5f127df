//! Every supported column type, through the initial copy and through the stream.

use crate::common;

use common::TestEnv;

const ZOO_DDL: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE zoo (
    id    int PRIMARY KEY,
    b     bool,
    i2    int2,
    i4    int4,
    i8    int8,
    f4    float4,
    f8    float8,
    n122  numeric(12,2),
    n     numeric,
    n505  numeric(50,5),
    t     text,
    vc    varchar(10),
    c5    char(5),
    by    bytea,
    d     date,
    tm    time,
    ts    timestamp,
    tstz  timestamptz,
    iv    interval,
    u     uuid,
    j     json,
    jb    jsonb,
    m     mood,
    ai    int4[],
    at    text[],
    an    numeric(8,2)[]
);
"#;

/// Rows 1-6 cover NULLs, ordinary values, extremes, special floats, odd text and empty values.
const ZOO_ROWS: &str = r#"
INSERT INTO zoo (id) VALUES (1);
INSERT INTO zoo VALUES
 (2, true, 1, 2, 3, 1.5, 2.25, 12345.67, 123456789012345678901234567890.123456789,
  1234567890123456789012345678901234567890123.45678, 'hello', 'abc', 'ab', '\x000102ff',
  '2024-02-29', '12:34:56.789', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+02',
  '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"a": [1, 2.5, "x"], "b": null}', '{"z": 1, "a": {"n": true}}', 'happy',
  '{1,2,NULL}', '{"a,b","q\"t",NULL,"","NULL"}', '{1.50,NULL,-2.25}'),
 (3, false, -32768, -2147483648, -9223372036854775808, 'Infinity', '-Infinity',
  -9999999999.99, '-0.000001', '0.00001', '', '', '', '\x', '1970-01-01', '00:00:00',
  '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '-1 years -2 mons',
  '00000000-0000-0000-0000-000000000000', '[]', '{}', 'sad', '{}', '{}', '{}'),
 (4, NULL, 32767, 2147483647, 9223372036854775807, '-Infinity', 'NaN', 0, 1e30,
  '-99999999999999999999999999999999999999999999.99999', E'h\u00e9llo \u2713 \U0001D11E',
  E'a\nb\tc', 'x"''y', E'\\x5c27', '9999-12-31', '23:59:59.999999',
  '2000-02-29 12:00:00.000001', '2038-01-19 03:14:07.5+00', '00:00:00.000001',
  'f47ac10b-58cc-4372-a567-0e02b2c3d479', '"just a string"', '[1, "two", {"3": [4]}]', 'ok',
  '{-2147483648,2147483647}', E'{"a b","{x}","back\\\\slash"," lead","trail "}',
  '{0.01,-999999.99}'),
 (5, true, 0, 0, 0, 'NaN', 1.7976931348623157e308, 0.01, 0, 0, NULL, '', NULL, '\x00',
  '0001-01-01', '12:00:00', '1900-01-01 00:00:00', '1900-01-01 00:00:00+00', '-3 days',
  NULL, 'null', '{"nested": {"deep": [[], {}]}, "unicode": "\u00e9\u2713", "esc": "q\"\\"}',
  NULL, '{NULL}', '{NULL}', '{NULL}'),
 (6, false, -1, -1, -1, 3.4e38, 5e-324, -0.01, '12.3400', '1.00000', 'text with ''quotes''',
  'ten chars!', 'abcde', '\xdeadbeef', '2000-01-01', '01:02:03', '2024-06-30 23:59:59.999',
  '2024-06-30 23:59:59.999+00', '1 mon 1 day 00:00:01', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '{"b": 2, "a": 1}', '{"num": 1.50, "big": 12345678901234567890}', 'happy',
  '{7}', '{""}', '{-0.50}');
"#;

const TABLES: &[&str] = &["public.zoo"];

#[test]
fn type_zoo_snapshot_and_stream() {
    let env = TestEnv::start("types");
    env.sql(ZOO_DDL);
    env.sql(ZOO_ROWS);
    let config = env.config("types", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "types");

    // The same values again, this time through the stream, then updates and a delete.
    env.sql("INSERT INTO zoo SELECT id + 100, b, i2, i4, i8, f4, f8, n122, n, n505, t, vc, c5, by, d, tm, ts, tstz, iv, u, j, jb, m, ai, at, an FROM zoo");
    env.sql(
        "BEGIN;\n\
         UPDATE zoo SET t = coalesce(t, '') || '!', ai = ai || 9, an = an || 1.25::numeric, \
                        f8 = f8 * 2, iv = iv * 2, jb = jb || '{\"u\": 1}' \
         WHERE id IN (102, 103, 104, 106);\n\
         UPDATE zoo SET b = NULL, j = NULL, at = NULL WHERE id = 105;\n\
         DELETE FROM zoo WHERE id = 101;\n\
         COMMIT;",
    );
    // An enum label added while streaming (a new Type message for the stream).
    env.sql("ALTER TYPE mood ADD VALUE 'ecstatic'");
    env.sql("INSERT INTO zoo (id, m, t) VALUES (200, 'ecstatic', 'new label')");
    env.wait_caught_up(&mut zetl, "types");
    zetl.stop();

    env.assert_equal(TABLES);
    // Exact decimals: DECIMAL up to precision 38, text beyond (and without a precision).
    let column_type = |c: &str| {
        env.target_value(&format!(
            "SELECT data_type FROM duckdb_columns() \
             WHERE schema_name = 'public' AND table_name = 'zoo' AND column_name = '{c}'"
        ))
    };
    assert_eq!(column_type("n122"), Some("DECIMAL(12,2)".into()));
    assert_eq!(column_type("n"), Some("VARCHAR".into()));
    assert_eq!(column_type("n505"), Some("VARCHAR".into()));
    assert_eq!(column_type("an"), Some("DECIMAL(8,2)[]".into()));
    // NULL and the empty string stay distinct.
    assert_eq!(
        env.target_value("SELECT count(*)::VARCHAR FROM public.zoo WHERE t IS NULL"),
        Some(env.sql_value("SELECT count(*) FROM zoo WHERE t IS NULL"))
    );
    assert_eq!(env.target_value("SELECT count(*)::VARCHAR FROM public.zoo WHERE t = ''"), Some("1".into()));
}

/// Values at the edges of what the types allow, in a table of their own so that a failure here
/// does not hide the rest of the zoo. PostgreSQL prints intervals with mixed signs as e.g.
/// `-1 days +02:00:00` (a `+` in front of the later parts).
#[test]
fn interval_edge_values() {
    let env = TestEnv::start("intervals");
    env.sql(
        "CREATE TABLE iv (id int PRIMARY KEY, iv interval);\n\
         INSERT INTO iv VALUES (1, '-1 days +02:00:00'), (2, '1 year -1 mons'), \
           (3, '-1 years +2 mons -3 days +04:05:06'), (4, '178000000 years'), \
           (5, '-00:00:00.000001'), (6, '100 hours');",
    );
    let config = env.config("intervals", &["public.iv"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "intervals");
    env.sql("INSERT INTO iv SELECT id + 100, iv FROM iv");
    env.wait_caught_up(&mut zetl, "intervals");
    zetl.stop();
    env.assert_equal(&["public.iv"]);
}
