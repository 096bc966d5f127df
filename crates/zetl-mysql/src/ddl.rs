//! Just enough of MySQL's DDL (and DML logged as statements) to follow tables in the binlog:
//! which statement, which tables.
//! Columns are not parsed here: the next TABLE_MAP event describes them exactly.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// `None`: the statement's default database.
    pub schema: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ddl {
    /// `if_not_exists`: the server logs the statement also when the table existed, and then
    /// it changed nothing.
    Create {
        table: TableRef,
        if_not_exists: bool,
    },
    Alter {
        table: TableRef,
        renamed_to: Option<TableRef>,
    },
    Drop(Vec<TableRef>),
    Rename(Vec<(TableRef, TableRef)>),
    Truncate(TableRef),
    /// Anything else (DML in STATEMENT format, see [`dml`]; other DDL; temporary tables).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
}

fn lex(sql: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '/' {
            chars.next();
            if chars.peek() == Some(&'*') {
                // Comments, including `/*!50100 … */` version comments (skipped whole: they
                // only carry options).
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            } else {
                out.push(Tok::Punct('/'));
            }
        } else if c == '#' || (c == '-' && sql_line_comment(&chars)) {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
        } else if c == '`' || c == '"' {
            chars.next();
            let mut s = String::new();
            while let Some(x) = chars.next() {
                if x == c {
                    if chars.peek() == Some(&c) {
                        chars.next();
                        s.push(c);
                    } else {
                        break;
                    }
                } else {
                    s.push(x);
                }
            }
            out.push(Tok::Quoted(s));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut s = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_alphanumeric() || x == '_' || x == '$' {
                    s.push(x);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Word(s));
        } else {
            chars.next();
            out.push(Tok::Punct(c));
        }
    }
    out
}

fn sql_line_comment(chars: &std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    let mut ahead = chars.clone();
    ahead.next();
    ahead.next() == Some('-')
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn keyword(&mut self, kw: &str) -> bool {
        match self.toks.get(self.at) {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn keywords(&mut self, kws: &[&str]) -> bool {
        let start = self.at;
        if kws.iter().all(|k| self.keyword(k)) {
            return true;
        }
        self.at = start;
        false
    }

    fn punct(&mut self, p: char) -> bool {
        if self.toks.get(self.at) == Some(&Tok::Punct(p)) {
            self.at += 1;
            return true;
        }
        false
    }

    fn ident(&mut self) -> Option<String> {
        let s = match self.toks.get(self.at)? {
            Tok::Word(w) | Tok::Quoted(w) => w.clone(),
            Tok::Punct(_) => return None,
        };
        self.at += 1;
        Some(s)
    }

    fn table(&mut self) -> Option<TableRef> {
        let first = self.ident()?;
        if self.punct('.') {
            return Some(TableRef { schema: Some(first), name: self.ident()? });
        }
        Some(TableRef { schema: None, name: first })
    }

    fn table_list(&mut self) -> Vec<TableRef> {
        let mut out = Vec::new();
        while let Some(t) = self.table() {
            out.push(t);
            if !self.punct(',') {
                break;
            }
        }
        out
    }
}

pub fn parse(sql: &str) -> Ddl {
    let mut p = Parser { toks: lex(sql), at: 0 };
    if p.keyword("CREATE") {
        p.keywords(&["OR", "REPLACE"]);
        if p.keyword("TEMPORARY") || !p.keyword("TABLE") {
            return Ddl::Other;
        }
        let if_not_exists = p.keywords(&["IF", "NOT", "EXISTS"]);
        return p.table().map_or(Ddl::Other, |table| Ddl::Create { table, if_not_exists });
    }
    if p.keyword("ALTER") {
        p.keyword("ONLINE");
        p.keyword("IGNORE");
        if !p.keyword("TABLE") {
            return Ddl::Other;
        }
        p.keywords(&["IF", "EXISTS"]);
        let Some(table) = p.table() else { return Ddl::Other };
        // `ALTER TABLE t …, RENAME [TO|AS] u` (at the top level, outside any parentheses).
        let mut depth = 0i32;
        let mut renamed_to = None;
        while p.at < p.toks.len() {
            match &p.toks[p.at] {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Word(w) if depth == 0 && w.eq_ignore_ascii_case("RENAME") => {
                    p.at += 1;
                    if p.keyword("COLUMN") || p.keyword("INDEX") || p.keyword("KEY") {
                        continue;
                    }
                    if !p.keyword("TO") {
                        p.keyword("AS");
                    }
                    renamed_to = p.table();
                    continue;
                }
                _ => {}
            }
            p.at += 1;
        }
        return Ddl::Alter { table, renamed_to };
    }
    if p.keyword("DROP") {
        p.keyword("TEMPORARY");
        if !p.keyword("TABLE") {
            return Ddl::Other;
        }
        p.keywords(&["IF", "EXISTS"]);
        return Ddl::Drop(p.table_list());
    }
    if p.keywords(&["RENAME", "TABLE"]) {
        let mut pairs = Vec::new();
        while let Some(from) = p.table() {
            if !p.keyword("TO") {
                break;
            }
            let Some(to) = p.table() else { break };
            pairs.push((from, to));
            if !p.punct(',') {
                break;
            }
        }
        return Ddl::Rename(pairs);
    }
    if p.keyword("TRUNCATE") {
        p.keyword("TABLE");
        return p.table().map_or(Ddl::Other, Ddl::Truncate);
    }
    Ddl::Other
}

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

    fn t(schema: Option<&str>, name: &str) -> TableRef {
        TableRef { schema: schema.map(String::from), name: name.into() }
    }

    #[test]
    fn recognises_table_ddl() {
        assert_eq!(
            parse("create table if not exists `shop`.`a``b` (id int)"),
            Ddl::Create { table: t(Some("shop"), "a`b"), if_not_exists: true }
        );
        assert_eq!(
            parse("CREATE OR REPLACE TABLE t (id int)"),
            Ddl::Create { table: t(None, "t"), if_not_exists: false }
        );
        assert_eq!(parse("/* c */ CREATE TEMPORARY TABLE x (i int)"), Ddl::Other);
        assert_eq!(
            parse("ALTER TABLE orders ADD COLUMN note text, RENAME COLUMN a TO b"),
            Ddl::Alter { table: t(None, "orders"), renamed_to: None }
        );
        assert_eq!(
            parse("alter table s.o rename to s.p"),
            Ddl::Alter { table: t(Some("s"), "o"), renamed_to: Some(t(Some("s"), "p")) }
        );
        assert_eq!(
            parse("DROP TABLE IF EXISTS `a`,b.c /* generated by server */"),
            Ddl::Drop(vec![t(None, "a"), t(Some("b"), "c")])
        );
        assert_eq!(
            parse("RENAME TABLE a TO b, x.y TO x.z"),
            Ddl::Rename(vec![(t(None, "a"), t(None, "b")), (t(Some("x"), "y"), t(Some("x"), "z"))])
        );
        assert_eq!(parse("truncate t1"), Ddl::Truncate(t(None, "t1")));
        assert_eq!(parse("-- x\nINSERT INTO t VALUES (1)"), Ddl::Other);
        assert_eq!(parse("CREATE INDEX i ON t (a)"), Ddl::Other);
    }
}
