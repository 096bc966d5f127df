//! `zetl check` for a DynamoDB source: the endpoint answers, each selected table has a stream
//! with new and old images, and the stored position is still in the streams.

use crate::position::StreamPos;
use crate::shards;
use crate::source::DynSource;
use crate::stream::list_shards;
use crate::table;
use std::collections::HashSet;
use zetl_core::check::{Outcome, Verdict};
use zetl_core::source::SourcePosition;

pub(crate) async fn check(source: &DynSource, stored: Option<&str>) -> Vec<Verdict> {
    let mut out = Vec::new();
    let clients = match crate::client::connect(source.config()).await {
        Ok(c) => c,
        Err(e) => return vec![Verdict::fail("source".into(), e.to_string())],
    };
    let names = match table::list(&clients, source.filter()).await {
        Ok(names) => {
            out.push(Verdict::pass(
                "source".into(),
                format!("DynamoDB at {}, {} tables selected", clients.place, names.len()),
            ));
            names
        }
        Err(e) => {
            out.push(Verdict::fail("source".into(), e.to_string()));
            return out;
        }
    };
    let stored = stored.and_then(|s| StreamPos::parse(s).ok());
    for name in names {
        let what = format!("table {name}");
        let info = match table::describe(&clients, &name, source.config()).await {
            Ok(info) => info,
            Err(e) => {
                out.push(Verdict::fail(what, e.to_string()));
                continue;
            }
        };
        out.push(Verdict::pass(what.clone(), "stream with NEW_AND_OLD_IMAGES".into()));
        let Some(pos) = stored.as_ref().and_then(|p| p.tables.get(&name)) else { continue };
        let verdict = if pos.stream != info.stream_arn {
            (Outcome::Fail, "the stream changed since zetl last applied it; run `zetl resync --all`".to_string())
        } else {
            match list_shards(&clients, &info.stream_arn).await {
                Err(e) => (Outcome::Fail, e.to_string()),
                Ok(listed) => {
                    // The same judgement as `zetl run` makes before it reads.
                    let gap = shards::check_retention(pos, zetl_core::pipeline::now_us())
                        .and_then(|()| shards::ready(&listed, pos, &HashSet::new()).map(drop));
                    match gap {
                        Ok(()) => (
                            Outcome::Pass,
                            format!("{} shards, the stored position is still in the stream", listed.len()),
                        ),
                        Err(gap) => (Outcome::Fail, format!("{gap}; run `zetl resync --all`")),
                    }
                }
            }
        };
        out.push(Verdict::new(verdict.0, format!("{what} stored position"), verdict.1));
    }
    out
}
