//! A DynamoDB table as zetl replicates it: its stream (which must carry new and old images)
//! and the target table: the key attributes as typed columns, the declared attributes as
//! typed columns, and the whole item as JSON in `item`.

use crate::attr::{self, Item};
use crate::client::Clients;
use crate::config::{AttributeType, DynamodbSourceConfig, ItemFormat};
use crate::error::{api, DynError};
use aws_sdk_dynamodb::types::{KeyType, ScalarAttributeType, StreamViewType};
use zetl_core::filter::TableFilter;
use zetl_core::{Column, ColumnType, Row, RowIdentity, TableId, TableSchema, Value};

/// The schema DynamoDB tables are replicated under (a target maps it like any other).
pub const SCHEMA: &str = "dynamodb";

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub schema: TableSchema,
    /// Key attribute names, partition key first.
    pub keys: Vec<String>,
    /// Declared attributes kept as columns, in column order after the keys.
    pub declared: Vec<(String, AttributeType)>,
    pub stream_arn: String,
    pub item_count: i64,
    pub format: ItemFormat,
}

impl TableInfo {
    pub fn id(&self) -> TableId {
        self.schema.id.clone()
    }

    /// A full item as a row: keys, declared attributes, the item as JSON.
    pub fn row(&self, item: &Item) -> Row {
        let mut row: Row = self.keys.iter().map(|k| item.get(k).map(attr::key_value).unwrap_or(Value::Null)).collect();
        row.extend(self.declared.iter().map(|(name, ty)| attr::typed_value(item.get(name), *ty)));
        row.push(Value::Json(attr::item_json(item, self.format)));
        row
    }

    /// A row that only identifies the item (for a delete).
    pub fn key_row(&self, keys: &Item) -> Row {
        let mut row: Row = self.keys.iter().map(|k| keys.get(k).map(attr::key_value).unwrap_or(Value::Null)).collect();
        row.extend(std::iter::repeat_n(Value::Null, self.declared.len() + 1));
        row
    }
}

/// The tables the filters select, by name; an include pattern naming one table that does not
/// exist is an error (a typo would otherwise replicate nothing, silently).
pub async fn list(clients: &Clients, filter: &TableFilter) -> Result<Vec<String>, DynError> {
    let mut names = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = clients
            .db
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .map_err(|e| api(format!("listing tables at {}", clients.place), e))?;
        names.extend(page.table_names().iter().cloned());
        match page.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_string()),
            None => break,
        }
    }
    for (schema, name) in filter.literal_includes() {
        if schema.is_none_or(|s| s == SCHEMA) && !names.iter().any(|n| n == name) {
            return Err(DynError::Prerequisite {
                table: name.to_string(),
                problem: format!("no such table at {} (named in tables.include)", clients.place),
            });
        }
    }
    names.retain(|n| filter.matches(&TableId::new(SCHEMA, n)));
    Ok(names)
}

/// Reads the table's key schema and stream; refuses a table whose stream lacks what zetl needs.
pub async fn describe(clients: &Clients, name: &str, config: &DynamodbSourceConfig) -> Result<TableInfo, DynError> {
    let out = clients.db.describe_table().table_name(name).send().await.map_err(|e| {
        if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
            DynError::Prerequisite { table: name.into(), problem: format!("no such table at {}", clients.place) }
        } else {
            api(format!("describing table {name}"), e)
        }
    })?;
    let Some(desc) = out.table() else {
        return Err(DynError::Prerequisite { table: name.into(), problem: "DescribeTable returned nothing".into() });
    };
    let fix = format!(
        "aws dynamodb update-table --table-name {name} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
    );
    let spec = desc.stream_specification().filter(|s| s.stream_enabled());
    let (Some(spec), Some(arn)) = (spec, desc.latest_stream_arn()) else {
        return Err(DynError::Prerequisite {
            table: name.into(),
            problem: format!(
                "has no stream; zetl follows changes through DynamoDB Streams with new and old images: {fix}"
            ),
        });
    };
    if spec.stream_view_type() != Some(&StreamViewType::NewAndOldImages) {
        let view = spec.stream_view_type().map(|v| v.as_str()).unwrap_or("unknown");
        return Err(DynError::Prerequisite {
            table: name.into(),
            problem: format!(
                "its stream has view type {view}; zetl needs NEW_AND_OLD_IMAGES. A stream's view type cannot be \
                 changed: disable the stream, then `{fix}`, then `zetl resync --all`"
            ),
        });
    }
    let mut keys: Vec<(String, bool)> =
        desc.key_schema().iter().map(|k| (k.attribute_name().to_string(), k.key_type() == &KeyType::Hash)).collect();
    keys.sort_by_key(|(_, hash)| !hash);
    let mut columns = Vec::new();
    for (key, _) in &keys {
        let ty = desc.attribute_definitions().iter().find(|d| d.attribute_name() == key).map(|d| d.attribute_type());
        let (ty, source_type) = match ty {
            Some(ScalarAttributeType::N) => (ColumnType::DecimalText, "N"),
            Some(ScalarAttributeType::B) => (ColumnType::Bytes, "B"),
            _ => (ColumnType::Text, "S"),
        };
        columns.push(Column { name: key.clone(), ty, source_type: source_type.into(), nullable: false });
    }
    let declared: Vec<(String, AttributeType)> = config
        .columns
        .get(name)
        .map(|cols| {
            cols.iter().filter(|(c, _)| !keys.iter().any(|(k, _)| k == *c)).map(|(c, t)| (c.clone(), *t)).collect()
        })
        .unwrap_or_default();
    for (attr_name, ty) in &declared {
        columns.push(Column {
            name: attr_name.clone(),
            ty: column_type(*ty),
            source_type: format!("{ty:?}"),
            nullable: true,
        });
    }
    // `item`, unless an attribute already has that name.
    let item_column = ["item", "_item", "_zetl_item"]
        .into_iter()
        .find(|c| !columns.iter().any(|col| col.name == *c))
        .unwrap_or("_zetl_item");
    columns.push(Column {
        name: item_column.into(),
        ty: ColumnType::Json,
        source_type: "item".into(),
        nullable: false,
    });
    let schema =
        TableSchema { id: TableId::new(SCHEMA, name), columns, identity: RowIdentity::Key((0..keys.len()).collect()) };
    Ok(TableInfo {
        name: name.to_string(),
        schema,
        keys: keys.into_iter().map(|(k, _)| k).collect(),
        declared,
        stream_arn: arn.to_string(),
        item_count: desc.item_count().unwrap_or(0),
        format: config.item_format,
    })
}

fn column_type(ty: AttributeType) -> ColumnType {
    match ty {
        AttributeType::Text => ColumnType::Text,
        AttributeType::Number => ColumnType::DecimalText,
        AttributeType::Integer => ColumnType::Int64,
        AttributeType::Float => ColumnType::Float64,
        AttributeType::Bool => ColumnType::Bool,
        AttributeType::Bytes => ColumnType::Bytes,
        AttributeType::Json => ColumnType::Json,
    }
}
