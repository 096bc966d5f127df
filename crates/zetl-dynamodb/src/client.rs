//! The two service clients, on the AWS settings every zetl client shares (`zetl_aws`).

use crate::config::DynamodbSourceConfig;
use crate::error::DynError;

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
