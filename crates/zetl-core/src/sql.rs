//! SQL text for the standard-SQL engines zetl writes to or reads from (PostgreSQL, DuckDB):
//! identifiers and string literals quoted once, the same way everywhere.

use crate::model::TableId;

/// `name` as a double-quoted identifier (an embedded `"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn quote_table(id: &TableId) -> String {
    format!("{}.{}", quote_ident(&id.schema), quote_ident(&id.name))
}

/// `text` as a single-quoted string literal (an embedded `'` doubled).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_double_the_quote_character() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_table(&TableId::new("s", "T x")), r#""s"."T x""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
