//! Shard lineage: which shards of a stream may be read now, and from where. An item's changes
//! are ordered only along its shard's lineage, so a child shard is read only after its parent
//! is finished; shards of different lineages are read at the same time.

use crate::position::{ShardPos, TablePos};
use std::collections::{BTreeMap, HashSet};

/// A shard as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: String,
    pub parent: Option<String>,
    /// Still written to (no ending sequence number).
    pub open: bool,
}

/// How long DynamoDB Streams keeps a record.
const RETENTION_US: i64 = 24 * 3600 * 1_000_000;
/// Time kept in hand before the retention runs out: a copy that began longer ago than the
/// retention less this margin may have lost records to the stream's trimming.
const MARGIN_US: i64 = 3600 * 1_000_000;

/// The shards open when a table's copy began, for its position: a shard this run has been
/// following (`followed`) is read after the last record `applied` holds for it, any other from
/// its oldest record ([`ShardPos::Open`]). A record applied before the copy began is older than
/// the Scan, which sees its effect: reading it again would only cost time, and an open shard
/// holds hours of records. A position only stored by an earlier run is not used: it may be
/// trimmed by now.
pub fn open_at_copy(
    listed: &[Listed],
    applied: Option<&TablePos>,
    followed: &HashSet<String>,
) -> BTreeMap<String, ShardPos> {
    let from = |id: &String| match applied.and_then(|p| p.shards.get(id)) {
        Some(after @ ShardPos::After(_)) if followed.contains(id) => after.clone(),
        _ => ShardPos::Open,
    };
    listed.iter().filter(|s| s.open).map(|s| (s.id.clone(), from(&s.id))).collect()
}

/// Whether shards open when the table's copy began may have lost records to the stream's
/// 24-hour retention before zetl read them (a copy and catch-up that took about a day).
pub fn check_retention(pos: &TablePos, now_us: i64) -> Result<(), String> {
    let unread = pos.shards.values().any(|s| *s == ShardPos::Open);
    match pos.copy_began_us {
        Some(began) if unread && now_us - began >= RETENTION_US - MARGIN_US => Err(format!(
            "the copy began {:.1} hours ago and its changes since are still unread; the stream keeps records 24 hours, so some may be gone",
            (now_us - began) as f64 / 3.6e9
        )),
        _ => Ok(()),
    }
}

/// Where a shard's reading starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Its oldest record still in the stream.
    TrimHorizon,
    /// After the last applied record.
    After(String),
}

