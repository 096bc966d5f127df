//! Just enough of MySQL's DDL (and DML logged as statements) to follow tables in the binlog:
//! which statement, which tables.
//! Column types are not parsed here (the next TABLE_MAP event describes them exactly); only
//! what an `ADD COLUMN` gives the rows that exist already, which the binlog does not carry.

mod dml;
mod lex;

pub use dml::{dml, Dml};
use lex::{lex, Tok};

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
    /// `select`: `CREATE TABLE … SELECT` logged as a statement (in ROW format the server logs
    /// a plain CREATE and the rows as row events). `start_transaction`: MySQL 8's atomic
    /// `CREATE TABLE … SELECT` (`… START TRANSACTION`), whose rows and XID follow in the same
    /// transaction.
    Create {
        table: TableRef,
        if_not_exists: bool,
        select: bool,
        start_transaction: bool,
    },
    Alter {
        table: TableRef,
        renamed_to: Option<TableRef>,
        /// A partition operation that changes the rows the table holds.
        partition: Option<PartitionChange>,
        /// `ADD [COLUMN]` clauses, in order.
        added: Vec<AddedColumn>,
    },
    Drop(Vec<TableRef>),
    Rename(Vec<(TableRef, TableRef)>),
    Truncate(TableRef),
    /// Anything else (DML in STATEMENT format, see [`dml`]; other DDL; temporary tables).
    Other,
}

/// Partition DDL that adds or removes rows without row events (MariaDB Knowledge Base,
/// "ALTER TABLE", partitioning clauses). REORGANIZE, COALESCE, ADD, REBUILD, OPTIMIZE,
/// ANALYZE, CHECK, REPAIR PARTITION, REMOVE PARTITIONING and `PARTITION BY` only move rows
/// between partitions: they are not listed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionChange {
    /// TRUNCATE / DROP PARTITION, DISCARD / IMPORT [PARTITION …] TABLESPACE: the table's
    /// rows changed.
    Rows(&'static str),
    /// EXCHANGE PARTITION p WITH TABLE x: both tables' rows changed.
    Exchange(TableRef),
    /// CONVERT PARTITION p TO TABLE x (MariaDB 10.7+): rows left the table for a new table x.
    ConvertOut(TableRef),
    /// CONVERT TABLE x TO PARTITION p (MariaDB 10.7+): x's rows joined the table; x is gone.
    ConvertIn(TableRef),
}

impl PartitionChange {
    pub fn describe(&self) -> String {
        match self {
            PartitionChange::Rows(what) => (*what).to_string(),
            PartitionChange::Exchange(x) => format!("EXCHANGE PARTITION … WITH TABLE {}", x.name),
            PartitionChange::ConvertOut(x) => format!("CONVERT PARTITION … TO TABLE {}", x.name),
            PartitionChange::ConvertIn(x) => format!("CONVERT TABLE {} TO PARTITION", x.name),
        }
    }
}

