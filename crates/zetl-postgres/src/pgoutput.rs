//! Decoder for the messages of PostgreSQL's `pgoutput` logical decoding plugin, protocol
//! versions 1 and 2 as PostgreSQL 15 sends them (PostgreSQL docs, "Logical Replication Message
//! Formats"). One call decodes the payload of one XLogData message.
//!
//! Protocol 2 adds streaming of in-progress transactions: between Stream Start and Stream Stop,
//! Relation, Type, Insert, Update, Delete, Truncate and Message carry the xid of the
//! (sub)transaction right after the type byte. The caller knows whether it is inside a stream
//! block and says so with `in_stream`. [`decode`] skips that xid; [`decode_with_xid`] returns it
//! too, which a consumer needs to drop a subtransaction's changes on Stream Abort.
//! Protocol 3+ messages (two-phase commit: `b`, `P`, `K`, `r`, `p`) are reported as unknown.

use bytes::Bytes;
use thiserror::Error;

/// One column of TupleData ("TupleData" in the message formats chapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// `u`: an unchanged TOASTed value the server did not send.
    Unchanged,
    /// `t`: the type's text output.
    Text(Bytes),
    /// `b`: the type's binary send output (only with the `binary` option).
    Binary(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    /// Empty for `pg_catalog`, as the server sends it.
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn>,
}

/// What a table's UPDATE and DELETE carry of the old row (`REPLICA IDENTITY`; the catalog's
/// `pg_class.relreplident` and the Relation message use the same codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// The primary key (`d`).
    Default,
    /// Nothing: the table's UPDATEs and DELETEs are refused once it is published (`n`).
    Nothing,
    /// The whole old row (`f`).
    Full,
    /// The columns of a chosen unique index (`i`).
    Index,
}

impl ReplicaIdentity {
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            _ => return None,
        })
    }
}

/// The old row of an Update or Delete: `K` (replica identity key columns only, others null)
/// or `O` (the whole old row, REPLICA IDENTITY FULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple {
    Key(Vec<TupleValue>),
    Full(Vec<TupleValue>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Timestamps are microseconds since 2000-01-01 00:00:00 UTC.
    Begin {
        final_lsn: u64,
        commit_time: i64,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: u64,
        end_lsn: u64,
        commit_time: i64,
    },
    Origin {
        lsn: u64,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        oid: u32,
        new: Vec<TupleValue>,
    },
    /// `old` is present only when the key changed (`K`) or the table is REPLICA IDENTITY FULL (`O`).
    Update {
        oid: u32,
        old: Option<OldTuple>,
        new: Vec<TupleValue>,
    },
    Delete {
        oid: u32,
        old: OldTuple,
    },
    Truncate {
        cascade: bool,
        restart_identity: bool,
        oids: Vec<u32>,
    },
    /// `pg_logical_emit_message` output (the `M` message; needs the `messages` option).
    LogicalMessage {
        transactional: bool,
        lsn: u64,
        prefix: String,
        content: Bytes,
    },
    StreamStart {
        xid: u32,
        first_segment: bool,
    },
    StreamStop,
    StreamCommit {
        xid: u32,
        flags: u8,
        commit_lsn: u64,
        end_lsn: u64,
        commit_time: i64,
    },
    StreamAbort {
        xid: u32,
        subxid: u32,
    },
}

/// A decoded message with the streamed-transaction xid that preceded it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// `Some` only when decoding with `in_stream` a message type that carries the xid
    /// (Relation, Type, Insert, Update, Delete, Truncate, LogicalMessage). It may be a
    /// subtransaction's xid rather than the top-level one announced by Stream Start.
    pub xid: Option<u32>,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("empty pgoutput message")]
    Empty,
    #[error("unknown pgoutput message type byte {}", show_byte(.byte))]
    UnknownMessageType { byte: u8 },
    #[error(
        "pgoutput {message} message truncated at offset {offset}: \
         needed {needed} bytes, {available} left"
    )]
    Truncated { message: &'static str, offset: usize, needed: usize, available: usize },
    #[error("pgoutput {message} message: {field} at offset {offset} has no terminating NUL")]
    UnterminatedString { message: &'static str, field: &'static str, offset: usize },
    #[error("pgoutput {message} message: invalid UTF-8 in {field} at offset {offset}")]
    InvalidUtf8 { message: &'static str, field: &'static str, offset: usize },
    #[error(
        "pgoutput {message} message: unknown tuple kind {} at offset {offset} (expected {expected})",
        show_byte(.kind)
    )]
    UnknownTupleKind { message: &'static str, kind: u8, offset: usize, expected: &'static str },
    #[error(
        "pgoutput {message} message: unknown column kind {} at offset {offset} \
         (expected 'n', 'u', 't' or 'b')",
        show_byte(.kind)
    )]
    UnknownColumnKind { message: &'static str, kind: u8, offset: usize },
    #[error(
        "pgoutput Relation message: unknown replica identity {} at offset {offset} (expected 'd', 'n', 'f' or 'i')",
        show_byte(.kind)
    )]
    UnknownReplicaIdentity { kind: u8, offset: usize },
    #[error("pgoutput {message} message: negative {field} {value} at offset {offset}")]
    NegativeLength { message: &'static str, field: &'static str, value: i32, offset: usize },
    #[error("pgoutput {message} message: {remaining} unexpected trailing bytes at offset {offset}")]
    TrailingBytes { message: &'static str, offset: usize, remaining: usize },
}

