//! The two service clients, built on one HTTP client of our choosing (rustls with ring: the
//! SDK's default would bring aws-lc, a long C build) and the standard AWS credential chain.

use crate::config::DynamodbSourceConfig;
use crate::error::DynError;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use std::time::Duration;

#[derive(Clone)]
pub struct Clients {
    pub db: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// Where requests go, for messages: the endpoint or the region.
    pub place: String,
}

pub async fn connect(config: &DynamodbSourceConfig) -> Result<Clients, DynError> {
    // Serves http:// (a local server) as well as https://.
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    // Throttled calls back off and retry longer than the SDK's default three attempts.
    let retry = RetryConfig::standard().with_max_attempts(5).with_max_backoff(Duration::from_secs(5));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http).retry_config(retry);
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let Some(region) = sdk.region() else {
        return Err(DynError::Config(
            "no AWS region for the DynamoDB source: set source.region, or AWS_REGION, or a profile's region".into(),
        ));
    };
    let place = match &config.endpoint_url {
        Some(url) => format!("{url} ({region})"),
        None => format!("region {region}"),
    };
    Ok(Clients { db: aws_sdk_dynamodb::Client::new(&sdk), streams: aws_sdk_dynamodbstreams::Client::new(&sdk), place })
}
