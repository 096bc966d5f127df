//! `${VAR}` substitution in the configuration text, before it is parsed.
//!
//! Substituting in the text (not in parsed values) keeps serde's line numbers right for every
//! other error. Values are never echoed in errors: they are usually secrets.

use crate::error::ConfigError;
use std::path::Path;

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` is a literal `${`. Comment lines are left as
/// they are so that a commented-out secret does not demand a variable.
/// The substituted text, and the values put in (to keep them out of later error messages).
pub fn substitute(
    path: &Path,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        substitute_line(line, &mut out, &mut values, &lookup).map_err(|problem| ConfigError::Variable {
            file: path.display().to_string(),
            line: index + 1,
            problem,
        })?;
    }
    Ok((out, values))
}

fn substitute_line(
    line: &str,
    out: &mut String,
    values: &mut Vec<String>,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| "`${` without a closing `}`".to_string())?;
            let expr = &after[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            // As in the shell, `:-` also replaces a set but empty variable.
            match (lookup(name).filter(|v| !(v.is_empty() && default.is_some())), default) {
                (Some(v), _) => {
                    out.push_str(&v);
                    values.push(v);
                }
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!("environment variable `{name}` is not set"));
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, ConfigError> {
        substitute(Path::new("z.yaml"), text, |n| match n {
            "PW" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        })
        .map(|(text, _)| text)
    }

    #[test]
    fn default_replaces_an_empty_variable_too() {
        assert_eq!(run("a: ${EMPTY:-d}\nb: x${EMPTY}y\n").expect("ok"), "a: d\nb: xy\n");
    }

    #[test]
    fn replaces_known_and_default_and_escape() {
        let out = run("a: ${PW}\nb: ${NOPE:-x}\nc: $${PW}\nd: $5\n").expect("substitutes");
        assert_eq!(out, "a: s3cret\nb: x\nc: ${PW}\nd: $5\n");
    }

    #[test]
    fn missing_variable_names_line_and_variable() {
        let err = run("a: 1\nurl: postgres://u:${MISSING}@h/db\n").expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("z.yaml:2"), "{msg}");
        assert!(msg.contains("MISSING"), "{msg}");
    }

    #[test]
    fn comment_lines_are_not_substituted() {
        assert_eq!(run("# ${MISSING}\n").expect("ok"), "# ${MISSING}\n");
    }
}
