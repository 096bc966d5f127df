//! What zetl's AWS clients (the DynamoDB source, the Iceberg target's S3 warehouse) share: one
//! HTTP client of our choosing (rustls with ring: the SDK's default would bring aws-lc, a long
//! C build), the standard AWS credential chain (environment, profile, web identity, ECS,
//! instance metadata; never the YAML file), another endpoint for an AWS-compatible server,
//! and how an SDK error reads and whether a retry may cure it.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::Duration;

/// Where an AWS client goes, as the YAML says it (each `None`: the AWS chain decides).
#[derive(Debug, Clone, Copy, Default)]
pub struct Endpoint<'a> {
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    /// Another endpoint than AWS's (a local AWS-compatible server).
    pub endpoint_url: Option<&'a str>,
}

/// The SDK's settings for one client, and where its requests go, for messages.
pub struct Loaded {
    pub sdk: SdkConfig,
    /// The endpoint or the region.
    pub place: String,
}

#[derive(Debug, thiserror::Error)]
#[error("no AWS region for {what}: set {setting}.region, or AWS_REGION, or a profile's region")]
pub struct NoRegion {
    pub what: String,
    pub setting: String,
}

/// The SDK's settings for `what` (`the DynamoDB source`), whose YAML section is `setting`.
pub async fn load(endpoint: Endpoint<'_>, what: &str, setting: &str) -> Result<Loaded, NoRegion> {
    // Serves http:// (a local server) as well as https://.
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    // Throttled calls back off and retry longer than the SDK's default three attempts.
    let retry = RetryConfig::standard().with_max_attempts(5).with_max_backoff(Duration::from_secs(5));
    // A connection that stops answering (a server gone without a reset, a blackholing
    // firewall) fails the attempt, which is retried, instead of holding the run forever. The
    // read timeout counts from the request's start to the answer's first byte, an 8 MiB upload
    // part included: it allows for a slow link.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build();
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(http).retry_config(retry).timeout_config(timeouts);
    if let Some(region) = endpoint.region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(profile) = endpoint.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = endpoint.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let Some(region) = sdk.region() else {
        return Err(NoRegion { what: what.to_string(), setting: setting.to_string() });
    };
    let place = match endpoint.endpoint_url {
        Some(url) => format!("{url} ({region})"),
        None => format!("region {region}"),
    };
    Ok(Loaded { sdk, place })
}

/// Error codes a busy or briefly failing service answers: worth a retry from the checkpoint
/// once the SDK's own retries are spent.
const BUSY: [&str; 9] = [
    "ThrottlingException",
    "Throttling",
    "SlowDown",
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
];

/// An SDK error as a message with its whole context, and whether a retry may cure it: no
/// response (unreachable, timed out) or a busy service.
pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> (String, bool)
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match e.as_service_error() {
        // The service's own words, without the raw answer the SDK's context would add.
        Some(service) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
            let said = match (service.code(), service.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}{status}"),
                (Some(code), None) => format!("{code}{status}"),
                _ => format!("{}{status}", DisplayErrorContext(service)),
            };
            (said, service.code().is_some_and(|code| BUSY.contains(&code)))
        }
        None => (DisplayErrorContext(e).to_string(), true),
    }
}