fn show_byte(b: &u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(*b))
    } else {
        format!("0x{b:02x}")
    }
}

/// Decodes one pgoutput message, skipping the streamed-transaction xid when `in_stream`
/// (see [`decode_with_xid`] to keep it).
pub fn decode(buf: &[u8], in_stream: bool) -> Result<Message, DecodeError> {
    decode_with_xid(buf, in_stream).map(|d| d.message)
}

/// Decodes one pgoutput message and returns the streamed-transaction xid with it.
/// The whole buffer must be one message: trailing bytes are an error, which usually also
/// catches a wrong `in_stream` (the xid shifts every later field by four bytes).
pub fn decode_with_xid(buf: &[u8], in_stream: bool) -> Result<Decoded, DecodeError> {
    decode_from(buf, None, in_stream)
}

/// [`decode_with_xid`] of a message held in `Bytes`: its column values are slices of it, not
/// copies (one allocation less per value received).
pub fn decode_shared(buf: &Bytes, in_stream: bool) -> Result<Decoded, DecodeError> {
    decode_from(buf, Some(buf), in_stream)
}

fn decode_from(buf: &[u8], src: Option<&Bytes>, in_stream: bool) -> Result<Decoded, DecodeError> {
    let (&kind, _) = buf.split_first().ok_or(DecodeError::Empty)?;
    let (_, message) =
        MESSAGE_NAMES.iter().find(|(k, _)| *k == kind).ok_or(DecodeError::UnknownMessageType { byte: kind })?;
    let mut c = Cursor { buf, src, pos: 1, message };
    let xid = if in_stream && carries_stream_xid(kind) { Some(c.u32()?) } else { None };
    let message = match kind {
        b'B' => Message::Begin { final_lsn: c.u64()?, commit_time: c.i64()?, xid: c.u32()? },
        b'C' => Message::Commit { flags: c.u8()?, commit_lsn: c.u64()?, end_lsn: c.u64()?, commit_time: c.i64()? },
        b'O' => Message::Origin { lsn: c.u64()?, name: c.cstring("origin name")? },
        b'R' => Message::Relation(relation(&mut c)?),
        b'Y' => Message::Type { oid: c.u32()?, namespace: c.cstring("type namespace")?, name: c.cstring("type name")? },
        b'I' => {
            let oid = c.u32()?;
            c.expect_tuple_kind(b"N", "'N'")?;
            Message::Insert { oid, new: tuple(&mut c)? }
        }
        b'U' => {
            let oid = c.u32()?;
            let (old, new) = match c.expect_tuple_kind(b"KON", "'K', 'O' or 'N'")? {
                b'N' => (None, tuple(&mut c)?),
                k => {
                    let old = old_tuple(k, tuple(&mut c)?);
                    c.expect_tuple_kind(b"N", "'N'")?;
                    (Some(old), tuple(&mut c)?)
                }
            };
            Message::Update { oid, old, new }
        }
        b'D' => {
            let oid = c.u32()?;
            let k = c.expect_tuple_kind(b"KO", "'K' or 'O'")?;
            Message::Delete { oid, old: old_tuple(k, tuple(&mut c)?) }
        }
        b'T' => truncate(&mut c)?,
        b'M' => {
            let flags = c.u8()?;
            let lsn = c.u64()?;
            let prefix = c.cstring("message prefix")?;
            let len = c.len("content length")?;
            Message::LogicalMessage { transactional: flags & 1 != 0, lsn, prefix, content: c.shared(len)? }
        }
        b'S' => Message::StreamStart { xid: c.u32()?, first_segment: c.u8()? == 1 },
        b'E' => Message::StreamStop,
        b'c' => Message::StreamCommit {
            xid: c.u32()?,
            flags: c.u8()?,
            commit_lsn: c.u64()?,
            end_lsn: c.u64()?,
            commit_time: c.i64()?,
        },
        b'A' => Message::StreamAbort { xid: c.u32()?, subxid: c.u32()? },
        _ => return Err(DecodeError::UnknownMessageType { byte: kind }),
    };
    c.finish()?;
    Ok(Decoded { xid, message })
}

