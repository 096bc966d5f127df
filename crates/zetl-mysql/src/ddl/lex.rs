//! A tokenizer for MySQL statements: words, quoted identifiers, string literals, numbers and
//! punctuation; comments and whitespace dropped.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    Word(String),
    Quoted(String),
    /// A '…' string literal, unescaped.
    Str(String),
    Punct(char),
}

pub(super) fn lex(sql: &str) -> Vec<Tok> {
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
        } else if c == '\'' {
            chars.next();
            let mut s = String::new();
            while let Some(x) = chars.next() {
                match x {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    '\'' => break,
                    '\\' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some('0') => s.push('\0'),
                        Some('Z') => s.push('\u{1a}'),
                        Some(n) => s.push(n),
                        None => {}
                    },
                    x => s.push(x),
                }
            }
            out.push(Tok::Str(s));
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
