//! Test configs built as data and written by the YAML serialiser: URLs and paths are quoted by
//! it, never spliced into YAML text.

use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// One integration in a config file of its own (`<dir>/<name>.yaml`).
pub struct TestConfig {
    dir: PathBuf,
    integration: Mapping,
}

impl TestConfig {
    /// An integration reading `source`, writing the DuckDB file `duckdb`, with 100 ms batches.
    pub fn new(dir: &Path, name: &str, source: Mapping, duckdb: &Path) -> TestConfig {
        let mut integration = Mapping::new();
        integration.insert("name".into(), name.into());
        integration.insert("source".into(), source.into());
        integration.insert("target".into(), map([("kind", "duckdb".into()), ("path", path(duckdb))]).into());
        integration.insert("batch".into(), map([("max_wait_ms", 100.into())]).into());
        // A port of its own: on the default one, `zetl resync` would reach whichever test's
        // zetl took it first.
        let listen = format!("127.0.0.1:{}", zetl_testkit::free_port());
        integration.insert("metrics".into(), map([("listen", listen.into())]).into());
        TestConfig { dir: dir.to_path_buf(), integration }
    }

    /// `tables.include`.
    pub fn include(self, patterns: &[&str]) -> TestConfig {
        self.tables("include", patterns)
    }

    /// `tables.exclude`.
    pub fn exclude(self, patterns: &[&str]) -> TestConfig {
        self.tables("exclude", patterns)
    }

    /// `tables.snapshot`: pattern → `initial | never | resync`, in this order.
    pub fn snapshot_modes(mut self, modes: &[(&str, &str)]) -> TestConfig {
        let modes: Mapping = modes.iter().map(|(p, m)| (Value::from(*p), Value::from(*m))).collect();
        self.section("tables").insert("snapshot".into(), modes.into());
        self
    }

    fn tables(mut self, key: &str, patterns: &[&str]) -> TestConfig {
        let list: Vec<Value> = patterns.iter().map(|p| (*p).into()).collect();
        self.section("tables").insert(key.into(), list.into());
        self
    }

    /// A `source` setting.
    pub fn source(mut self, key: &str, value: impl Into<Value>) -> TestConfig {
        self.section("source").insert(key.into(), value.into());
        self
    }

    /// Replaces the target.
    pub fn target(mut self, target: Mapping) -> TestConfig {
        self.integration.insert("target".into(), target.into());
        self
    }

    /// An integration-level key (`apply`, `metrics`, …).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> TestConfig {
        self.integration.insert(key.into(), value.into());
        self
    }

    /// `metrics.listen: off`.
    pub fn metrics_off(self) -> TestConfig {
        self.set("metrics", map([("listen", "off".into())]))
    }

    fn section(&mut self, key: &str) -> &mut Mapping {
        let entry = self.integration.entry(key.into()).or_insert_with(|| Mapping::new().into());
        entry.as_mapping_mut().expect("a mapping")
    }

    pub fn name(&self) -> &str {
        self.integration.get("name").and_then(Value::as_str).expect("a name")
    }

    /// Writes `<name>.yaml` and returns its path.
    pub fn write(&self) -> PathBuf {
        self.write_to(&format!("{}.yaml", self.name()))
    }

    /// Writes the config into `file` of the test's directory and returns its path.
    pub fn write_to(&self, file: &str) -> PathBuf {
        let doc = map([("integrations", vec![Value::from(self.integration.clone())].into())]);
        let path = self.dir.join(file);
        std::fs::write(&path, serde_yaml::to_string(&doc).expect("serialise the config")).expect("write the config");
        path
    }
}

/// A mapping from `(key, value)` pairs.
pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Mapping {
    pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
}

/// A setting's value written as YAML in the test, e.g. `{ parallelism: 4, chunk_rows: 5000 }`.
pub fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("test YAML `{text}`: {e}"))
}

pub fn path(p: &Path) -> Value {
    p.to_str().expect("a UTF-8 path").into()
}