/// Message type bytes and names, as in "Logical Replication Message Formats".
#[rustfmt::skip]
const MESSAGE_NAMES: [(u8, &str); 14] = [
    (b'B', "Begin"), (b'C', "Commit"), (b'O', "Origin"), (b'R', "Relation"), (b'Y', "Type"),
    (b'I', "Insert"), (b'U', "Update"), (b'D', "Delete"), (b'T', "Truncate"), (b'M', "Message"),
    (b'S', "Stream Start"), (b'E', "Stream Stop"), (b'c', "Stream Commit"), (b'A', "Stream Abort"),
];

/// The message types documented with "Xid of the transaction (only present for streamed
/// transactions). This field is available since protocol version 2."
fn carries_stream_xid(kind: u8) -> bool {
    matches!(kind, b'R' | b'Y' | b'I' | b'U' | b'D' | b'T' | b'M')
}

fn relation(c: &mut Cursor<'_>) -> Result<Relation, DecodeError> {
    let oid = c.u32()?;
    let namespace = c.cstring("relation namespace")?;
    let name = c.cstring("relation name")?;
    let offset = c.pos;
    let kind = c.u8()?;
    let replica_identity =
        ReplicaIdentity::from_code(kind).ok_or(DecodeError::UnknownReplicaIdentity { kind, offset })?;
    let n = c.count16("column count")?;
    // Each column needs at least 10 bytes, so a bogus count cannot make us over-allocate.
    let mut columns = Vec::with_capacity(n.min(c.remaining() / 10));
    for _ in 0..n {
        // Relation message: "Int8 Flags for the column. Currently can be either 0 for no flags
        // or 1 which marks the column as part of the key."
        let flags = c.u8()?;
        columns.push(RelationColumn {
            is_key: flags & 1 != 0,
            name: c.cstring("column name")?,
            type_oid: c.u32()?,
            type_modifier: c.i32()?,
        });
    }
    Ok(Relation { oid, namespace, name, replica_identity, columns })
}

fn truncate(c: &mut Cursor<'_>) -> Result<Message, DecodeError> {
    let n = c.len("relation count")?;
    // Truncate message: "Option bits for TRUNCATE: 1 for CASCADE, 2 for RESTART IDENTITY".
    let options = c.u8()?;
    let mut oids = Vec::with_capacity(n.min(c.remaining() / 4));
    for _ in 0..n {
        oids.push(c.u32()?);
    }
    Ok(Message::Truncate { cascade: options & 1 != 0, restart_identity: options & 2 != 0, oids })
}

fn old_tuple(kind: u8, values: Vec<TupleValue>) -> OldTuple {
    if kind == b'K' {
        OldTuple::Key(values)
    } else {
        OldTuple::Full(values)
    }
}

/// TupleData: Int16 column count, then per column a kind byte and, for `t`/`b`, an Int32
/// length and the value.
fn tuple(c: &mut Cursor<'_>) -> Result<Vec<TupleValue>, DecodeError> {
    let n = c.count16("column count")?;
    let mut values = Vec::with_capacity(n.min(c.remaining()));
    for _ in 0..n {
        let offset = c.pos;
        let value = match c.u8()? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::Unchanged,
            kind @ (b't' | b'b') => {
                let len = c.len("value length")?;
                let value = c.shared(len)?;
                match kind {
                    b't' => TupleValue::Text(value),
                    _ => TupleValue::Binary(value),
                }
            }
            kind => return Err(DecodeError::UnknownColumnKind { message: c.message, kind, offset }),
        };
        values.push(value);
    }
    Ok(values)
}

macro_rules! read_be {
    ($($t:ident),*) => {$(
        fn $t(&mut self) -> Result<$t, DecodeError> {
            self.array().map($t::from_be_bytes)
        }
    )*};
}

