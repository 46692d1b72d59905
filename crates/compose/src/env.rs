//! `.env` and `env_file` files: `KEY=VALUE` lines as Docker Compose reads them.
//!
//! `#` starts a comment line (and, after whitespace, a comment at the end of an unquoted value);
//! `export ` before a key is allowed; `'single'` quotes are literal; `"double"` quotes know `\n`,
//! `\t`, `\"`, `\\` and interpolate; unquoted values are trimmed and interpolate. A bare `KEY`
//! takes KEY from the environment and is left out when it is not set there.

use std::path::Path;

use crate::error::{Error, Result};
use crate::interpolate::{interpolate, Lookup};

/// Read a file; `outer` resolves variables the file itself does not set (the process
/// environment).
pub fn read_file(path: &Path, outer: &dyn Lookup) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, outer).map_err(|(line, message)| Error::EnvFile {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// Parse the text of an env file; errors are (line, message).
pub fn parse(text: &str, outer: &dyn Lookup) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end(), Some(v)),
            None => (line.trim_end(), None),
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err((n + 1, format!("invalid variable name {key:?}")));
        }
        let value = match value {
            None => match outer.get(key) {
                Some(v) => v,
                None => continue,
            },
            Some(v) => {
                let known = |name: &str| {
                    out.iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .or_else(|| outer.get(name))
                };
                value_of(v.trim_start(), &known).map_err(|m| (n + 1, format!("{key}: {m}")))?
            }
        };
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn value_of(v: &str, env: &dyn Lookup) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated single quote")?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut s = String::new();
        let mut it = rest.chars();
        loop {
            match it.next().ok_or("unterminated double quote")? {
                '"' => break,
                '\\' => match it.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some(c) => s.push(c),
                    None => return Err("unterminated double quote".into()),
                },
                c => s.push(c),
            }
        }
        return interpolate(&s, env);
    }
    let v = match v.find(" #").or_else(|| v.find("\t#")) {
        Some(i) => &v[..i],
        None => v,
    };
    interpolate(v.trim(), env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let outer = |n: &str| (n == "HOME").then(|| "/root".to_string());
        let text = "# c\n\nA=1\nexport B = two words # note\nC='${A} lit'\nD=\"x\\ny ${A}\"\nE=${B:-no}-${HOME}\nHOME\nUNSET\nA=3\n";
        let got = parse(text, &outer).unwrap();
        let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("3"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("${A} lit"));
        assert_eq!(get("D"), Some("x\ny 1"));
        assert_eq!(get("E"), Some("two words-/root"));
        assert_eq!(get("HOME"), Some("/root"));
        assert_eq!(get("UNSET"), None);
    }

    #[test]
    fn bad_lines_name_the_line() {
        let none = |_: &str| None;
        assert_eq!(parse("A=1\nB C=2\n", &none).unwrap_err().0, 2);
        assert!(parse("A=\"open\n", &none).unwrap_err().1.contains("unterminated"));
    }
}
