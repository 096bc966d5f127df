//! The two service clients, on the AWS settings every zetl client shares (`zetl_aws`).

use crate::config::DynamodbSourceConfig;
use crate::error::DynError;
use aws_sdk_dynamodbstreams::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_dynamodbstreams::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use std::sync::Arc;
use zetl_core::progress::Progress;

#[derive(Clone)]
pub struct Clients {
    pub db: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// Where requests go, for messages: the endpoint or the region.
    pub place: String,
}

pub async fn connect(config: &DynamodbSourceConfig) -> Result<Clients, DynError> {
    let endpoint = zetl_aws::Endpoint {
        region: config.region.as_deref(),
        profile: config.profile.as_deref(),
        endpoint_url: config.endpoint_url.as_deref(),
    };
    let loaded =
        zetl_aws::load(endpoint, "the DynamoDB source", "source").await.map_err(|e| DynError::Config(e.to_string()))?;
    let sdk = &loaded.sdk;
    Ok(Clients {
        db: aws_sdk_dynamodb::Client::new(sdk),
        streams: aws_sdk_dynamodbstreams::Client::new(sdk),
        place: loaded.place,
    })
}

impl Clients {
    /// The same clients, reporting the service's clock (each Streams answer's `Date`) to
    /// `progress`: lag is then measured on the clock that stamps the stream records
    /// (`ApproximateCreationDateTime`), not on this machine's.
    pub fn sampling_clock(mut self, progress: Arc<Progress>) -> Clients {
        let config = self.streams.config().to_builder().interceptor(ClockSampler { progress }).build();
        self.streams = aws_sdk_dynamodbstreams::Client::from_conf(config);
        self
    }
}

#[derive(Debug)]
struct ClockSampler {
    progress: Arc<Progress>,
}

impl Intercept for ClockSampler {
    fn name(&self) -> &'static str {
        "zetl-source-clock"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let received = zetl_core::pipeline::now_us();
        // Whole seconds: a sample is at most a second low, and the clock keeps the highest of
        // a minute's samples, so the estimate closes in on the service's clock from below.
        let sent =
            context.response().headers().get("date").and_then(|d| DateTime::from_str(d, DateTimeFormat::HttpDate).ok());
        if let Some(sent) = sent {
            self.progress.source_clock.observe(sent.secs() * 1_000_000, received);
        }
        Ok(())
    }
}
