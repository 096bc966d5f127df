//! The S3 warehouse: iceberg's storage traits on the AWS SDK's S3 client, so that the
//! library's metadata and manifest writers, zetl's Parquet writers and the ranged reads that
//! rebuild a key index all reach `s3://bucket/prefix` the same way as local files. Built on
//! the AWS stack the DynamoDB source already uses (no second HTTP client or signer).
//!
//! Objects are written whole (one PUT) when small, and as a multipart upload in parts of
//! `PART_BYTES` otherwise: a writer holds at most one part in memory. Nothing is visible
//! under a key until its PUT or the upload's completion: a crash leaves no partial object,
//! only an unfinished upload (the bucket's lifecycle rule for incomplete multipart uploads
//! removes those).

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

/// Multipart uploads go in parts of this size (S3's least is 5 MiB, but for the last part).
const PART_BYTES: usize = 8 << 20;
/// S3 deletes at most this many keys per request.
const DELETE_BATCH: usize = 1000;

/// `bucket` and `key` of `s3://bucket/key`.
pub fn split(path: &str) -> Result<(&str, &str)> {
    path.strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, _)| !bucket.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::DataInvalid, format!("{path} is not an s3://bucket/key location")))
}

/// An SDK error as iceberg's, naming the operation and the object; retryable when no answer
/// came or the service was busy.
fn failed<E>(op: &str, path: &str, e: SdkError<E>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let (cause, transient) = zetl_aws::describe(&e);
    Error::new(ErrorKind::Unexpected, format!("S3 {op} {path}: {cause}")).with_retryable(transient)
}

fn body_failed(path: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, format!("S3 reading {path}: {e}")).with_retryable(true)
}

/// Builds the storage of an S3 warehouse around a client made beforehand (the factory is
/// called synchronously, and the AWS settings load asynchronously).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct S3Factory {
    #[serde(skip)]
    client: Option<Client>,
}

impl S3Factory {
    pub fn new(client: Client) -> Self {
        S3Factory { client: Some(client) }
    }
}

#[typetag::serde(name = "zetl-s3")]
impl StorageFactory for S3Factory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        let client = self.client.clone().ok_or_else(not_connected)?;
        Ok(Arc::new(S3Storage { client: Some(client) }))
    }
}

fn not_connected() -> Error {
    Error::new(ErrorKind::Unexpected, "the S3 warehouse has no client (storage settings restored from elsewhere)")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct S3Storage {
    #[serde(skip)]
    client: Option<Client>,
}

impl S3Storage {
    fn client(&self) -> Result<&Client> {
        self.client.as_ref().ok_or_else(not_connected)
    }

    async fn get(&self, path: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        let (bucket, key) = split(path)?;
        let mut get = self.client()?.get_object().bucket(bucket).key(key);
        if let Some(range) = range {
            if range.is_empty() {
                return Ok(Bytes::new());
            }
            get = get.range(format!("bytes={}-{}", range.start, range.end - 1));
        }
        let out = get.send().await.map_err(|e| failed("GET", path, e))?;
        Ok(out.body.collect().await.map_err(|e| body_failed(path, e))?.into_bytes())
    }

    async fn delete_keys(&self, bucket: &str, keys: Vec<String>) -> Result<()> {
        let client = self.client()?;
        for chunk in keys.chunks(DELETE_BATCH) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::new(ErrorKind::Unexpected, format!("S3 delete request: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::new(ErrorKind::Unexpected, format!("S3 delete request: {e}")))?;
            let place = format!("s3://{bucket}/ ({} keys)", chunk.len());
            let out = client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| failed("DELETE", &place, e))?;
            if let Some(first) = out.errors().first() {
                let what = format!("s3://{bucket}/{}", first.key().unwrap_or("?"));
                let why = first.message().or(first.code()).unwrap_or("refused");
                return Err(Error::new(ErrorKind::Unexpected, format!("S3 DELETE {what}: {why}")));
            }
        }
        Ok(())
    }
}

/// Every object under `prefix` of `bucket`: key, size and when it was last written.
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<(String, SystemTime)>> {
    let mut out = Vec::new();
    let mut token = None;
    let place = format!("s3://{bucket}/{prefix}");
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| failed("LIST", &place, e))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let written =
                object.last_modified().and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((key.to_string(), written));
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() || page.is_truncated() != Some(true) {
            return Ok(out);
        }
    }
}