/// What an `ADD COLUMN` clause says about the column's value in the existing rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedColumn {
    pub name: String,
    pub default: ColumnDefault,
    /// NOT NULL, AUTO_INCREMENT, or a generated column (`AS (…)`, `GENERATED`): the server
    /// gives the existing rows values the statement does not spell out.
    pub computed: bool,
    pub not_null: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnDefault {
    /// No DEFAULT clause.
    None,
    /// `DEFAULT NULL`.
    Null,
    /// A number (with its sign) or a string, as written.
    Literal(String),
    /// Anything else: CURRENT_TIMESTAMP, a function, an expression, NEXTVAL(…).
    Expression,
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
            Tok::Punct(_) | Tok::Str(_) => return None,
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
        let Some(table) = p.table() else { return Ddl::Other };
        // Strings are tokens of their own and quoted names are not words: a SELECT word is
        // the statement's query (MySQL allows no subquery in a column definition).
        let select = p.toks[p.at..].iter().any(|t| matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case("SELECT")));
        let n = p.toks.len();
        let start_transaction = n >= 2
            && matches!(&p.toks[n - 2], Tok::Word(w) if w.eq_ignore_ascii_case("START"))
            && matches!(&p.toks[n - 1], Tok::Word(w) if w.eq_ignore_ascii_case("TRANSACTION"));
        return Ddl::Create { table, if_not_exists, select, start_transaction };
    }
    if p.keyword("ALTER") {
        p.keyword("ONLINE");
        p.keyword("IGNORE");
        if !p.keyword("TABLE") {
            return Ddl::Other;
        }
        p.keywords(&["IF", "EXISTS"]);
        let Some(table) = p.table() else { return Ddl::Other };
        return p.alter_clauses(table);
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

impl Parser {
    /// The clauses of `ALTER TABLE t …` that zetl acts on, at the top level (outside any
    /// parentheses): RENAME [TO|AS] u, ADD [COLUMN], and partition operations.
    fn alter_clauses(&mut self, table: TableRef) -> Ddl {
        let mut depth = 0i32;
        let (mut renamed_to, mut partition, mut added) = (None, None, Vec::new());
        while self.at < self.toks.len() {
            if depth == 0 {
                if self.keyword("RENAME") {
                    if self.keyword("COLUMN") || self.keyword("INDEX") || self.keyword("KEY") {
                        continue;
                    }
                    if !self.keyword("TO") {
                        self.keyword("AS");
                    }
                    renamed_to = self.table();
                    continue;
                }
                if self.keyword("ADD") {
                    self.add_columns(&mut added);
                    continue;
                }
                if let Some(change) = self.partition_change() {
                    partition = Some(change);
                    continue;
                }
            }
            match &self.toks[self.at] {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                _ => {}
            }
            self.at += 1;
        }
        Ddl::Alter { table, renamed_to, partition, added }
    }

    fn partition_change(&mut self) -> Option<PartitionChange> {
        if self.keywords(&["TRUNCATE", "PARTITION"]) {
            return Some(PartitionChange::Rows("TRUNCATE PARTITION"));
        }
        if self.keywords(&["DROP", "PARTITION"]) {
            return Some(PartitionChange::Rows("DROP PARTITION"));
        }
        if self.keywords(&["EXCHANGE", "PARTITION"]) {
            self.skip_to(&["WITH"]);
            self.keywords(&["WITH", "TABLE"]);
            return self.table().map(PartitionChange::Exchange);
        }
        if self.keywords(&["CONVERT", "PARTITION"]) {
            self.skip_to(&["TO"]);
            self.keywords(&["TO", "TABLE"]);
            return self.table().map(PartitionChange::ConvertOut);
        }
        if self.keywords(&["CONVERT", "TABLE"]) {
            return self.table().map(PartitionChange::ConvertIn);
        }
        if self.keyword("IMPORT") {
            // IMPORT [PARTITION p | ALL] TABLESPACE: the data files of another server.
            return Some(PartitionChange::Rows("IMPORT TABLESPACE"));
        }
        None
    }

    /// Moves to the next of `words` at the top level (or the end of the clause).
    fn skip_to(&mut self, words: &[&str]) {
        while let Some(t) = self.toks.get(self.at) {
            match t {
                Tok::Word(w) if words.iter().any(|k| w.eq_ignore_ascii_case(k)) => return,
                Tok::Punct(',') => return,
                _ => self.at += 1,
            }
        }
    }

    /// After ADD: `[COLUMN] [IF NOT EXISTS] name definition` or `[COLUMN] (definition, …)`;
    /// indexes, constraints, partitions and periods are skipped.
    fn add_columns(&mut self, out: &mut Vec<AddedColumn>) {
        let column = self.keyword("COLUMN");
        if !column {
            let not_a_column = [
                "INDEX",
                "KEY",
                "CONSTRAINT",
                "PRIMARY",
                "UNIQUE",
                "FULLTEXT",
                "SPATIAL",
                "FOREIGN",
                "CHECK",
                "PARTITION",
                "PERIOD",
                "SYSTEM",
                "VECTOR",
            ];
            if matches!(self.toks.get(self.at), Some(Tok::Word(w)) if not_a_column.iter().any(|k| w.eq_ignore_ascii_case(k)))
            {
                return;
            }
        }
        self.keywords(&["IF", "NOT", "EXISTS"]);
        if self.punct('(') {
            while let Some(c) = self.column_definition() {
                out.push(c);
                if !self.punct(',') {
                    break;
                }
            }
            self.punct(')');
        } else if let Some(c) = self.column_definition() {
            out.push(c);
        }
    }

    /// `name type [attributes]` up to the next top-level `,` or `)`.
    fn column_definition(&mut self) -> Option<AddedColumn> {
        let name = self.ident()?;
        let mut c = AddedColumn { name, default: ColumnDefault::None, computed: false, not_null: false };
        let mut depth = 0i32;
        while let Some(t) = self.toks.get(self.at) {
            match t {
                Tok::Punct(',') | Tok::Punct(')') if depth == 0 => break,
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Word(w) if depth == 0 => {
                    let w = w.to_ascii_uppercase();
                    self.at += 1;
                    match w.as_str() {
                        "DEFAULT" => c.default = self.default_value(),
                        "NOT" if self.keyword("NULL") => c.not_null = true,
                        "AUTO_INCREMENT" | "GENERATED" | "SERIAL" | "AS" => c.computed = true,
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            self.at += 1;
        }
        Some(c)
    }

    fn default_value(&mut self) -> ColumnDefault {
        let sign = if self.punct('-') {
            "-"
        } else {
            self.punct('+');
            ""
        };
        let literal = match self.toks.get(self.at) {
            Some(Tok::Str(s) | Tok::Quoted(s)) if sign.is_empty() => {
                let s = s.clone();
                self.at += 1;
                // `DEFAULT 'a' 'b'` is one string; a following string is an expression.
                return if matches!(self.toks.get(self.at), Some(Tok::Str(_))) {
                    ColumnDefault::Expression
                } else {
                    ColumnDefault::Literal(s)
                };
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NULL") && sign.is_empty() => {
                self.at += 1;
                return ColumnDefault::Null;
            }
            Some(Tok::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit()) => {
                let mut n = format!("{sign}{w}");
                self.at += 1;
                if self.punct('.') {
                    n.push('.');
                    if let Some(Tok::Word(f)) = self.toks.get(self.at) {
                        if f.starts_with(|c: char| c.is_ascii_digit()) {
                            n.push_str(f);
                            self.at += 1;
                        }
                    }
                }
                n
            }
            Some(Tok::Punct('.')) => {
                self.at += 1;
                match self.toks.get(self.at) {
                    Some(Tok::Word(f)) if f.starts_with(|c: char| c.is_ascii_digit()) => {
                        let n = format!("{sign}0.{f}");
                        self.at += 1;
                        n
                    }
                    _ => return ColumnDefault::Expression,
                }
            }
            _ => return ColumnDefault::Expression,
        };
        // `DEFAULT 1 + 1` (without parentheses MySQL refuses it, but be sure).
        match self.toks.get(self.at) {
            Some(Tok::Punct(p)) if *p != ',' && *p != ')' => ColumnDefault::Expression,
            _ => ColumnDefault::Literal(literal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: Option<&str>, name: &str) -> TableRef {
        TableRef { schema: schema.map(String::from), name: name.into() }
    }

    #[test]
    fn recognises_table_ddl() {
        assert_eq!(
            parse("create table if not exists `shop`.`a``b` (id int)"),
            Ddl::Create { table: t(Some("shop"), "a`b"), if_not_exists: true, select: false, start_transaction: false }
        );
        assert_eq!(
            parse("CREATE OR REPLACE TABLE t (id int, `select` int COMMENT 'select')"),
            Ddl::Create { table: t(None, "t"), if_not_exists: false, select: false, start_transaction: false }
        );
        assert_eq!(parse("/* c */ CREATE TEMPORARY TABLE x (i int)"), Ddl::Other);
        assert_eq!(
            parse("ALTER TABLE orders ADD COLUMN note text, RENAME COLUMN a TO b"),
            Ddl::Alter {
                table: t(None, "orders"),
                renamed_to: None,
                partition: None,
                added: vec![added("note", ColumnDefault::None)]
            }
        );
        assert_eq!(
            parse("alter table s.o rename to s.p"),
            Ddl::Alter {
                table: t(Some("s"), "o"),
                renamed_to: Some(t(Some("s"), "p")),
                partition: None,
                added: vec![]
            }
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

    fn added(name: &str, default: ColumnDefault) -> AddedColumn {
        AddedColumn { name: name.into(), default, computed: false, not_null: false }
    }

    fn partition(sql: &str) -> Option<PartitionChange> {
        match parse(sql) {
            Ddl::Alter { partition, .. } => partition,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn partition_operations_that_change_rows() {
        use PartitionChange::*;
        assert_eq!(partition("ALTER TABLE p TRUNCATE PARTITION p0, p1"), Some(Rows("TRUNCATE PARTITION")));
        assert_eq!(partition("alter table p drop partition if exists p0"), Some(Rows("DROP PARTITION")));
        assert_eq!(
            partition("ALTER TABLE s.p EXCHANGE PARTITION p2 WITH TABLE s.x WITHOUT VALIDATION"),
            Some(Exchange(t(Some("s"), "x")))
        );
        assert_eq!(
            partition("ALTER TABLE p CONVERT PARTITION p1 TO TABLE old_p1"),
            Some(ConvertOut(t(None, "old_p1")))
        );
        assert_eq!(
            partition("ALTER TABLE p CONVERT TABLE x TO PARTITION p9 VALUES LESS THAN (900)"),
            Some(ConvertIn(t(None, "x")))
        );
        assert_eq!(partition("ALTER TABLE p IMPORT PARTITION p1 TABLESPACE"), Some(Rows("IMPORT TABLESPACE")));
        for same in [
            "ALTER TABLE p REORGANIZE PARTITION p3 INTO (PARTITION p3 VALUES LESS THAN (400), PARTITION p4 VALUES LESS THAN MAXVALUE)",
            "ALTER TABLE p COALESCE PARTITION 2",
            "ALTER TABLE p ADD PARTITION (PARTITION p9 VALUES LESS THAN (1000))",
            "ALTER TABLE p REBUILD PARTITION p0",
            "ALTER TABLE p OPTIMIZE PARTITION p0",
            "ALTER TABLE p REMOVE PARTITIONING",
            "ALTER TABLE p PARTITION BY HASH (id) PARTITIONS 4",
            "ALTER TABLE p DROP COLUMN partition_key",
        ] {
            assert_eq!(partition(same), None, "{same}");
        }
    }

    #[test]
    fn what_an_added_column_gives_the_existing_rows() {
        let cols = |sql: &str| match parse(sql) {
            Ddl::Alter { added, .. } => added,
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            cols("ALTER TABLE t ADD COLUMN a int DEFAULT 7, ADD b varchar(10) DEFAULT 'it''s, (x)' COMMENT 'c', ADD INDEX (a)"),
            vec![added("a", ColumnDefault::Literal("7".into())), added("b", ColumnDefault::Literal("it's, (x)".into()))]
        );
        assert_eq!(
            cols("ALTER TABLE t ADD COLUMN IF NOT EXISTS (d decimal(10,2) DEFAULT -1.5, e double default .25, f int DEFAULT NULL)"),
            vec![
                added("d", ColumnDefault::Literal("-1.5".into())),
                added("e", ColumnDefault::Literal("0.25".into())),
                added("f", ColumnDefault::Null)
            ]
        );
        assert_eq!(
            cols("ALTER TABLE t ADD ts timestamp DEFAULT CURRENT_TIMESTAMP, ADD u char(36) DEFAULT (uuid()), ADD b bit(3) DEFAULT b'101'"),
            vec![added("ts", ColumnDefault::Expression), added("u", ColumnDefault::Expression), added("b", ColumnDefault::Expression)]
        );
        let computed =
            cols("ALTER TABLE t ADD n int NOT NULL, ADD g int AS (id * 2) STORED, ADD s bigint AUTO_INCREMENT UNIQUE");
        assert_eq!(
            computed.iter().map(|c| (c.name.as_str(), c.not_null, c.computed)).collect::<Vec<_>>(),
            vec![("n", true, false), ("g", false, true), ("s", false, true)]
        );
        assert_eq!(cols("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0), ADD PRIMARY KEY (id)"), vec![]);
    }

    #[test]
    fn create_table_select_and_mysql_atomic_create() {
        let create = |sql: &str| match parse(sql) {
            Ddl::Create { select, start_transaction, .. } => (select, start_transaction),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(create("CREATE TABLE c SELECT * FROM s"), (true, false));
        assert_eq!(create("CREATE TABLE c (id int PRIMARY KEY) IGNORE AS (select id from s)"), (true, false));
        assert_eq!(create("CREATE TABLE `c` (`id` int NOT NULL) START TRANSACTION"), (false, true));
        assert_eq!(create("CREATE TABLE c LIKE s"), (false, false));
    }
}
