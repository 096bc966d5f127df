//! The Iceberg target on object storage: a warehouse in an S3 bucket of a local S3-compatible
//! server (moto's server mode), read back through pyiceberg and DuckDB's iceberg extension
//! (over S3) and compared whole with the source.

use crate::common;
use crate::iceberg::{CHANGES, DDL, TABLES};
use common::config::map;
use common::dynamo::{MotoServer, CREDENTIALS};
use common::{TestEnv, Zetl};
use std::path::Path;
use zetl_testkit::compare::assert_tables_equal;
use zetl_testkit::compare_iceberg::{read_lake_with, Reader};

const BUCKET: &str = "lake";

/// A table whose rows are large and barely compressible, kept out of line by PostgreSQL
/// (TOAST): its copy makes a data file above one multipart part, and updates that leave
/// `body` unsent make zetl read it back from the bucket by ranges.
const DOCS: &str = "
CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO docs SELECT g, 'doc ' || g, (SELECT string_agg(md5(i::text || '-' || g), '') FROM generate_series(1, 80) i)
    FROM generate_series(1, 12000) g;
";

struct S3Lake {
    moto: MotoServer,
}

impl S3Lake {
    fn start() -> S3Lake {
        S3Lake { moto: MotoServer::start().unwrap_or_else(|e| panic!("start moto: {e}")) }
    }

    fn endpoint(&self) -> String {
        self.moto.endpoint_url()
    }

    /// Runs `program` with a boto3 S3 client `s3` on the server.
    fn s3(&self, program: &str) -> String {
        common::python(&format!(
            "import boto3\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n{program}",
            self.endpoint()
        ))
    }

    fn target(&self, env: &TestEnv) -> serde_yaml::Mapping {
        let catalog = env.scratch.path.join("catalog.db");
        let catalog = map([("kind", "sql".into()), ("url", format!("sqlite://{}", catalog.display()).into())]);
        map([
            ("kind", "iceberg".into()),
            ("warehouse", format!("s3://{BUCKET}/warehouse").into()),
            ("endpoint_url", self.endpoint().into()),
            ("region", "us-east-1".into()),
            ("catalog", catalog.into()),
            ("commit_every", "1s".into()),
        ])
    }

    fn run(&self, env: &TestEnv, config: &Path) -> Zetl {
        Zetl::spawn_with(config, &env.log_path(), &CREDENTIALS)
    }

    fn zetl(&self, args: &[&str]) -> std::process::Output {
        common::zetl_command_with(args, common::TIMEOUT, &CREDENTIALS).unwrap_or_else(|o| o)
    }

    /// Reads `tables` through each reader over S3 and compares each reading with the source.
    fn assert_equal(&self, env: &TestEnv, tables: &[&str]) {
        let endpoint = self.endpoint();
        let reader_env = [("ZETL_S3_ENDPOINT", endpoint.as_str()), CREDENTIALS[0], CREDENTIALS[1]];
        let catalog = env.scratch.path.join("catalog.db");
        for reader in [Reader::PyIceberg, Reader::DuckDb] {
            let (duck, _) = read_lake_with(reader, &catalog, "zetl", &env.scratch.path, tables, &reader_env);
            assert_tables_equal(&env.url(), &duck, tables);
        }
    }

    /// Every object under the warehouse: key and ETag.
    fn objects(&self) -> Vec<(String, String)> {
        let listed = self.s3(&format!(
            "for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}', Prefix='warehouse/'):\n\
             \x20   for o in page.get('Contents', []):\n\
             \x20       print(o['Key'], o['ETag'].strip('\"'))\n"
        ));
        listed.lines().filter_map(|l| l.split_once(' ')).map(|(k, e)| (k.to_string(), e.to_string())).collect()
    }
}

/// PostgreSQL → Iceberg in an S3 bucket: `zetl check` names a missing bucket; then the copy
/// (a data file large enough for a multipart upload), every kind of change, TOASTed values
/// read back from the bucket, a kill -9 and a restart that rebuilds the key index from the
/// bucket's files, and `zetl lake maintain` (rewrite, expiry and orphan removal by listing the
/// bucket): pyiceberg and DuckDB read exactly the source over S3 throughout.
#[test]
fn postgres_into_iceberg_on_s3_equals_the_source() {
    let env = TestEnv::start("iceberg_s3");
    let lake = S3Lake::start();
    env.sql(DDL);
    env.sql(DOCS);
    // The whole copy in one commit: the docs table in one data file of about 16 MB.
    let batch = map([("max_bytes", (256u64 << 20).into())]);
    let config =
        env.config("s3lake", &["public.*"]).target(lake.target(&env)).set("batch", batch).metrics_off().write();
    let cfg = config.to_str().expect("utf-8 path");

    let out = lake.zetl(&["check", "-c", cfg]);
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(shown.contains("s3://lake/warehouse: the bucket does not exist"), "{shown}");
    lake.s3(&format!("s3.create_bucket(Bucket='{BUCKET}')"));
    let out = lake.zetl(&["check", "-c", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    let mut zetl = lake.run(&env, &config);
    env.wait_caught_up(&mut zetl, "s3lake");
    let multipart = lake.objects().into_iter().filter(|(k, e)| k.contains("/docs/data/") && e.contains('-')).count();
    assert!(multipart >= 1, "the docs copy went up as a multipart upload: {:?}", lake.objects());

    env.sql(CHANGES);
    env.sql(
        "UPDATE docs SET title = 'renamed' WHERE id % 100 = 0;\n\
         UPDATE docs SET id = -id WHERE id % 100 = 1;\n\
         DELETE FROM docs WHERE id % 100 = 2;",
    );
    env.wait_caught_up(&mut zetl, "s3lake");
    zetl.kill9();
    env.sql("UPDATE docs SET title = 'after the kill' WHERE id % 100 = 3; UPDATE kinds SET t = 'k' WHERE id < 100;");
    let mut zetl = lake.run(&env, &config);
    env.wait_caught_up(&mut zetl, "s3lake");
    zetl.stop();
    let mut tables = TABLES.to_vec();
    tables.push("public.docs");
    lake.assert_equal(&env, &tables);

    let orphan = "warehouse/public/kinds/data/never-committed.parquet";
    lake.s3(&format!("s3.put_object(Bucket='{BUCKET}', Key='{orphan}', Body=b'no snapshot refers to this')"));
    let out = lake.zetl(&["lake", "maintain", "-c", cfg, "--older-than", "0s"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{shown}{}", String::from_utf8_lossy(&out.stderr));
    assert!(shown.contains("public.kinds: data files"), "{shown}");
    let objects = lake.objects();
    assert!(!objects.iter().any(|(k, _)| *k == orphan), "the orphan is removed: {objects:?}");
    let kinds_data = objects.iter().filter(|(k, _)| k.starts_with("warehouse/public/kinds/data/")).count();
    assert_eq!(kinds_data, 1, "only the rewritten file stays: {objects:?}");
    lake.assert_equal(&env, &tables);

    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(!log.contains(" ERROR "), "{log}");
}
