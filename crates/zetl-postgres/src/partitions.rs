//! Partition maintenance that logical replication does not send. Under
//! `publish_via_partition_root` every row change of a leaf arrives as the root's, but
//! `ATTACH PARTITION` (its rows appear), `DETACH PARTITION` and `DROP TABLE <leaf>` (its rows
//! vanish) write no row changes, and pgoutput skips a `TRUNCATE <leaf>` (it sends truncates of
//! partitions only when the publication does not publish through the root; see
//! `pgoutput_truncate` in PostgreSQL's source). zetl notices them by the leaves' OIDs and
//! storage (`relfilenode`: a TRUNCATE gives the leaf new storage) and copies the partitioned
//! table again.
//!
//! The identity a copy is stored with (`_zetl.tables.source_id`) is the table's OID, and for
//! a partitioned table its leaves: `<oid>/<leaf>:<relfilenode>,…`.

use std::collections::BTreeMap;

/// A leaf partition as the catalog describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub oid: u32,
    pub filenode: u32,
    /// `schema.name`, for messages.
    pub name: String,
    /// Whether its rows can only have arrived through the stream if it is new: created as a
    /// partition (`CREATE TABLE … PARTITION OF`: its `pg_inherits` row comes from the same
    /// transaction as its row type) or empty now.
    pub new_is_harmless: bool,
}

/// The identity to store with a copy of table `oid` with `leaves` (none for a plain table).
pub fn source_id(oid: u32, leaves: &[Leaf]) -> String {
    if leaves.is_empty() {
        return oid.to_string();
    }
    let mut parts: Vec<(u32, u32)> = leaves.iter().map(|l| (l.oid, l.filenode)).collect();
    parts.sort_unstable();
    let parts: Vec<String> = parts.iter().map(|(o, f)| format!("{o}:{f}")).collect();
    format!("{oid}/{}", parts.join(","))
}

/// The table OID a stored identity names, if it is one of ours.
pub fn root_oid(source_id: &str) -> Option<u32> {
    source_id.split('/').next().and_then(|o| o.parse().ok())
}

/// What happened to the partitions since `before` (a stored identity) that the stream did not
/// carry, if anything. A stored identity without leaves (a plain table, or one stored before
/// zetl tracked leaves) says nothing about partitions.
pub fn unstreamed_change(before: &str, leaves: &[Leaf]) -> Option<String> {
    let (_, list) = before.split_once('/')?;
    let known: BTreeMap<u32, u32> = list
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .filter_map(|(o, f)| Some((o.parse().ok()?, f.parse().ok()?)))
        .collect();
    for (oid, filenode) in &known {
        match leaves.iter().find(|l| l.oid == *oid) {
            None => return Some(format!("a partition (OID {oid}) was detached or dropped")),
            Some(l) if l.filenode != *filenode => {
                return Some(format!("partition {} was truncated or rewritten", l.name));
            }
            Some(_) => {}
        }
    }
    leaves
        .iter()
        .find(|l| !known.contains_key(&l.oid) && !l.new_is_harmless)
        .map(|l| format!("partition {} was attached with rows", l.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(oid: u32, filenode: u32, new_is_harmless: bool) -> Leaf {
        Leaf { oid, filenode, name: format!("p{oid}"), new_is_harmless }
    }

    #[test]
    fn identity_lists_leaves_in_oid_order() {
        assert_eq!(source_id(10, &[]), "10");
        assert_eq!(source_id(10, &[leaf(12, 5, true), leaf(11, 7, true)]), "10/11:7,12:5");
        assert_eq!(root_oid("10/11:7,12:5"), Some(10));
        assert_eq!(root_oid("10"), Some(10));
    }

    #[test]
    fn every_unstreamed_partition_change_is_named() {
        let before = source_id(10, &[leaf(11, 7, true), leaf(12, 5, true)]);
        assert_eq!(unstreamed_change(&before, &[leaf(11, 7, false), leaf(12, 5, false)]), None);
        // A partition created as such: its rows all came through the stream.
        assert_eq!(unstreamed_change(&before, &[leaf(11, 7, true), leaf(12, 5, true), leaf(13, 1, true)]), None);
        let attached = unstreamed_change(&before, &[leaf(11, 7, true), leaf(12, 5, true), leaf(13, 1, false)]);
        assert_eq!(attached.as_deref(), Some("partition p13 was attached with rows"));
        let gone = unstreamed_change(&before, &[leaf(11, 7, true)]);
        assert_eq!(gone.as_deref(), Some("a partition (OID 12) was detached or dropped"));
        let truncated = unstreamed_change(&before, &[leaf(11, 8, true), leaf(12, 5, true)]);
        assert_eq!(truncated.as_deref(), Some("partition p11 was truncated or rewritten"));
        // Plain tables and identities from before leaves were tracked.
        assert_eq!(unstreamed_change("10", &[leaf(11, 7, false)]), None);
    }
}