/// Bounds-checked big-endian reads over one message; errors carry the message name and offset.
struct Cursor<'a> {
    buf: &'a [u8],
    /// `buf` as `Bytes`, when it is: values are then shared slices of it.
    src: Option<&'a Bytes>,
    pos: usize,
    message: &'static str,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn shared(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let (src, bytes) = (self.src, self.bytes(n)?);
        Ok(src.map_or_else(|| Bytes::copy_from_slice(bytes), |src| src.slice_ref(bytes)))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let out = self.buf.get(self.pos..).and_then(|rest| rest.get(..n)).ok_or(DecodeError::Truncated {
            message: self.message,
            offset: self.pos,
            needed: n,
            available: self.remaining(),
        })?;
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    read_be!(u8, i16, i32, u32, i64, u64);

    /// An Int32 length or count that must not be negative.
    fn len(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let value = self.i32()?;
        usize::try_from(value).map_err(|_| self.negative(field, value, offset))
    }

    /// An Int16 count that must not be negative.
    fn count16(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let value = self.i16()?;
        usize::try_from(value).map_err(|_| self.negative(field, value.into(), offset))
    }

    fn negative(&self, field: &'static str, value: i32, offset: usize) -> DecodeError {
        DecodeError::NegativeLength { message: self.message, field, value, offset }
    }

    /// A NUL-terminated string ("String" in "Message Data Types").
    fn cstring(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let offset = self.pos;
        let rest = self.buf.get(offset..).unwrap_or_default();
        let nul = rest.iter().position(|&b| b == 0).ok_or(DecodeError::UnterminatedString {
            message: self.message,
            field,
            offset,
        })?;
        let s = std::str::from_utf8(&rest[..nul]).map_err(|_| DecodeError::InvalidUtf8 {
            message: self.message,
            field,
            offset,
        })?;
        self.pos += nul + 1;
        Ok(s.to_owned())
    }

    fn expect_tuple_kind(&mut self, allowed: &[u8], expected: &'static str) -> Result<u8, DecodeError> {
        let offset = self.pos;
        let kind = self.u8()?;
        if allowed.contains(&kind) {
            Ok(kind)
        } else {
            Err(DecodeError::UnknownTupleKind { message: self.message, kind, offset, expected })
        }
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            remaining => Err(DecodeError::TrailingBytes { message: self.message, offset: self.pos, remaining }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One field of a hand-built message, in the big-endian layout of "Message Data Types".
    trait Put {
        fn put(&self, out: &mut Vec<u8>);
    }
    macro_rules! put_be {
        ($($t:ty),*) => {$(impl Put for $t {
            fn put(&self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_be_bytes()) }
        })*};
    }
    put_be!(u8, i16, i32, u32, i64, u64);
    /// A `String` field: NUL-terminated.
    impl Put for &str {
        fn put(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(self.as_bytes());
            out.push(0);
        }
    }
    struct Raw<'a>(&'a [u8]);
    impl Put for Raw<'_> {
        fn put(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(self.0);
        }
    }
    /// A TupleData `t` column: kind, Int32 length, bytes.
    struct Txt<'a>(&'a str);
    impl Put for Txt<'_> {
        fn put(&self, out: &mut Vec<u8>) {
            out.push(b't');
            (self.0.len() as i32).put(out);
            out.extend_from_slice(self.0.as_bytes());
        }
    }
    macro_rules! msg {
        ($($field:expr),* $(,)?) => {{
            #[allow(unused_mut)]
            let mut out = Vec::new();
            $(Put::put(&$field, &mut out);)*
            out
        }};
    }

    /// `Debug` of the decoded xid and message, or `error: ` and the error's message; the same
    /// whether the values are copied out of the buffer or shared with it.
    fn decoded(buf: &[u8], in_stream: bool) -> String {
        let show = |decoded| match decoded {
            Ok(Decoded { xid: None, message }) => format!("{message:?}"),
            Ok(Decoded { xid: Some(xid), message }) => format!("xid {xid}: {message:?}"),
            Err(e) => format!("error: {e}"),
        };
        let copied = show(decode_with_xid(buf, in_stream));
        assert_eq!(show(decode_shared(&Bytes::copy_from_slice(buf), in_stream)), copied);
        copied
    }

    /// numeric(12,2)'s typmod.
    const NUMERIC_12_2: i32 = (12 << 16 | 2) + 4;

    fn relation() -> Vec<u8> {
        msg! { b'R', 16384u32, "public", "t", b'd', 2i16,
        1u8, "id", 23u32, -1i32, 0u8, "amount", 1700u32, NUMERIC_12_2 }
    }

    #[test]
    fn an_unknown_replica_identity_is_named() {
        let mut bytes = relation();
        let at = bytes.iter().position(|b| *b == b'd').expect("the identity byte");
        bytes[at] = b'x';
        let e = decode(&bytes, false).expect_err("unknown identity");
        assert_eq!(e, DecodeError::UnknownReplicaIdentity { kind: b'x', offset: at });
    }

    fn update() -> Vec<u8> {
        msg! { b'U', 16384u32, b'O', 2i16, Txt("1"), b'n',
        b'N', 3i16, Txt("2"), b'u', b'b', 2i32, Raw(&[0, 1]) }
    }

    #[test]
    fn decodes_every_message_type() {
        #[rustfmt::skip]
        let cases = [
            (msg! { b'B', 0x16B_3748u64, 1_000_000i64, 742u32 },
             "Begin { final_lsn: 23803720, commit_time: 1000000, xid: 742 }"),
            (msg! { b'C', 0u8, 10u64, 20u64, 30i64 },
             "Commit { flags: 0, commit_lsn: 10, end_lsn: 20, commit_time: 30 }"),
            (msg! { b'O', 5u64, "node_a" }, r#"Origin { lsn: 5, name: "node_a" }"#),
            (relation(), "Relation(Relation { oid: 16384, namespace: \"public\", name: \"t\", \
                replica_identity: Default, columns: [RelationColumn { is_key: true, name: \"id\", \
                type_oid: 23, type_modifier: -1 }, RelationColumn { is_key: false, \
                name: \"amount\", type_oid: 1700, type_modifier: 786438 }] })"),
            (msg! { b'Y', 16400u32, "public", "mood" },
             r#"Type { oid: 16400, namespace: "public", name: "mood" }"#),
            (msg! { b'I', 7u32, b'N', 3i16, Txt("1"), b'n', Txt("") },
             "Insert { oid: 7, new: [Text(b\"1\"), Null, Text(b\"\")] }"),
            (update(), "Update { oid: 16384, old: Some(Full([Text(b\"1\"), Null])), \
                new: [Text(b\"2\"), Unchanged, Binary(b\"\\0\\x01\")] }"),
            (msg! { b'U', 7u32, b'K', 1i16, Txt("1"), b'N', 1i16, Txt("3") },
             "Update { oid: 7, old: Some(Key([Text(b\"1\")])), new: [Text(b\"3\")] }"),
            (msg! { b'U', 7u32, b'N', 1i16, Txt("3") },
             "Update { oid: 7, old: None, new: [Text(b\"3\")] }"),
            (msg! { b'D', 7u32, b'K', 1i16, Txt("9") }, "Delete { oid: 7, old: Key([Text(b\"9\")]) }"),
            (msg! { b'D', 7u32, b'O', 0i16 }, "Delete { oid: 7, old: Full([]) }"),
            (msg! { b'T', 2i32, 3u8, 1u32, 2u32 },
             "Truncate { cascade: true, restart_identity: true, oids: [1, 2] }"),
            (msg! { b'T', 1i32, 2u8, 9u32 },
             "Truncate { cascade: false, restart_identity: true, oids: [9] }"),
            (msg! { b'M', 1u8, 99u64, "zetl", 3i32, Raw(b"a\0b") },
             "LogicalMessage { transactional: true, lsn: 99, prefix: \"zetl\", content: b\"a\\0b\" }"),
            (msg! { b'S', 800u32, 1u8 }, "StreamStart { xid: 800, first_segment: true }"),
            (msg! { b'E' }, "StreamStop"),
            (msg! { b'c', 800u32, 0u8, 1u64, 2u64, 3i64 },
             "StreamCommit { xid: 800, flags: 0, commit_lsn: 1, end_lsn: 2, commit_time: 3 }"),
            (msg! { b'A', 800u32, 801u32 }, "StreamAbort { xid: 800, subxid: 801 }"),
        ];
        for (buf, expected) in cases {
            assert_eq!(decoded(&buf, false), expected);
        }
    }

    #[test]
    fn streamed_xid_is_skipped_or_returned() {
        let plain = decode(&relation(), false).unwrap();
        let mut streamed = msg! { b'R', 801u32 };
        streamed.extend_from_slice(&relation()[1..]);
        assert_eq!(decode(&streamed, true), Ok(plain.clone()));
        let expected = Decoded { xid: Some(801), message: plain };
        assert_eq!(decode_with_xid(&streamed, true), Ok(expected));

        let insert = msg! { b'I', 801u32, 5u32, b'N', 1i16, b'n' };
        assert_eq!(decoded(&insert, true), "xid 801: Insert { oid: 5, new: [Null] }");
        // Stream Start, Stream Stop and Origin carry no xid prefix.
        let start = msg! { b'S', 800u32, 0u8 };
        assert_eq!(decoded(&start, true), "StreamStart { xid: 800, first_segment: false }");
        assert_eq!(decoded(&msg! { b'O', 1u64, "o" }, true), r#"Origin { lsn: 1, name: "o" }"#);
        // A wrong `in_stream` is caught here by the shifted fields.
        assert!(decode(&insert, false).is_err());
        assert!(decode(&insert[..1].iter().chain(&insert[5..]).copied().collect::<Vec<_>>(), true).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let samples = [
            relation(),
            update(),
            msg! { b'M', 0u8, 1u64, "p", 2i32, Raw(b"xy") },
            msg! { b'T', 1i32, 0u8, 1u32 },
            msg! { b'c', 1u32, 0u8, 1u64, 2u64, 3i64 },
        ];
        for m in &samples {
            assert!(decode(m, false).is_ok());
            for cut in 0..m.len() {
                assert!(decode(&m[..cut], false).is_err(), "{m:?} cut at {cut}");
            }
        }
        let expected = DecodeError::Truncated { message: "Update", offset: 6, needed: 2, available: 1 };
        assert_eq!(decode(&update()[..7], false), Err(expected));
        assert_eq!(
            decoded(&update()[..7], false),
            "error: pgoutput Update message truncated at offset 6: needed 2 bytes, 1 left"
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        #[rustfmt::skip]
        let cases = [
            (msg! {}, "empty pgoutput message"),
            (msg! { b'X' }, "unknown pgoutput message type byte 'X'"),
            // Two-phase commit messages are protocol 3.
            (msg! { b'P' }, "unknown pgoutput message type byte 'P'"),
            (msg! { 0x01u8 }, "unknown pgoutput message type byte 0x01"),
            (msg! { b'Y', 1u32, Raw(b"p\xffx\0"), "n" },
             "pgoutput Type message: invalid UTF-8 in type namespace at offset 5"),
            (msg! { b'O', 1u64, Raw(b"no-nul") },
             "pgoutput Origin message: origin name at offset 9 has no terminating NUL"),
            (msg! { b'I', 1u32, b'N', 1i16, b'x' }, "pgoutput Insert message: unknown column kind \
                'x' at offset 8 (expected 'n', 'u', 't' or 'b')"),
            (msg! { b'I', 1u32, b'K', 0i16 },
             "pgoutput Insert message: unknown tuple kind 'K' at offset 5 (expected 'N')"),
            (msg! { b'D', 1u32, b'N', 0i16 },
             "pgoutput Delete message: unknown tuple kind 'N' at offset 5 (expected 'K' or 'O')"),
            (msg! { b'U', 1u32, b'K', 0i16, b'O', 0i16 },
             "pgoutput Update message: unknown tuple kind 'O' at offset 8 (expected 'N')"),
            (msg! { b'I', 1u32, b'N', -1i16 },
             "pgoutput Insert message: negative column count -1 at offset 6"),
            (msg! { b'I', 1u32, b'N', 1i16, b't', -5i32 },
             "pgoutput Insert message: negative value length -5 at offset 9"),
            // Huge counts and lengths fail on the missing bytes instead of allocating.
            (msg! { b'T', i32::MAX, 0u8, 1u32 },
             "pgoutput Truncate message truncated at offset 10: needed 4 bytes, 0 left"),
            (msg! { b'I', 1u32, b'N', 1i16, b't', i32::MAX },
             "pgoutput Insert message truncated at offset 13: needed 2147483647 bytes, 0 left"),
            (msg! { b'E', 0u8 }, "pgoutput Stream Stop message: 1 unexpected trailing bytes at offset 1"),
        ];
        for (buf, expected) in cases {
            assert_eq!(decoded(&buf, false), format!("error: {expected}"));
        }
    }
}
