//! Variable interpolation as the Compose Specification defines it: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}`, nested in defaults, and `$$` for a literal `$`.

use crate::node::{Kind, Node};

/// Look a variable up (the process environment over `.env`, as compose does).
pub trait Lookup {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Interpolate one string; the error is the message to report.
pub fn interpolate(s: &str, env: &dyn Lookup) -> Result<String, String> {
    let chars: Vec<char> = s.chars().collect();
    let (out, end) = expand(&chars, 0, env, false)?;
    debug_assert_eq!(end, chars.len());
    Ok(out)
}

/// Expand from `i` until the end (or, inside a `${...}` default, until its closing `}`).
fn expand(c: &[char], mut i: usize, env: &dyn Lookup, nested: bool) -> Result<(String, usize), String> {
    let mut out = String::new();
    while i < c.len() {
        match c[i] {
            '}' if nested => return Ok((out, i)),
            '$' if c.get(i + 1) == Some(&'$') => {
                out.push('$');
                i += 2;
            }
            '$' if c.get(i + 1) == Some(&'{') => {
                let (v, next) = braced(c, i + 2, env)?;
                out.push_str(&v);
                i = next;
            }
            '$' if c.get(i + 1).is_some_and(|ch| ch.is_ascii_alphabetic() || *ch == '_') => {
                let start = i + 1;
                let mut j = start;
                while j < c.len() && (c[j].is_ascii_alphanumeric() || c[j] == '_') {
                    j += 1;
                }
                let name: String = c[start..j].iter().collect();
                out.push_str(&env.get(&name).unwrap_or_default());
                i = j;
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    if nested {
        return Err("unterminated ${ (missing })".into());
    }
    Ok((out, i))
}

/// `${...}` starting after the `{`; returns the value and the index after the `}`.
fn braced(c: &[char], start: usize, env: &dyn Lookup) -> Result<(String, usize), String> {
    let mut j = start;
    while j < c.len() && (c[j].is_ascii_alphanumeric() || c[j] == '_') {
        j += 1;
    }
    let name: String = c[start..j].iter().collect();
    if name.is_empty() || !(name.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')) {
        let rest: String = c[start.saturating_sub(2)..].iter().take(20).collect();
        return Err(format!(
            "invalid interpolation format for {rest:?}: a variable name must start with a letter or _"
        ));
    }
    let value = env.get(&name);
    if c.get(j) == Some(&'}') {
        return Ok((value.unwrap_or_default(), j + 1));
    }
    let (colon, op_at) = if c.get(j) == Some(&':') { (true, j + 1) } else { (false, j) };
    let op = *c.get(op_at).ok_or("unterminated ${ (missing })")?;
    if !matches!(op, '-' | '?' | '+') {
        return Err(format!(
            "invalid interpolation format for ${{{name}{}{op}...}}: expected :-, -, :?, ?, :+ or +",
            if colon { ":" } else { "" }
        ));
    }
    // The word is expanded only when it is used, but it must be well formed either way.
    let (word, end) = expand(c, op_at + 1, env, true)?;
    let set = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    let out = match op {
        '-' => {
            if set {
                value.unwrap_or_default()
            } else {
                word
            }
        }
        '+' => {
            if set {
                word
            } else {
                String::new()
            }
        }
        _ => {
            if set {
                value.unwrap_or_default()
            } else if word.is_empty() {
                return Err(format!("required variable {name} is missing a value"));
            } else {
                return Err(format!("required variable {name} is missing a value: {word}"));
            }
        }
    };
    Ok((out, end + 1))
}

/// Interpolate every string value (not keys) in a tree; errors carry the key path.
pub fn interpolate_node(node: &mut Node, env: &dyn Lookup, path: &mut Vec<String>) -> Result<(), (String, u64, String)> {
    let line = node.pos.line;
    match &mut node.kind {
        Kind::Str(s) => match interpolate(s, env) {
            Ok(v) => *s = v,
            Err(m) => return Err((path.join("."), line, m)),
        },
        Kind::Seq(v) => {
            for (i, n) in v.iter_mut().enumerate() {
                let last = path.pop().unwrap_or_default();
                path.push(format!("{last}[{i}]"));
                let r = interpolate_node(n, env, path);
                path.pop();
                path.push(last);
                r?;
            }
        }
        Kind::Map(m) => {
            for (k, n) in m.iter_mut() {
                path.push(k.name.clone());
                let r = interpolate_node(n, env, path);
                path.pop();
                r?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".into()),
            _ => None,
        }
    }

    #[test]
    fn forms() {
        let f = |s: &str| interpolate(s, &env);
        assert_eq!(f("x $A ${A} $$A").unwrap(), "x alpha alpha $A");
        assert_eq!(f("${NOPE:-d}|${EMPTY:-d}|${EMPTY-d}|${NOPE-d}").unwrap(), "d|d||d");
        assert_eq!(f("${A:+set}|${EMPTY:+set}|${EMPTY+set}|${NOPE+set}").unwrap(), "set||set|");
        assert_eq!(f("${NOPE:-${PORT}}:80").unwrap(), "8080:80");
        assert_eq!(f("${NOPE:-a-b_c/d}").unwrap(), "a-b_c/d");
        assert_eq!(f("$NOPE.").unwrap(), ".");
        assert_eq!(f("cost: 5$").unwrap(), "cost: 5$");
    }

    #[test]
    fn errors() {
        let f = |s: &str| interpolate(s, &env);
        assert_eq!(
            f("${NOPE:?set NOPE please}").unwrap_err(),
            "required variable NOPE is missing a value: set NOPE please"
        );
        assert!(f("${EMPTY:?}").unwrap_err().contains("EMPTY"));
        assert_eq!(f("${EMPTY?}").unwrap(), "");
        assert!(f("${A").unwrap_err().contains("unterminated"));
        assert!(f("${A:-x").unwrap_err().contains("unterminated"));
        assert!(f("${1A}").unwrap_err().contains("invalid interpolation"));
        assert!(f("${A*x}").unwrap_err().contains("invalid interpolation"));
    }
}
