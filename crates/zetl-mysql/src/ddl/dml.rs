//! DML logged as a statement (binlog_format STATEMENT or MIXED): which table it writes, so that
//! a change to a replicated table stops the integration instead of being skipped.

use super::{lex, Parser, TableRef, Tok};

/// Which table a data-changing statement writes, for DML logged as a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dml {
    /// Not INSERT, REPLACE, UPDATE, DELETE or LOAD DATA.
    NotDml,
    /// The one table it writes.
    Table(TableRef),
    /// A data change whose table this parser cannot tell (multi-table UPDATE/DELETE, a CTE, …).
    Unknown,
}

/// The table an `INSERT`/`REPLACE`/`UPDATE`/`DELETE`/`LOAD DATA` statement writes
/// (MariaDB Knowledge Base, the syntax of each statement).
pub fn dml(sql: &str) -> Dml {
    let mut p = Parser { toks: lex(sql), at: 0 };
    let modifiers = ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "IGNORE", "CONCURRENT", "LOCAL"];
    let skip_modifiers = |p: &mut Parser| while modifiers.iter().any(|m| p.keyword(m)) {};
    if p.keyword("INSERT") || p.keyword("REPLACE") {
        skip_modifiers(&mut p);
        p.keyword("INTO");
        return p.table().map_or(Dml::Unknown, Dml::Table);
    }
    if p.keyword("UPDATE") {
        skip_modifiers(&mut p);
        let Some(table) = p.table() else { return Dml::Unknown };
        // `UPDATE t [[AS] alias] SET …`: anything else (a join, a list) writes several tables.
        if !p.keyword("AS") {
            if p.keyword("SET") {
                return Dml::Table(table);
            }
            if matches!(p.toks.get(p.at), Some(Tok::Word(_) | Tok::Quoted(_))) {
                p.at += 1;
            }
        } else {
            p.ident();
        }
        return if p.keyword("SET") { Dml::Table(table) } else { Dml::Unknown };
    }
    if p.keyword("DELETE") {
        skip_modifiers(&mut p);
        if !p.keyword("FROM") {
            return Dml::Unknown; // `DELETE t1, t2 FROM …`
        }
        let Some(table) = p.table() else { return Dml::Unknown };
        // Single-table form: then WHERE / ORDER BY / LIMIT / PARTITION / RETURNING or the end.
        let single = match p.toks.get(p.at) {
            None | Some(Tok::Punct(';')) => true,
            Some(Tok::Word(w)) => ["WHERE", "ORDER", "LIMIT", "PARTITION", "RETURNING", "FOR", "AS"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)),
            _ => false,
        };
        return if single { Dml::Table(table) } else { Dml::Unknown };
    }
    if p.keyword("LOAD") {
        if !(p.keyword("DATA") || p.keyword("XML")) {
            return Dml::NotDml; // LOAD INDEX INTO CACHE
        }
        while p.at < p.toks.len() {
            if p.keywords(&["INTO", "TABLE"]) {
                return p.table().map_or(Dml::Unknown, Dml::Table);
            }
            p.at += 1;
        }
        return Dml::Unknown;
    }
    if p.keyword("WITH") {
        // A CTE in front of UPDATE / DELETE / INSERT … SELECT.
        let writes = p.toks.iter().any(|t| {
            matches!(t, Tok::Word(w) if ["INSERT", "REPLACE", "UPDATE", "DELETE"].iter().any(|k| w.eq_ignore_ascii_case(k)))
        });
        return if writes { Dml::Unknown } else { Dml::NotDml };
    }
    Dml::NotDml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: Option<&str>, name: &str) -> TableRef {
        TableRef { schema: schema.map(String::from), name: name.into() }
    }

    #[test]
    fn finds_the_table_a_statement_writes() {
        let table = |s: Option<&str>, n: &str| Dml::Table(t(s, n));
        assert_eq!(dml("INSERT INTO t VALUES (1)"), table(None, "t"));
        assert_eq!(dml("/* x */ insert ignore `shop`.`a b` (id) select 1"), table(Some("shop"), "a b"));
        assert_eq!(dml("REPLACE LOW_PRIORITY INTO s.t SET a = 1"), table(Some("s"), "t"));
        assert_eq!(dml("UPDATE t SET a = 1 WHERE b = 2"), table(None, "t"));
        assert_eq!(dml("update ignore s.t AS x set x.a = 1"), table(Some("s"), "t"));
        assert_eq!(dml("UPDATE t x SET x.a = 1"), table(None, "t"));
        assert_eq!(dml("UPDATE a JOIN b ON a.id = b.id SET a.v = b.v"), Dml::Unknown);
        assert_eq!(dml("UPDATE a, b SET a.v = b.v"), Dml::Unknown);
        assert_eq!(dml("DELETE FROM t WHERE id = 1"), table(None, "t"));
        assert_eq!(dml("delete quick from s.t"), table(Some("s"), "t"));
        assert_eq!(dml("DELETE a FROM a JOIN b ON a.id = b.id"), Dml::Unknown);
        assert_eq!(dml("DELETE FROM a USING a JOIN b"), Dml::Unknown);
        assert_eq!(dml("LOAD DATA LOCAL INFILE '/tmp/x' IGNORE INTO TABLE s.t"), table(Some("s"), "t"));
        assert_eq!(dml("WITH c AS (SELECT 1) UPDATE t JOIN c SET t.a = 1"), Dml::Unknown);
        assert_eq!(dml("CREATE TABLE t (id int)"), Dml::NotDml);
        assert_eq!(dml("XA END X'61',X'',1"), Dml::NotDml);
        assert_eq!(dml("SELECT 1"), Dml::NotDml);
    }
}
