//! Where one Scan segment of a seed stands, stored at the target with the rows it covers: a
//! seed cut short continues each segment after its last committed page (DynamoDB's own
//! `ExclusiveStartKey`) instead of scanning the table again.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use zetl_core::CopyCursor;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentCursor {
    pub segment: u32,
    /// A segment's items depend on the total: a cursor of another split cannot continue.
    pub segments: u32,
    /// The last evaluated key of the last page committed; `None` before the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<BTreeMap<String, KeyAttr>>,
    /// Every page of the segment is committed.
    #[serde(default)]
    pub done: bool,
}

/// A key attribute (DynamoDB keys are strings, numbers or binary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyAttr {
    S(String),
    N(String),
    /// Hex.
    B(String),
}

impl SegmentCursor {
    pub fn start(segment: u32, segments: u32) -> Self {
        Self { segment, segments, after: None, done: false }
    }

    /// After a page: its last evaluated key, or the end of the segment. `None` when the key
    /// holds an attribute type no key can have.
    pub fn after_page(&self, last: Option<&HashMap<String, AttributeValue>>) -> Option<Self> {
        let after = match last {
            None => return Some(Self { after: None, done: true, ..self.clone() }),
            Some(key) => key.iter().map(|(k, v)| Some((k.clone(), KeyAttr::from_sdk(v)?))).collect::<Option<_>>()?,
        };
        Some(Self { after: Some(after), done: false, ..self.clone() })
    }

    /// The `ExclusiveStartKey` that continues the segment.
    pub fn start_key(&self) -> Option<HashMap<String, AttributeValue>> {
        let after = self.after.as_ref()?;
        after.iter().map(|(k, v)| Some((k.clone(), v.to_sdk()?))).collect()
    }

    pub fn to_cursor(&self) -> Option<CopyCursor> {
        Some(CopyCursor { part: self.segment, token: serde_json::to_string(self).ok()? })
    }

    pub fn parse(token: &str) -> Option<Self> {
        serde_json::from_str(token).ok()
    }
}

impl KeyAttr {
    fn from_sdk(v: &AttributeValue) -> Option<Self> {
        match v {
            AttributeValue::S(s) => Some(Self::S(s.clone())),
            AttributeValue::N(n) => Some(Self::N(n.clone())),
            AttributeValue::B(b) => Some(Self::B(zetl_core::hex::encode(b.as_ref()))),
            _ => None,
        }
    }

    fn to_sdk(&self) -> Option<AttributeValue> {
        Some(match self {
            Self::S(s) => AttributeValue::S(s.clone()),
            Self::N(n) => AttributeValue::N(n.clone()),
            Self::B(hex) => AttributeValue::B(Blob::new(zetl_core::hex::decode(hex)?)),
        })
    }
}

/// The segments of a table's interrupted seed, when they continue it: one cursor per segment
/// of the split configured now. Otherwise the table is scanned again whole.
pub fn continuable(parts: &[String], segments: u32) -> Option<Vec<SegmentCursor>> {
    let mut cursors: Vec<SegmentCursor> = parts.iter().map(|p| SegmentCursor::parse(p)).collect::<Option<_>>()?;
    cursors.sort_by_key(|c| c.segment);
    let whole = cursors.len() == segments as usize
        && cursors.iter().enumerate().all(|(i, c)| c.segment == i as u32 && c.segments == segments)
        && cursors.iter().all(|c| c.after.is_none() || c.start_key().is_some());
    whole.then_some(cursors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S("a\n\"b\"".into())),
            ("sk".to_string(), AttributeValue::N("12.5".into())),
            ("bin".to_string(), AttributeValue::B(Blob::new(vec![0u8, 255, 16]))),
        ])
    }

    #[test]
    fn a_page_cursor_gives_back_the_key_it_was_made_from() {
        let c = SegmentCursor::start(2, 4).after_page(Some(&key())).expect("a key");
        let token = c.to_cursor().expect("token");
        assert_eq!(token.part, 2);
        assert!(!token.token.contains('\n'), "tokens are stored newline-separated: {}", token.token);
        let back = SegmentCursor::parse(&token.token).expect("parse");
        assert_eq!(back.start_key(), Some(key()));
        assert!(!back.done);
        let end = back.after_page(None).expect("end");
        assert!(end.done && end.start_key().is_none());
    }

    #[test]
    fn only_a_full_set_of_the_same_split_continues() {
        let tokens = |segments: u32, n: u32| -> Vec<String> {
            (0..n).filter_map(|s| SegmentCursor::start(s, segments).to_cursor()).map(|c| c.token).rev().collect()
        };
        assert_eq!(continuable(&tokens(3, 3), 3).map(|c| c.len()), Some(3));
        assert!(continuable(&tokens(3, 3), 4).is_none(), "another split");
        assert!(continuable(&tokens(3, 2), 3).is_none(), "a segment missing");
        assert!(continuable(&["{not json".to_string()], 1).is_none());
        let after = Some(BTreeMap::from([("k".into(), KeyAttr::B("zz".into()))]));
        let bad = SegmentCursor { after, ..SegmentCursor::start(0, 1) };
        assert_eq!(bad.start_key(), None, "a key that does not decode");
        let token = bad.to_cursor().map(|c| c.token).unwrap_or_default();
        assert!(continuable(&[token], 1).is_none(), "a segment that cannot continue is scanned again");
    }
}
