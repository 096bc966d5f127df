//! Where an integration's tables live: a local directory (`file:///…`) or an S3 bucket and
//! prefix (`s3://…`, on AWS or an S3-compatible server at `endpoint_url`). Everything that
//! reads or writes table files goes through the `FileIO` made here; listing (for orphan
//! removal) and `zetl check`'s reachability test are the two things iceberg's storage does not
//! do, and live here too.

use crate::config::IcebergTargetConfig;
use crate::error::IcebergError;
#[cfg(feature = "s3")]
use crate::s3;
use iceberg::io::FileIO;
use std::time::SystemTime;

pub enum Warehouse {
    Local,
    #[cfg(feature = "s3")]
    S3(aws_sdk_s3::Client),
}

impl Warehouse {
    /// The warehouse of `config` and the file access to it.
    pub async fn open(config: &IcebergTargetConfig) -> Result<(Warehouse, FileIO), IcebergError> {
        if !config.is_s3() {
            return Ok((Warehouse::Local, FileIO::new_with_fs()));
        }
        #[cfg(not(feature = "s3"))]
        return Err(IcebergError::Unsupported(format!(
            "the warehouse {} is on S3, and this zetl was built without S3 support",
            config.warehouse_location()
        )));
        #[cfg(feature = "s3")]
        Self::open_s3(config).await
    }

    #[cfg(feature = "s3")]
    async fn open_s3(config: &IcebergTargetConfig) -> Result<(Warehouse, FileIO), IcebergError> {
        use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
        let endpoint = zetl_aws::Endpoint {
            region: config.region.as_deref(),
            profile: config.profile.as_deref(),
            endpoint_url: config.endpoint_url.as_deref(),
        };
        let loaded = zetl_aws::load(endpoint, "the Iceberg warehouse", "target")
            .await
            .map_err(|e| IcebergError::State(e.to_string()))?;
        let mut s3 = aws_sdk_s3::config::Builder::from(&loaded.sdk);
        if config.endpoint_url.is_some() {
            // S3-compatible servers: buckets in the path (no wildcard DNS on localhost), and
            // checksums only where S3 requires them (not every such server takes the newer
            // default checksum headers).
            s3 = s3
                .force_path_style(true)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        let client = aws_sdk_s3::Client::from_conf(s3.build());
        let factory = std::sync::Arc::new(s3::S3Factory::new(client.clone()));
        let file_io = iceberg::io::FileIOBuilder::new(factory).build();
        Ok((Warehouse::S3(client), file_io))
    }

    /// The files under the directory `dir` (a location, as in table metadata) and when each
    /// was last written; nothing when it does not exist.
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, SystemTime)>, IcebergError> {
        let dir = dir.trim_end_matches('/');
        match self {
            Warehouse::Local => {
                let local = dir.strip_prefix("file://").unwrap_or(dir);
                let Ok(entries) = std::fs::read_dir(local) else { return Ok(Vec::new()) };
                Ok(entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| {
                        let written = e.metadata().and_then(|m| m.modified()).ok()?;
                        Some((format!("{dir}/{}", e.file_name().to_string_lossy()), written))
                    })
                    .collect())
            }
            #[cfg(feature = "s3")]
            Warehouse::S3(client) => {
                let (bucket, key) = s3::split(dir).map_err(|e| storage(dir, "listing", e))?;
                let listed =
                    s3::list(client, bucket, &format!("{key}/")).await.map_err(|e| storage(dir, "listing", e))?;
                Ok(listed.into_iter().map(|(key, written)| (format!("s3://{bucket}/{key}"), written)).collect())
            }
        }
    }

    /// `zetl check`: the warehouse can be reached (a local directory's parent exists; an S3
    /// bucket answers with these credentials). Creates nothing.
    pub async fn check(&self, config: &IcebergTargetConfig) -> Result<(), IcebergError> {
        let location = config.warehouse_location();
        match self {
            Warehouse::Local => {
                let local = std::path::PathBuf::from(location.strip_prefix("file://").unwrap_or(&location));
                match local.parent() {
                    Some(parent) if !local.is_dir() && !parent.is_dir() => {
                        Err(IcebergError::State(format!("the warehouse {location}: neither it nor its parent exists")))
                    }
                    _ => Ok(()),
                }
            }
            #[cfg(feature = "s3")]
            Warehouse::S3(client) => {
                let bucket = config.bucket().unwrap_or_default();
                client.head_bucket().bucket(bucket).send().await.map(drop).map_err(|e| {
                    let (cause, _) = zetl_aws::describe(&e);
                    // HEAD answers have no body, hence no error code: the status tells.
                    let hint = match e.raw_response().map(|r| r.status().as_u16()) {
                        Some(404) => ": the bucket does not exist",
                        Some(403) => ": access denied (credentials or bucket policy)",
                        _ => "",
                    };
                    IcebergError::State(format!("the warehouse {location}{hint}: {cause}"))
                })
            }
        }
    }
}

#[cfg(feature = "s3")]
fn storage(location: &str, what: &str, cause: iceberg::Error) -> IcebergError {
    IcebergError::Warehouse { location: location.to_string(), context: what.to_string(), cause: Box::new(cause) }
}