#[async_trait]
#[typetag::serde(name = "zetl-s3")]
impl Storage for S3Storage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (bucket, key) = split(path)?;
        match self.client()?.head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(failed("HEAD", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (bucket, key) = split(path)?;
        let out =
            self.client()?.head_object().bucket(bucket).key(key).send().await.map_err(|e| failed("HEAD", path, e))?;
        Ok(FileMetadata { size: out.content_length().unwrap_or(0).max(0) as u64 })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        self.get(path, None).await
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        Ok(Box::new(S3Reader { storage: self.clone(), path: path.to_string() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (bucket, key) = split(path)?;
        let put = self.client()?.put_object().bucket(bucket).key(key).body(ByteStream::from(bs));
        put.send().await.map_err(|e| failed("PUT", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        split(path)?;
        Ok(Box::new(S3Writer {
            storage: self.clone(),
            path: path.to_string(),
            buffer: BytesMut::new(),
            upload: None,
            parts: Vec::new(),
            sent: 0,
        }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (bucket, key) = split(path)?;
        self.client()?.delete_object().bucket(bucket).key(key).send().await.map_err(|e| failed("DELETE", path, e))?;
        Ok(())
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let (bucket, key) = split(path)?;
        let prefix = if key.is_empty() || key.ends_with('/') { key.to_string() } else { format!("{key}/") };
        let keys = list(self.client()?, bucket, &prefix).await?.into_iter().map(|(k, _)| k).collect();
        self.delete_keys(bucket, keys).await
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        let mut by_bucket: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        while let Some(path) = paths.next().await {
            let (bucket, key) = split(&path)?;
            by_bucket.entry(bucket.to_string()).or_default().push(key.to_string());
        }
        for (bucket, keys) in by_bucket {
            self.delete_keys(&bucket, keys).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one object: a Parquet reader fetches the footer and the column chunks it
/// needs, not the whole file.
struct S3Reader {
    storage: S3Storage,
    path: String,
}

#[async_trait]
impl FileRead for S3Reader {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.storage.get(&self.path, Some(range)).await
    }
}

struct S3Writer {
    storage: S3Storage,
    path: String,
    buffer: BytesMut,
    /// The multipart upload, once more than one part was written.
    upload: Option<String>,
    parts: Vec<CompletedPart>,
    /// Bytes sent in parts so far.
    sent: u64,
}

impl S3Writer {
    async fn send_part(&mut self, part: Bytes) -> Result<()> {
        let (bucket, key) = split(&self.path)?;
        let client = self.storage.client()?;
        let upload = match &self.upload {
            Some(id) => id.clone(),
            None => {
                let started = client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| failed("starting an upload of", &self.path, e))?;
                let id = started.upload_id().ok_or_else(|| {
                    Error::new(ErrorKind::Unexpected, format!("S3 gave no upload id for {}", self.path))
                })?;
                self.upload = Some(id.to_string());
                id.to_string()
            }
        };
        let number = self.parts.len() as i32 + 1;
        let bytes = part.len() as u64;
        let sent = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload)
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await;
        match sent {
            Ok(out) => {
                self.parts.push(CompletedPart::builder().set_e_tag(out.e_tag).part_number(number).build());
                self.sent += bytes;
                Ok(())
            }
            Err(e) => {
                let error = failed(&format!("uploading part {number} of"), &self.path, e);
                self.abort().await;
                Err(error)
            }
        }
    }

    /// Gives up the upload, so that its parts stop costing storage (best effort: the bucket's
    /// lifecycle rule removes what a lost connection leaves).
    async fn abort(&mut self) {
        let (Some(upload), Ok((bucket, key)), Ok(client)) =
            (self.upload.take(), split(&self.path), self.storage.client())
        else {
            return;
        };
        let aborted = client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload).send().await;
        if let Err(e) = aborted {
            tracing::warn!(path = %self.path, error = %zetl_aws::describe(&e).0, "could not abort an S3 upload");
        }
    }
}

#[async_trait]
impl FileWrite for S3Writer {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        self.buffer.extend_from_slice(&bs);
        while self.buffer.len() >= PART_BYTES {
            let part = self.buffer.split_to(PART_BYTES).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.buffer).freeze();
        if self.upload.is_none() {
            return self.storage.write(&self.path, rest).await;
        }
        if !rest.is_empty() {
            // A failed part aborts the upload and leaves `upload` empty.
            self.send_part(rest).await?;
        }
        let (bucket, key) = split(&self.path)?;
        let Some(upload) = self.upload.clone() else { return Ok(()) };
        let count = self.parts.len();
        let parts = CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build();
        let done = self
            .storage
            .client()?
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(parts)
            .send()
            .await;
        if let Err(e) = done {
            // No readable answer (lost, or a server that words it differently from S3): the
            // object itself says whether the upload completed.
            let refused = e.as_service_error().is_some_and(|s| s.code().is_some());
            if !refused && self.completed(count).await {
                self.upload = None;
                return Ok(());
            }
            let error = failed("completing the upload of", &self.path, e);
            self.abort().await;
            return Err(error);
        }
        self.upload = None;
        Ok(())
    }
}

impl S3Writer {
    /// Whether the object under the key is this upload's: a multipart object of `parts`
    /// parts and of the bytes sent.
    async fn completed(&self, parts: usize) -> bool {
        let (Ok((bucket, key)), Ok(client)) = (split(&self.path), self.storage.client()) else { return false };
        match client.head_object().bucket(bucket).key(key).send().await {
            Ok(head) => {
                let multipart = head.e_tag().is_some_and(|t| t.trim_matches('"').ends_with(&format!("-{parts}")));
                multipart && head.content_length() == Some(self.sent as i64)
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_bucket_and_key() {
        assert_eq!(split("s3://lake/a/b.parquet").ok(), Some(("lake", "a/b.parquet")));
        assert_eq!(split("s3://lake/").ok(), Some(("lake", "")));
        assert!(split("s3://lake").is_err());
        assert!(split("s3:///key").is_err());
        assert!(split("file:///tmp/x").is_err());
    }
}