/// The shards to start reading now (not finished, not being read, parent finished), or the
/// shard whose unread records the stream no longer holds.
pub fn ready(listed: &[Listed], pos: &TablePos, reading: &HashSet<String>) -> Result<Vec<(String, Start)>, String> {
    let is_listed = |id: &str| listed.iter().any(|s| s.id == id);
    for (id, at) in &pos.shards {
        match (at, is_listed(id)) {
            (ShardPos::After(seq), false) => {
                return Err(format!("shard {id} (applied up to sequence number {seq}) is no longer in the stream"));
            }
            (ShardPos::Open, false) => {
                return Err(format!(
                    "shard {id} (open when the table's copy began, not read yet) is no longer in the stream"
                ));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for shard in listed {
        if reading.contains(&shard.id) {
            continue;
        }
        match pos.shards.get(&shard.id) {
            Some(ShardPos::Done) => continue,
            Some(ShardPos::After(seq)) => out.push((shard.id.clone(), Start::After(seq.clone()))),
            None | Some(ShardPos::Open) => {
                let parent_finished = match &shard.parent {
                    None => true,
                    Some(p) => match pos.shards.get(p) {
                        Some(ShardPos::Done) => true,
                        Some(ShardPos::After(_) | ShardPos::Open) => false,
                        // A parent trimmed from the stream before zetl saw it.
                        None => !is_listed(p),
                    },
                };
                if parent_finished {
                    out.push((shard.id.clone(), Start::TrimHorizon));
                }
            }
        }
    }
    Ok(out)
}

/// Forgets finished shards the stream no longer lists, so the position stays small as shards
/// roll over; their children then count as having a finished parent, as before.
pub fn forget_trimmed(pos: &mut TablePos, listed: &[Listed]) {
    pos.shards.retain(|id, at| *at != ShardPos::Done || listed.iter().any(|s| &s.id == id));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> Listed {
        Listed { id: id.into(), parent: parent.map(str::to_string), open: false }
    }

    fn pos(entries: &[(&str, ShardPos)]) -> TablePos {
        TablePos {
            stream: "arn".into(),
            shards: entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
            copy_began_us: None,
        }
    }

    #[test]
    fn shards_open_at_the_copy_must_still_be_there_within_the_retention() {
        let listed = vec![shard("old", None), Listed { open: true, ..shard("live", Some("old")) }];
        let at_copy = open_at_copy(&listed, None, &HashSet::new());
        assert_eq!(at_copy.keys().collect::<Vec<_>>(), ["live"]);
        // A shard this run has applied records of is read after them; a stored one is not.
        let applied = pos(&[("live", ShardPos::After("7".into())), ("old", ShardPos::After("3".into()))]);
        let followed = HashSet::from(["live".to_string(), "old".to_string()]);
        assert_eq!(
            open_at_copy(&listed, Some(&applied), &followed).into_iter().collect::<Vec<_>>(),
            [("live".to_string(), ShardPos::After("7".into()))]
        );
        assert_eq!(open_at_copy(&listed, Some(&applied), &HashSet::new()), at_copy);
        let mut p = TablePos { stream: "arn".into(), shards: at_copy, copy_began_us: Some(0) };
        // Read from its oldest record once its parent is done; the closed parent first.
        let plan = ready(&listed, &p, &HashSet::new()).expect("plan");
        assert_eq!(plan, vec![("old".into(), Start::TrimHorizon)]);
        p.shards.insert("old".into(), ShardPos::Done);
        assert_eq!(ready(&listed, &p, &HashSet::new()).expect("plan"), vec![("live".into(), Start::TrimHorizon)]);
        // Gone from the stream: a gap.
        let err = ready(&listed[..1], &p, &HashSet::new()).unwrap_err();
        assert!(err.contains("shard live (open when the table's copy began"), "{err}");
        // Unread for 23 hours or more: a gap; once read, time no longer matters.
        assert!(check_retention(&p, 22 * 3600 * 1_000_000).is_ok());
        let err = check_retention(&p, 23 * 3600 * 1_000_000).unwrap_err();
        assert!(err.contains("the copy began 23.0 hours ago"), "{err}");
        p.shards.insert("live".into(), ShardPos::After("5".into()));
        assert!(check_retention(&p, 48 * 3600 * 1_000_000).is_ok());
    }

    #[test]
    fn children_wait_for_their_parent() {
        let listed = vec![shard("a", None), shard("b", Some("a")), shard("c", Some("a")), shard("x", Some("gone"))];
        let none = HashSet::new();
        // Fresh: the root and the shard whose parent was trimmed long ago.
        let start = ready(&listed, &pos(&[]), &none).expect("plan");
        assert_eq!(start, vec![("a".into(), Start::TrimHorizon), ("x".into(), Start::TrimHorizon)]);
        // Parent half read: resume it, children wait.
        let half = ready(&listed, &pos(&[("a", ShardPos::After("7".into()))]), &none).expect("plan");
        assert_eq!(half[0], ("a".into(), Start::After("7".into())));
        assert!(!half.iter().any(|(id, _)| id == "b"));
        // Parent done: both children start at their oldest record.
        let done = ready(&listed, &pos(&[("a", ShardPos::Done)]), &none).expect("plan");
        assert!(done.contains(&("b".into(), Start::TrimHorizon)) && done.contains(&("c".into(), Start::TrimHorizon)));
        // Being read already: not started twice.
        let reading: HashSet<String> = ["x".to_string()].into();
        assert!(!ready(&listed, &pos(&[]), &reading).expect("plan").iter().any(|(id, _)| id == "x"));
    }

    #[test]
    fn trimmed_finished_shards_are_forgotten_without_changing_what_is_ready() {
        let listed = vec![shard("b", Some("a"))];
        let mut p = pos(&[("a", ShardPos::Done), ("old", ShardPos::Done)]);
        let before = ready(&listed, &p, &HashSet::new()).expect("plan");
        forget_trimmed(&mut p, &listed);
        assert!(p.shards.is_empty());
        assert_eq!(ready(&listed, &p, &HashSet::new()).expect("plan"), before);
    }

    #[test]
    fn a_trimmed_shard_with_unread_records_is_a_gap() {
        let listed = vec![shard("b", Some("a"))];
        let err = ready(&listed, &pos(&[("a", ShardPos::After("9".into()))]), &HashSet::new()).unwrap_err();
        assert!(err.contains("shard a"), "{err}");
    }
}
